package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/pancake-pos/pancake-webhooks/pancake"
)

// newTable returns a tabwriter for columns separated by \t; Flush it.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}

// row writes cells as one line of a table, each made printable on one
// line.
func row(tw io.Writer, cells ...string) {
	line := make([]string, len(cells))
	for i, c := range cells {
		line[i] = printable(c, false)
	}
	fmt.Fprintln(tw, strings.Join(line, "\t"))
}

// printable makes text that a receiver, a shop or anyone else chose safe to
// show on a terminal: control characters (ESC and the sequences it starts,
// CR, BEL, DEL, C1), invisible format characters (bidirectional overrides,
// zero-width spaces, BOM, soft hyphen, tags), line and paragraph separators
// and invalid UTF-8 are shown escaped as Go quotes them (\x1b, \r, \u202e,
// \xff), so nothing in a response body or header can move the cursor,
// recolour or retitle the terminal, or hide. A backslash in the text is
// shown as it is. multiline keeps \n and \t (bodies; a CRLF is a newline
// there); a table cell keeps neither.
func printable(s string, multiline bool) string {
	safe := func(r rune) bool {
		if multiline && (r == '\n' || r == '\t') {
			return true
		}
		return r != utf8.RuneError && !unicode.IsControl(r) && !unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp)
	}
	if strings.IndexFunc(s, func(r rune) bool { return !safe(r) }) < 0 {
		return s
	}
	if multiline {
		s = strings.ReplaceAll(s, "\r\n", "\n")
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case safe(r) || r == utf8.RuneError: // U+FFFD itself, as written
			b.WriteString(s[i : i+n])
		default:
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
		}
		i += n
	}
	return b.String()
}

// fields writes "Name:  value" lines, aligned; empty values are skipped.
func fields(w io.Writer, kv ...string) error {
	tw := newTable(w)
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			continue
		}
		row(tw, kv[i]+":", kv[i+1])
	}
	return tw.Flush()
}

// health shows a webhook's health at a glance: "● healthy", "▲ warning",
// "✖ error".
func health(s string) string {
	switch s {
	case pancake.HealthHealthy:
		return "● healthy"
	case pancake.HealthWarning:
		return "▲ warning"
	case pancake.HealthError:
		return "✖ error"
	case "":
		return "-"
	}
	return s
}

// deliveryStatus shows a delivery's status at a glance.
func deliveryStatus(s string) string {
	switch s {
	case pancake.StatusSuccess:
		return "✔ success"
	case pancake.StatusFailed:
		return "✖ failed"
	case pancake.StatusPending:
		return "… pending"
	}
	return s
}

func active(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// when formats a time in UTC, "-" for none.
func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.DateTime) + " UTC"
}

func whenPtr(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return when(*t)
}

// orEmpty is when for fields(): "" (skipped) for none.
func orEmpty(t *time.Time) string {
	if t == nil || t.IsZero() {
		return ""
	}
	return when(*t)
}

func percent(f float64) string {
	return strconv.FormatFloat(f, 'f', 1, 64) + "%"
}

func millis(ms float64) string {
	return strconv.FormatFloat(ms, 'f', -1, 64) + " ms"
}

// eventList joins events; short cuts it after two, with a count of the rest.
func eventList(evs []pancake.WebhookEvent, short bool) string {
	if short && len(evs) == len(pancake.AllEvents()) {
		return "all 13 events"
	}
	n := len(evs)
	if short && n > 2 {
		evs = evs[:2]
	}
	s := make([]string, len(evs))
	for i, e := range evs {
		s[i] = string(e)
	}
	out := strings.Join(s, ", ")
	if short && n > 2 {
		out += fmt.Sprintf(" +%d more", n-2)
	}
	return out
}

// cut shortens s, made printable, to n runes for a table cell, on one
// line.
func cut(s string, n int) string {
	s = printable(strings.Join(strings.Fields(s), " "), false)
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return strconv.Itoa(n) + " " + many
}

// printWebhookTable prints the list of webhooks, one per row.
func printWebhookTable(w io.Writer, list *pancake.WebhookList) error {
	if len(list.Data) == 0 {
		_, err := fmt.Fprintln(w, "No webhooks. Create one with: pancake-webhooks webhooks create --url URL --event order.created")
		return err
	}
	tw := newTable(w)
	row(tw, "ID", "URL", "EVENTS", "ACTIVE", "HEALTH", "SUCCESS", "LAST TRIGGERED")
	for _, h := range list.Data {
		row(tw, h.ID, cut(h.URL, 60), eventList(h.Events, true), active(h.IsActive),
			health(h.HealthStatus.Status), percent(h.HealthStatus.SuccessRate), whenPtr(h.LastTriggeredAt))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, plural(list.Total, "webhook", "webhooks"))
	return err
}

// printWebhook prints one webhook, its secret included when it came with
// one.
func printWebhook(w io.Writer, h *pancake.Webhook) error {
	hs := h.HealthStatus
	healthLine := fmt.Sprintf("%s (success rate %s in 24 h", health(hs.Status), percent(hs.SuccessRate))
	if hs.ConsecutiveFailures > 0 {
		healthLine += ", " + plural(hs.ConsecutiveFailures, "failure", "failures") + " in a row"
	}
	healthLine += ")"
	lastFailure := ""
	if hs.LastFailureAt != nil {
		lastFailure = when(*hs.LastFailureAt)
		if hs.LastFailureReason != "" {
			lastFailure += ": " + hs.LastFailureReason
		}
	}
	activeLine := active(h.IsActive)
	if h.DisabledReason != "" {
		activeLine += " (disabled by the system: " + h.DisabledReason + ")"
	}
	return fields(w,
		"ID", h.ID,
		"URL", h.URL,
		"Events", eventList(h.Events, false),
		"Active", activeLine,
		"Description", h.Description,
		"Health", healthLine,
		"Last success", orEmpty(hs.LastSuccessAt),
		"Last failure", lastFailure,
		"Secret", h.SecretKey,
		"Created", when(h.CreatedAt),
		"Updated", when(h.UpdatedAt),
		"Last triggered", whenPtr(h.LastTriggeredAt),
	)
}

// printResult prints the attempt a test or a retry made.
func printResult(w io.Writer, r *pancake.DeliveryResult) error {
	resp := "" // none when no HTTP response came (status_code 0)
	if r.Response != nil && r.Response.StatusCode != 0 {
		resp = "HTTP " + strconv.Itoa(r.Response.StatusCode)
		if r.Response.Body != "" {
			resp += " " + cut(r.Response.Body, 200)
		}
	}
	return fields(w,
		"Delivery", r.DeliveryID,
		"Status", deliveryStatus(r.Status),
		"Response", resp,
		"Failure", r.FailureReason,
	)
}

// httpStatus is the response column of a delivery: its status code, "-"
// when none came.
func httpStatus(d *pancake.WebhookDelivery) string {
	if d.Response.StatusCode == 0 {
		return "-"
	}
	return strconv.Itoa(d.Response.StatusCode)
}

// deliveryTable prints deliveries as rows, under a header row.
type deliveryTable struct {
	tw *tabwriter.Writer
}

func newDeliveryTable(w io.Writer) *deliveryTable {
	t := &deliveryTable{tw: newTable(w)}
	row(t.tw, "ID", "WEBHOOK", "EVENT", "STATUS", "HTTP", "DURATION", "TRIGGER", "CREATED", "FAILURE")
	return t
}

func (t *deliveryTable) add(d *pancake.WebhookDelivery) {
	dur := "-"
	if d.Status != pancake.StatusPending {
		dur = strconv.FormatInt(d.DurationMS, 10) + " ms"
	}
	row(t.tw, d.ID, d.WebhookID, string(d.Event), deliveryStatus(d.Status), httpStatus(d), dur,
		cmp.Or(d.Trigger, "-"), when(d.CreatedAt), cut(cmp.Or(d.FailureReason, "-"), 50))
}

func (t *deliveryTable) flush() error { return t.tw.Flush() }

// printDelivery prints one delivery with its request, response and payload.
func printDelivery(w io.Writer, d *pancake.WebhookDelivery) error {
	attempt := ""
	if d.Attempt > 0 {
		attempt = strconv.Itoa(d.Attempt)
	}
	resp := "-"
	if d.Response.StatusCode != 0 {
		resp = "HTTP " + strconv.Itoa(d.Response.StatusCode)
	}
	dur := ""
	if d.Status != pancake.StatusPending {
		dur = strconv.FormatInt(d.DurationMS, 10) + " ms"
	}
	if err := fields(w,
		"ID", d.ID,
		"Webhook", d.WebhookID,
		"Event", string(d.Event),
		"Event ID", d.EventID,
		"Status", deliveryStatus(d.Status),
		"Failure", d.FailureReason,
		"Trigger", d.Trigger,
		"Attempt", attempt,
		"Retry of", d.RetryOf,
		"Created", when(d.CreatedAt),
		"Duration", dur,
		"Scheduled", orEmpty(d.ScheduledAt),
		"Next retry", orEmpty(d.NextRetryAt),
		"Response", resp,
	); err != nil {
		return err
	}
	if d.Request != nil && len(d.Request.Headers) > 0 {
		fmt.Fprintln(w, "\nRequest headers:")
		printHeaders(w, d.Request.Headers)
	}
	if len(d.Response.Headers) > 0 {
		fmt.Fprintln(w, "\nResponse headers:")
		printHeaders(w, d.Response.Headers)
	}
	if d.Response.Body != "" {
		fmt.Fprintln(w, "\nResponse body:")
		fmt.Fprintln(w, indent(d.Response.Body))
		if d.Response.BodyTruncated {
			fmt.Fprintln(w, "  (cut at 64 KiB)")
		}
	}
	if d.Payload != nil {
		b, err := json.MarshalIndent(d.Payload, "", "  ")
		if err != nil {
			return err
		}
		fmt.Fprintln(w, "\nPayload:")
		_, err = fmt.Fprintln(w, indent(string(b)))
		return err
	}
	return nil
}

func printHeaders(w io.Writer, h map[string]string) {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	// By name, whatever its case (webhook-id beside X-Pancake-Delivery).
	sort.Slice(keys, func(i, j int) bool { return strings.ToLower(keys[i]) < strings.ToLower(keys[j]) })
	tw := newTable(w)
	for _, k := range keys {
		row(tw, "  "+k+":", h[k])
	}
	tw.Flush()
}

// indent indents multi-line text by two spaces, made printable.
func indent(s string) string {
	return "  " + strings.ReplaceAll(printable(strings.TrimRight(s, "\n"), true), "\n", "\n  ")
}

// printStats prints a webhook's stats: totals, per event, per hour.
func printStats(w io.Writer, id string, s *pancake.WebhookStats) error {
	rate := "-"
	if s.TotalDeliveries > 0 {
		rate = percent(100 * float64(s.SuccessCount) / float64(s.TotalDeliveries))
	}
	if err := fields(w,
		"Webhook", id,
		"Deliveries", strconv.Itoa(s.TotalDeliveries),
		"Succeeded", strconv.Itoa(s.SuccessCount),
		"Failed", strconv.Itoa(s.FailureCount),
		"Success rate", rate,
		"Average duration", millis(s.AverageDurationMS),
	); err != nil {
		return err
	}
	if len(s.EventCounts) > 0 {
		evs := make([]string, 0, len(s.EventCounts))
		for e := range s.EventCounts {
			evs = append(evs, string(e))
		}
		sort.Strings(evs)
		fmt.Fprintln(w)
		tw := newTable(w)
		row(tw, "EVENT", "DELIVERIES")
		for _, e := range evs {
			row(tw, e, strconv.Itoa(s.EventCounts[pancake.WebhookEvent(e)]))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(s.HourlyStats) > 0 {
		fmt.Fprintln(w)
		tw := newTable(w)
		row(tw, "HOUR (UTC)", "TOTAL", "SUCCESS", "FAILED")
		for _, h := range s.HourlyStats {
			row(tw, h.Hour.UTC().Format("2006-01-02 15:04"), strconv.Itoa(h.Total), strconv.Itoa(h.Success), strconv.Itoa(h.Failed))
		}
		return tw.Flush()
	}
	return nil
}
