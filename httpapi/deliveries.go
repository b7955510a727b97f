package httpapi

import (
	"encoding/json"
	"net/http"

	webhooks "github.com/pancake-pos/pancake-webhooks"
)

// deliveryJSON is the contract's WebhookDelivery object with its extensions.
type deliveryJSON struct {
	ID            string          `json:"id"`
	WebhookID     string          `json:"webhook_id"`
	Event         string          `json:"event"`
	Payload       json.RawMessage `json:"payload"`
	Response      *responseJSON   `json:"response,omitempty"` // none on a queued one: no attempt yet
	Status        string          `json:"status"`
	FailureReason string          `json:"failure_reason,omitempty"`
	CreatedAt     string          `json:"created_at"`
	DurationMS    int64           `json:"duration_ms"`
	EventID       string          `json:"event_id"`
	Attempt       int             `json:"attempt"`
	Trigger       string          `json:"trigger"`
	RetryOf       string          `json:"retry_of,omitempty"`
	// NextRetryAt is present on failed attempts: a time, or null when no
	// more will come. Absent otherwise.
	NextRetryAt json.RawMessage `json:"next_retry_at,omitempty"`
	ScheduledAt string          `json:"scheduled_at,omitempty"`
	Request     *requestJSON    `json:"request,omitempty"`
}

type responseJSON struct {
	StatusCode    int               `json:"status_code"`
	Headers       map[string]string `json:"headers"`
	Body          string            `json:"body,omitempty"`
	BodyTruncated bool              `json:"body_truncated,omitempty"`
}

type requestJSON struct {
	Headers map[string]string `json:"headers"`
}

func newDeliveryJSON(d *webhooks.Delivery) deliveryJSON {
	out := deliveryJSON{
		ID:            d.ID,
		WebhookID:     d.WebhookID,
		Event:         d.Event,
		Payload:       d.Payload,
		Status:        string(d.Status),
		FailureReason: d.FailureReason,
		CreatedAt:     webhooks.FormatTime(d.CreatedAt),
		DurationMS:    d.DurationMS,
		EventID:       d.EventID,
		Attempt:       d.Attempt,
		Trigger:       string(d.Trigger),
		RetryOf:       d.RetryOf,
		ScheduledAt:   formatTimePtr(d.ScheduledAt),
	}
	if len(out.Payload) == 0 || !json.Valid(out.Payload) {
		out.Payload = json.RawMessage("{}")
	}
	if d.Status != webhooks.StatusPending {
		out.Response = &responseJSON{Headers: map[string]string{}}
		if d.Response != nil {
			out.Response.StatusCode = d.Response.StatusCode
			out.Response.Body = d.Response.Body
			out.Response.BodyTruncated = d.Response.BodyTruncated
			if d.Response.Headers != nil {
				out.Response.Headers = d.Response.Headers
			}
		}
	}
	if d.Status == webhooks.StatusFailed {
		out.NextRetryAt = json.RawMessage("null")
		if t := formatTimePtr(d.NextRetryAt); t != "" {
			out.NextRetryAt, _ = json.Marshal(t)
		}
	}
	if len(d.RequestHeaders) > 0 {
		out.Request = &requestJSON{Headers: d.RequestHeaders}
	}
	return out
}

type deliveryPageJSON struct {
	Data       []deliveryJSON `json:"data"`
	Total      int            `json:"total"`
	PageNumber int            `json:"page_number"`
	PageSize   int            `json:"page_size"`
	TotalPages int            `json:"total_pages"`
}

type pendingJSON struct {
	TotalCount int            `json:"total_count"`
	Deliveries []deliveryJSON `json:"deliveries"`
}

func deliveriesJSON(list []*webhooks.Delivery) []deliveryJSON {
	out := make([]deliveryJSON, 0, len(list))
	for _, d := range list {
		out = append(out, newDeliveryJSON(d))
	}
	return out
}

// pathDeliveryID returns the delivery id of the path; one that cannot
// exist is ENOTFOUND without asking the store.
func pathDeliveryID(r *http.Request) (string, error) {
	id := r.PathValue("delivery_id")
	if !webhooks.ValidID(webhooks.PrefixDelivery, id) {
		return "", webhooks.Errorf(webhooks.ENOTFOUND, "Delivery not found")
	}
	return id, nil
}

func (s *Server) handleListDeliveries(w http.ResponseWriter, r *http.Request) error {
	dq, err := parseDeliveryQuery(r.URL.RawQuery, r.PathValue("shop_id"), false)
	if err != nil {
		return err
	}
	return s.answerList(w, r, dq.Filter, func(list []*webhooks.Delivery, total int) any {
		return deliveryPageJSON{
			Data:       deliveriesJSON(list),
			Total:      total,
			PageNumber: dq.PageNumber,
			PageSize:   dq.PageSize,
			TotalPages: (total + dq.PageSize - 1) / dq.PageSize,
		}
	})
}

func (s *Server) handlePendingDeliveries(w http.ResponseWriter, r *http.Request) error {
	dq, err := parseDeliveryQuery(r.URL.RawQuery, r.PathValue("shop_id"), true)
	if err != nil {
		return err
	}
	return s.answerList(w, r, dq.Filter, func(list []*webhooks.Delivery, total int) any {
		return pendingJSON{TotalCount: total, Deliveries: deliveriesJSON(list)}
	})
}

// Bounds of the delivery lists (list and pending). A page holds up to 100
// payloads of up to 256 KiB each and as many receiver bodies of up to
// 64 KiB: ~30 MB encoded, and reading and encoding it took ~150 MB; 16
// readers at once took a server to 3.4 GB.
//   - maxListReads: lists read and encoded at once, all shops together;
//     the others wait their turn.
//   - maxListBytes: encoded lists held until their clients have read them,
//     all shops together. A client that never read held its answer until
//     the write timeout: 120 of them took a server past 5 GB (audit).
//   - maxListsPerShop: lists of one shop under way at once, from before
//     their read until written, so that one shop neither holds the budget
//     alone nor takes every turn to read (one shop's large pages slowed
//     another's empty list from 1 ms to 1.5 s).
const (
	maxListReads    = 4
	maxListBytes    = 128 << 20
	maxListsPerShop = 3
)

// answerList reads the deliveries of f and answers the JSON that page
// makes of them, within the bounds above.
func (s *Server) answerList(w http.ResponseWriter, r *http.Request, f webhooks.DeliveryFilter, page func([]*webhooks.Delivery, int) any) error {
	leave, err := s.lists.enter(r.Context(), w, r.PathValue("shop_id"))
	if err != nil {
		return err
	}
	defer leave()
	select {
	case s.listReads <- struct{}{}:
	case <-r.Context().Done():
		return r.Context().Err()
	}
	list, total, err := s.cfg.Deliveries.FindDeliveries(r.Context(), f)
	if err != nil {
		<-s.listReads
		return err
	}
	status, body := s.encodeJSON(r, http.StatusOK, page(list, total))
	n := int64(min(body.Len(), maxListBytes))
	if err := s.listBytes.Acquire(r.Context(), n); err != nil {
		<-s.listReads
		return err
	}
	<-s.listReads
	defer s.listBytes.Release(n)
	writeEncoded(w, status, body)
	return nil
}

func (s *Server) handleGetDelivery(w http.ResponseWriter, r *http.Request) error {
	id, err := pathDeliveryID(r)
	if err != nil {
		return err
	}
	d, err := s.cfg.Deliveries.FindDelivery(r.Context(), r.PathValue("shop_id"), id)
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, newDeliveryJSON(d))
	return nil
}

func (s *Server) handleRetryDelivery(w http.ResponseWriter, r *http.Request) error {
	id, err := pathDeliveryID(r)
	if err != nil {
		return err
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	if err := decodeEmpty(body); err != nil {
		return err
	}
	leave, err := s.sync.enter(r.Context(), w, r.PathValue("shop_id"))
	if err != nil {
		return err
	}
	defer leave()
	d, err := s.cfg.Attempter.Retry(r.Context(), r.PathValue("shop_id"), id)
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, newAttemptJSON(d))
	return nil
}
