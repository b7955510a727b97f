package pancake

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Triggers of a delivery attempt (WebhookDelivery.Trigger).
const (
	TriggerEvent       = "event"
	TriggerRetry       = "retry"
	TriggerManualRetry = "manual_retry"
	TriggerTest        = "test"
)

// DefaultIterPageSize is the page size the iterators Deliveries and
// PendingDeliveries ask for unless their params' PageSize says otherwise.
const DefaultIterPageSize = 100

// WebhookDelivery is one HTTP attempt to send one event to one webhook, or,
// with Status StatusPending, the attempt queued to be made.
type WebhookDelivery struct {
	ID        string       `json:"id"`
	WebhookID string       `json:"webhook_id"`
	Event     WebhookEvent `json:"event"`
	// Payload is the JSON object that was (or will be) POSTed, as the API
	// gave it: json.Unmarshal it into an Envelope, or your own type. Being
	// raw, its numbers keep every digit.
	Payload json.RawMessage `json:"payload"`
	// Response is what the receiver answered: StatusCode 0, with no
	// headers, when no HTTP response came (FailureReason says why). A
	// pending delivery has none yet (the server leaves it out): zero.
	Response DeliveryResponse `json:"response,omitzero"`
	// Status is StatusSuccess, StatusFailed or StatusPending.
	Status string `json:"status"`
	// FailureReason says why a failed attempt failed ("HTTP 500",
	// "connection refused", "webhook disabled", ...); "" otherwise.
	FailureReason string `json:"failure_reason,omitempty"`
	// CreatedAt is when the attempt was made; on a pending delivery, when
	// it was queued.
	CreatedAt time.Time `json:"created_at"`
	// DurationMS is how long the attempt took; 0 while pending.
	DurationMS int64 `json:"duration_ms"`

	// The fields below are extensions of the contract.

	// EventID is the event's id (evt_…), the webhook-id receivers get.
	EventID string `json:"event_id,omitempty"`
	// Attempt is 1 for the first try of the event at the webhook.
	Attempt int `json:"attempt,omitempty"`
	// Trigger is TriggerEvent, TriggerRetry, TriggerManualRetry or
	// TriggerTest.
	Trigger string `json:"trigger,omitempty"`
	// RetryOf is the delivery a manual retry repeats.
	RetryOf string `json:"retry_of,omitempty"`
	// NextRetryAt is, on a failed attempt, when the next one is due; nil
	// when no more will come.
	NextRetryAt *time.Time `json:"next_retry_at,omitempty"`
	// ScheduledAt is, on a pending delivery, when it is due.
	ScheduledAt *time.Time `json:"scheduled_at,omitempty"`
	// Request has the headers that were sent; nil while pending.
	Request *DeliveryRequest `json:"request,omitempty"`
}

// DeliveryResponse is the receiver's answer to an attempt, as recorded.
type DeliveryResponse struct {
	// StatusCode is the receiver's HTTP status, or 0 when no HTTP response
	// came (timeout, connection refused, DNS, TLS, destination not
	// allowed) and while pending.
	StatusCode int `json:"status_code"`
	// Headers are the response's headers; empty when no response came.
	Headers map[string]string `json:"headers"`
	// Body is kept up to 64 KiB; BodyTruncated says it was cut.
	Body          string `json:"body,omitempty"`
	BodyTruncated bool   `json:"body_truncated,omitempty"`
}

// DeliveryRequest is what was sent in an attempt (an extension).
type DeliveryRequest struct {
	// Headers are the request's headers by the names the contract spells:
	// Headers[HeaderWebhookID], Headers["X-Pancake-Delivery"],
	// Headers["User-Agent"].
	Headers map[string]string `json:"headers"`
}

// DeliveryListParams filters and pages ListDeliveries; zero fields are left
// out of the query.
type DeliveryListParams struct {
	WebhookID string
	// PageSize is 1–100 (server default 20; Deliveries' default 100).
	PageSize int
	// PageNumber is 1-based (default 1).
	PageNumber int
	// Status is StatusSuccess, StatusFailed or StatusPending; empty lists
	// the attempts made (success and failed).
	Status string
	Event  WebhookEvent
	// FromDate and ToDate are YYYY-MM-DD days in UTC, both inclusive.
	FromDate string
	ToDate   string
}

func (p DeliveryListParams) query() url.Values {
	q := url.Values{}
	setQuery(q, "webhook_id", p.WebhookID)
	setQuery(q, "status", p.Status)
	setQuery(q, "event", string(p.Event))
	setQuery(q, "from_date", p.FromDate)
	setQuery(q, "to_date", p.ToDate)
	if p.PageSize != 0 {
		q.Set("page_size", strconv.Itoa(p.PageSize))
	}
	if p.PageNumber != 0 {
		q.Set("page_number", strconv.Itoa(p.PageNumber))
	}
	return q
}

// DeliveryList is one page of deliveries.
type DeliveryList struct {
	Data       []WebhookDelivery `json:"data"`
	Total      int               `json:"total"`
	PageNumber int               `json:"page_number"`
	PageSize   int               `json:"page_size"`
	TotalPages int               `json:"total_pages"`
}

// PendingListParams filters and pages GetPendingDeliveries and
// PendingDeliveries; zero fields are left out of the query.
type PendingListParams struct {
	// WebhookID, when set, lists only that webhook's queued deliveries.
	WebhookID string
	// PageSize is 1–100 (server default 20; PendingDeliveries' default
	// DefaultIterPageSize).
	PageSize int
	// PageNumber is 1-based (default 1).
	PageNumber int
}

func (p PendingListParams) query() url.Values {
	q := url.Values{}
	setQuery(q, "webhook_id", p.WebhookID)
	if p.PageSize != 0 {
		q.Set("page_size", strconv.Itoa(p.PageSize))
	}
	if p.PageNumber != 0 {
		q.Set("page_number", strconv.Itoa(p.PageNumber))
	}
	return q
}

// PendingDeliveries answers GetPendingDeliveries.
type PendingDeliveries struct {
	// TotalCount is how many deliveries are queued in all (of the
	// webhook, with PendingListParams.WebhookID), not only on this page.
	TotalCount int `json:"total_count"`
	// Deliveries is the page asked for, next due first; each has Status
	// StatusPending and its ScheduledAt.
	Deliveries []WebhookDelivery `json:"deliveries"`
}

// deliveryPath returns /shops/{shop_id}/webhook-deliveries[/segs…].
func (s *WebhooksService) deliveryPath(segs ...string) (string, error) {
	return s.client.shopPath(append([]string{"webhook-deliveries"}, segs...)...)
}

// ListDeliveries returns one page of the shop's delivery attempts, newest
// first, filtered by params. Errors: ErrValidation (a bad status, date or
// page).
//
// API: GET /api/v1/shops/{shop_id}/webhook-deliveries
func (s *WebhooksService) ListDeliveries(ctx context.Context, params DeliveryListParams) (*DeliveryList, error) {
	path, err := s.deliveryPath()
	return call[DeliveryList](ctx, s.client, &request{method: http.MethodGet, query: params.query()}, path, err)
}

// Deliveries returns an iterator over every delivery params selects, from
// page params.PageNumber (default 1) on, in pages of params.PageSize
// (default DefaultIterPageSize), until the last page or an empty one. The
// first error ends it, yielded with a zero WebhookDelivery. Deliveries made
// while it walks shift the pages (the list is newest first), so a delivery
// may be seen twice. Errors: those of ListDeliveries.
//
// API: GET /api/v1/shops/{shop_id}/webhook-deliveries
func (s *WebhooksService) Deliveries(ctx context.Context, params DeliveryListParams) iter.Seq2[WebhookDelivery, error] {
	return walk(params.PageNumber, params.PageSize, func(number, size int) ([]WebhookDelivery, int, error) {
		p := params
		p.PageNumber, p.PageSize = number, size
		page, err := s.ListDeliveries(ctx, p)
		if err != nil {
			return nil, 0, err
		}
		return page.Data, page.TotalPages, nil
	})
}

// walk yields the deliveries of the pages fetch returns, from page first
// (default 1) on, in pages of pageSize (default DefaultIterPageSize), until
// the last of the pages fetch counts, or an empty one. The first error
// ends it, yielded with a zero WebhookDelivery.
// Each range over it starts again from page number: the sequence changes
// none of its captured values (a second range started from the page the
// first ended on, and two at once raced).
func walk(first, pageSize int, fetch func(number, size int) (data []WebhookDelivery, pages int, err error)) iter.Seq2[WebhookDelivery, error] {
	return func(yield func(WebhookDelivery, error) bool) {
		size := pageSize
		if size <= 0 {
			size = DefaultIterPageSize
		}
		for number := max(first, 1); ; number++ {
			data, pages, err := fetch(number, size)
			if err != nil {
				yield(WebhookDelivery{}, err)
				return
			}
			for _, d := range data {
				if !yield(d, nil) {
					return
				}
			}
			if len(data) == 0 || number >= pages {
				return
			}
		}
	}
}

// GetDeliveryByID returns one delivery. Errors: ErrNotFound.
//
// API: GET /api/v1/shops/{shop_id}/webhook-deliveries/{id}
func (s *WebhooksService) GetDeliveryByID(ctx context.Context, id string) (*WebhookDelivery, error) {
	if err := checkSegment("delivery ID", id); err != nil {
		return nil, err
	}
	path, err := s.deliveryPath(url.PathEscape(id))
	return call[WebhookDelivery](ctx, s.client, &request{method: http.MethodGet}, path, err)
}

// RetryDelivery sends the delivery's event again to its webhook now, as a
// new delivery, and returns that attempt; delivered and failed deliveries
// alike may be retried. It is not retried itself. Errors: ErrNotFound (the
// delivery or its webhook is gone); a 409 conflict *Error when the delivery
// is still queued, or when its webhook is disabled (enable it first);
// ErrRateLimited when the shop already has 32 test sends and retries under
// way (the server waits up to 10 s for one to finish first).
//
// API: POST /api/v1/shops/{shop_id}/webhook-deliveries/{id}/retry
func (s *WebhooksService) RetryDelivery(ctx context.Context, id string) (*DeliveryResult, error) {
	if err := checkSegment("delivery ID", id); err != nil {
		return nil, err
	}
	path, err := s.deliveryPath(url.PathEscape(id), "retry")
	return call[DeliveryResult](ctx, s.client, &request{method: http.MethodPost, body: struct{}{}}, path, err)
}

// GetPendingDeliveries returns one page of the shop's queued deliveries
// (queued or waiting for a retry), next due first, and how many there are
// in all. params is optional: without it, or with zero fields, the server's
// defaults apply (page 1 of 20, every webhook); more than one is an error.
// PendingDeliveries walks every page. Errors: ErrValidation (a bad page
// size, page number or webhook ID).
//
// API: GET /api/v1/shops/{shop_id}/webhook-deliveries/pending
func (s *WebhooksService) GetPendingDeliveries(ctx context.Context, params ...PendingListParams) (*PendingDeliveries, error) {
	var p PendingListParams
	switch len(params) {
	case 0:
	case 1:
		p = params[0]
	default:
		return nil, fmt.Errorf("pancake: GetPendingDeliveries takes at most one PendingListParams, got %d", len(params))
	}
	path, err := s.deliveryPath("pending")
	return call[PendingDeliveries](ctx, s.client, &request{method: http.MethodGet, query: p.query()}, path, err)
}

// PendingDeliveries returns an iterator over every queued delivery params
// selects, next due first, from page params.PageNumber (default 1) on, in
// pages of params.PageSize (default DefaultIterPageSize), until TotalCount
// is reached or a page is empty. The first error ends it, yielded with a
// zero WebhookDelivery. The queue moves while it walks: deliveries that are
// attempted leave it and new ones join, so a delivery may be missed or
// seen twice. Errors: those of GetPendingDeliveries.
//
// API: GET /api/v1/shops/{shop_id}/webhook-deliveries/pending
func (s *WebhooksService) PendingDeliveries(ctx context.Context, params PendingListParams) iter.Seq2[WebhookDelivery, error] {
	return walk(params.PageNumber, params.PageSize, func(number, size int) ([]WebhookDelivery, int, error) {
		p := params
		p.PageNumber, p.PageSize = number, size
		page, err := s.GetPendingDeliveries(ctx, p)
		if err != nil {
			return nil, 0, err
		}
		return page.Deliveries, (page.TotalCount + size - 1) / size, nil
	})
}
