package httpapi

import (
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	webhooks "github.com/pancake-pos/pancake-webhooks"
)

// Pagination bounds.
const (
	DefaultPageSize = 20
	MaxPageSize     = 100
	// MaxPageNumber keeps offsets far from overflow. A page past the last
	// is empty (the store answers it from the total alone, reading no
	// rows), not an error: the contract sets no upper bound.
	MaxPageNumber = math.MaxInt32
)

const dateLayout = "2006-01-02"

// queryParams reads query parameters, collecting one reason per bad one.
// An empty value counts as absent; a parameter given twice is an error.
type queryParams struct {
	v    url.Values
	errs webhooks.ValidationErrors
}

func newQueryParams(rawQuery string) (*queryParams, error) {
	v, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, fieldError("query", "is not a valid URL query string")
	}
	return &queryParams{v: v, errs: webhooks.ValidationErrors{}}, nil
}

func (q *queryParams) get(name string) string {
	vs := q.v[name]
	switch len(vs) {
	case 0:
		return ""
	case 1:
		return vs[0]
	default:
		q.errs.Add(name, "must be given once")
		return ""
	}
}

// integer reads a whole number in [lo, hi], def when absent.
func (q *queryParams) integer(name string, def, lo, hi int) int {
	s := q.get(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		q.errs.Add(name, "must be a whole number from "+strconv.Itoa(lo)+" to "+strconv.Itoa(hi))
		return def
	}
	return n
}

// enum reads one of allowed, "" when absent.
func (q *queryParams) enum(name string, allowed ...string) string {
	s := q.get(name)
	if s == "" {
		return ""
	}
	for _, a := range allowed {
		if s == a {
			return s
		}
	}
	q.errs.Add(name, "must be one of: "+strings.Join(allowed, ", "))
	return ""
}

// date reads a YYYY-MM-DD day, as 00:00 UTC; ok is false when absent or bad.
func (q *queryParams) date(name string) (time.Time, bool) {
	s := q.get(name)
	if s == "" {
		return time.Time{}, false
	}
	t, ok := parseDate(s)
	if !ok {
		q.errs.Add(name, "must be a date as YYYY-MM-DD")
		return time.Time{}, false
	}
	return t, true
}

// parseDate parses YYYY-MM-DD as 00:00 UTC of that day.
func parseDate(s string) (time.Time, bool) {
	if len(s) != len(dateLayout) {
		return time.Time{}, false
	}
	t, err := time.ParseInLocation(dateLayout, s, time.UTC)
	if err != nil || t.Year() < 1 {
		return time.Time{}, false
	}
	return notBeforeEpoch(t), true
}

// notBeforeEpoch is t, or the Unix epoch if t is earlier: nothing stored
// is older, and a zero time means "no date" further on (0001-01-01 as a
// before_date deleted a whole history).
func notBeforeEpoch(t time.Time) time.Time {
	if epoch := time.Unix(0, 0).UTC(); t.Before(epoch) {
		return epoch
	}
	return t
}

// eventType reads a known event type, "" when absent.
func (q *queryParams) eventType(name string) string {
	s := q.get(name)
	if s == "" {
		return ""
	}
	if !webhooks.IsEventType(s) {
		q.errs.Add(name, "must be one of: "+strings.Join(webhooks.EventTypeNames(), ", "))
		return ""
	}
	return s
}

// filterID reads an ID to filter by, "" when absent: what a shop ID may be
// (1–64 letters, digits, _ and -), which every ID of ours is too. One that
// is no ID of ours (such as "webhook-id", the product document's example)
// matches nothing, as an unknown ID does, rather than failing the list.
func (q *queryParams) filterID(name string) string {
	s := q.get(name)
	if s != "" && !webhooks.ValidShopID(s) {
		q.errs.Add(name, "must be an ID: at most 64 letters, digits, _ and -")
		return ""
	}
	return s
}

// dateRange reads from_date and to_date: from is 00:00 UTC of from_date,
// to is 00:00 UTC of the day after to_date (exclusive). to_date before
// from_date is an error. Zero times for absent dates.
func (q *queryParams) dateRange() (from, to time.Time) {
	from, okFrom := q.date("from_date")
	toDay, okTo := q.date("to_date")
	if okTo {
		to = toDay.AddDate(0, 0, 1)
	}
	// The days as given: both are moved up to the epoch if earlier, and
	// YYYY-MM-DD sorts as its day does.
	if okFrom && okTo && q.get("to_date") < q.get("from_date") {
		q.errs.Add("to_date", "must not be before from_date")
	}
	return from, to
}

// page reads page_number and page_size.
func (q *queryParams) page() (number, size int) {
	number = q.integer("page_number", 1, 1, MaxPageNumber)
	size = q.integer("page_size", DefaultPageSize, 1, MaxPageSize)
	return number, size
}

// deliveryQuery is a parsed delivery list query.
type deliveryQuery struct {
	Filter     webhooks.DeliveryFilter
	PageNumber int
	PageSize   int
}

// parseDeliveryQuery parses the query of GET /webhook-deliveries (pending
// false) or /webhook-deliveries/pending (pending true) for shopID.
func parseDeliveryQuery(rawQuery, shopID string, pending bool) (deliveryQuery, error) {
	q, err := newQueryParams(rawQuery)
	if err != nil {
		return deliveryQuery{}, err
	}
	var dq deliveryQuery
	dq.PageNumber, dq.PageSize = q.page()
	f := webhooks.DeliveryFilter{ShopID: shopID, WebhookID: q.filterID("webhook_id")}
	if pending {
		f.Status = webhooks.StatusPending
	} else {
		f.Status = webhooks.DeliveryStatus(q.enum("status", "success", "failed", "pending"))
		f.Event = q.eventType("event")
		f.From, f.To = q.dateRange()
	}
	f.Limit = dq.PageSize
	f.Offset = (dq.PageNumber - 1) * dq.PageSize
	dq.Filter = f
	if err := q.errs.Err(); err != nil {
		return deliveryQuery{}, err
	}
	return dq, nil
}

// parseStatsQuery parses from_date and to_date of GET .../stats and returns
// [from, to). Absent, the range is the last 7 days through the end of today
// (UTC); with only from_date it runs through the end of today (or of
// from_date if that is later), with only to_date it starts 6 days before.
func parseStatsQuery(rawQuery string, now time.Time) (from, to time.Time, err error) {
	q, err := newQueryParams(rawQuery)
	if err != nil {
		return from, to, err
	}
	from, to = q.dateRange()
	if err := q.errs.Err(); err != nil {
		return time.Time{}, time.Time{}, err
	}
	now = now.UTC()
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	switch {
	case from.IsZero() && to.IsZero():
		from, to = today.AddDate(0, 0, -6), today.AddDate(0, 0, 1)
	case to.IsZero():
		to = today.AddDate(0, 0, 1)
		if !to.After(from) {
			to = from.AddDate(0, 0, 1)
		}
	case from.IsZero():
		from = to.AddDate(0, 0, -7)
	}
	return from, to, nil
}
