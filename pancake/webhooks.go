package pancake

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// WebhooksService manages the shop's webhooks and their deliveries: the Go
// form of the TypeScript SDK's client.webhooks. Get it from Client.Webhooks.
// Every method may also return ErrUnauthorized (no, unknown or revoked key),
// ErrForbidden (a key of another shop), ErrRateLimited, a *Error for any
// other non-2xx answer, or a network or context error.
type WebhooksService service

// Health statuses of a webhook (WebhookHealthStatus.Status).
const (
	HealthHealthy = "healthy"
	HealthWarning = "warning"
	HealthError   = "error"
)

// Webhook is a shop's subscription of one URL to some event types.
type Webhook struct {
	ID       string         `json:"id"`
	URL      string         `json:"url"`
	Events   []WebhookEvent `json:"events"`
	IsActive bool           `json:"is_active"`
	// SecretKey ("whsec_…") signs deliveries. Create, GetByID and
	// RotateSecret return it; List leaves it out.
	SecretKey   string    `json:"secret_key,omitempty"`
	Description string    `json:"description,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at"`
	// LastTriggeredAt is the time of the last delivery attempt to it.
	LastTriggeredAt *time.Time          `json:"last_triggered_at,omitempty"`
	HealthStatus    WebhookHealthStatus `json:"health_status"`
	// DisabledReason says why the system disabled the webhook (an
	// extension); "" when it did not.
	DisabledReason string `json:"disabled_reason,omitempty"`
}

// WebhookHealthStatus is a webhook's health, derived from its recent
// attempts.
type WebhookHealthStatus struct {
	// Status is HealthHealthy, HealthWarning or HealthError.
	Status string `json:"status"`
	// SuccessRate is the percentage (0–100) of successful attempts in the
	// last 24 hours; 100 when there were none.
	SuccessRate       float64    `json:"success_rate"`
	LastFailureReason string     `json:"last_failure_reason,omitempty"`
	LastSuccessAt     *time.Time `json:"last_success_at,omitempty"`
	LastFailureAt     *time.Time `json:"last_failure_at,omitempty"`
	// ConsecutiveFailures is the current streak of failed attempts (an
	// extension).
	ConsecutiveFailures int `json:"consecutive_failures"`
}

// WebhookList answers List.
type WebhookList struct {
	Data  []Webhook `json:"data"`
	Total int       `json:"total"`
}

// CreateWebhookRequest is a new webhook.
type CreateWebhookRequest struct {
	// URL is an absolute https URL (http where the operator allows it), at
	// most 2,048 characters, with no user:password.
	URL string `json:"url"`
	// Events is a non-empty list of event types; duplicates are folded.
	// It is always sent: nil as null, empty as [], both refused
	// (ErrValidation).
	Events []WebhookEvent `json:"events"`
	// Description is optional, at most 1,000 characters; "" is left out
	// of the request and gives a webhook without one.
	Description string `json:"description,omitempty"`
	// IsActive is sent when not nil: Bool(false) creates the webhook
	// disabled. nil is left out and the server's default, true, applies.
	IsActive *bool `json:"is_active,omitempty"`
}

// UpdateWebhookRequest changes a webhook: a nil field is left out of the
// request and keeps its value; a non-nil one is sent even when it holds a
// zero value (String(""), Bool(false), an empty slice), and validated as
// in CreateWebhookRequest.
type UpdateWebhookRequest struct {
	// URL, when not nil, is the new URL, with the rules of
	// CreateWebhookRequest.URL.
	URL *string `json:"url,omitempty"`
	// Events, when not nil, replaces the event types. A non-nil empty
	// slice is sent as [], which the server refuses (ErrValidation): a
	// webhook needs at least one event type.
	Events []WebhookEvent `json:"events,omitzero"`
	// Description, when not nil, is the new description; String("")
	// clears it.
	Description *string `json:"description,omitempty"`
	// IsActive, when not nil, enables (Bool(true)) or disables
	// (Bool(false)) the webhook, as SetActive does, but for one thing:
	// Bool(true) on a webhook already active keeps its failure streak,
	// where SetActive clears it.
	IsActive *bool `json:"is_active,omitempty"`
}

// Delivery statuses (WebhookDelivery.Status, DeliveryResult.Status and the
// Status filters).
const (
	StatusSuccess = "success"
	StatusFailed  = "failed"
	// StatusPending is a queued delivery (an extension).
	StatusPending = "pending"
)

// DeliveryResult answers Test and RetryDelivery: the attempt made, which
// is recorded as a delivery (GetDeliveryByID(DeliveryID) has its details).
type DeliveryResult struct {
	// DeliveryID is the id (dlv_…) of the delivery recorded for the
	// attempt.
	DeliveryID string `json:"delivery_id"`
	// Status is StatusSuccess (the receiver answered 2xx in time) or
	// StatusFailed.
	Status string `json:"status"`
	// Response is the outcome of the attempt. Our server sends it for
	// every attempt: when no HTTP response came (timeout, connection
	// refused, DNS, TLS, destination not allowed) it is
	// {"status_code": 0}, a non-nil Response with StatusCode 0, and
	// FailureReason says which. It is nil only if a server leaves
	// "response" out, which the contract (response?) allows.
	Response *AttemptResponse `json:"response,omitempty"`
	// FailureReason says why a failed attempt failed ("HTTP 500",
	// "connection refused", ...); "" on success.
	FailureReason string `json:"failure_reason,omitempty"`
}

// AttemptResponse is the HTTP response to an attempt, as DeliveryResult
// carries it.
type AttemptResponse struct {
	// StatusCode is the receiver's HTTP status, or 0 when no HTTP response
	// came (DeliveryResult.FailureReason says why).
	StatusCode int `json:"status_code"`
	// Body is the receiver's response body, kept up to 64 KiB (the
	// delivery's DeliveryResponse.BodyTruncated says whether it was cut);
	// "" when it was empty or no response came.
	Body string `json:"body,omitempty"`
}

// RotateSecretResult answers RotateSecret.
type RotateSecretResult struct {
	// SecretKey is the new "whsec_…" secret.
	SecretKey string `json:"secret_key"`
}

// StatsParams selects the days GetStats counts; empty fields are left out.
type StatsParams struct {
	// FromDate is the first day, YYYY-MM-DD in UTC (default: 7 days ago).
	FromDate string
	// ToDate is the last day, YYYY-MM-DD in UTC, inclusive (default: today).
	ToDate string
}

// WebhookStats counts the delivery attempts made to a webhook.
type WebhookStats struct {
	TotalDeliveries   int                  `json:"total_deliveries"`
	SuccessCount      int                  `json:"success_count"`
	FailureCount      int                  `json:"failure_count"`
	AverageDurationMS float64              `json:"average_duration_ms"`
	EventCounts       map[WebhookEvent]int `json:"event_counts"`
	// HourlyStats has the hours with attempts only, oldest first.
	HourlyStats []HourlyStat `json:"hourly_stats"`
}

// HourlyStat counts the attempts of one hour.
type HourlyStat struct {
	// Hour is the start of the hour (UTC).
	Hour    time.Time `json:"hour"`
	Total   int       `json:"total"`
	Success int       `json:"success"`
	Failed  int       `json:"failed"`
}

// ClearHistoryParams selects the deliveries ClearDeliveryHistory deletes;
// empty fields are left out.
type ClearHistoryParams struct {
	// BeforeDate, YYYY-MM-DD, keeps the deliveries of that day and later;
	// empty: all.
	BeforeDate string `json:"before_date,omitempty"`
	// Status, StatusSuccess or StatusFailed, deletes only those; empty: both.
	Status string `json:"status,omitempty"`
}

// ClearHistoryResult answers ClearDeliveryHistory.
type ClearHistoryResult struct {
	DeletedCount int `json:"deleted_count"`
}

// webhookPath returns /shops/{shop_id}/webhooks/{id}[/suffix].
func (s *WebhooksService) webhookPath(id string, suffix ...string) (string, error) {
	if err := checkSegment("webhook ID", id); err != nil {
		return "", err
	}
	return s.client.shopPath(append([]string{"webhooks", url.PathEscape(id)}, suffix...)...)
}

// call sends r with its path built by path and decodes into a new T.
func call[T any](ctx context.Context, c *Client, r *request, path string, err error) (*T, error) {
	if err != nil {
		return nil, err
	}
	r.path = path
	out := new(T)
	if err := c.do(ctx, r, out); err != nil {
		return nil, err
	}
	return out, nil
}

// List returns all of the shop's webhooks, oldest first, without their
// secrets.
//
// API: GET /api/v1/shops/{shop_id}/webhooks
func (s *WebhooksService) List(ctx context.Context) (*WebhookList, error) {
	path, err := s.client.shopPath("webhooks")
	return call[WebhookList](ctx, s.client, &request{method: http.MethodGet}, path, err)
}

// GetByID returns one webhook, with its secret. Errors: ErrNotFound.
//
// API: GET /api/v1/shops/{shop_id}/webhooks/{id}
func (s *WebhooksService) GetByID(ctx context.Context, id string) (*Webhook, error) {
	path, err := s.webhookPath(id)
	return call[Webhook](ctx, s.client, &request{method: http.MethodGet}, path, err)
}

// Create creates a webhook and returns it with its secret. It is not
// retried. Errors: ErrValidation (bad URL, events or description), a *Error
// with Code "conflict" (409) when the shop has as many webhooks as allowed.
//
// API: POST /api/v1/shops/{shop_id}/webhooks
func (s *WebhooksService) Create(ctx context.Context, req CreateWebhookRequest) (*Webhook, error) {
	path, err := s.client.shopPath("webhooks")
	return call[Webhook](ctx, s.client, &request{method: http.MethodPost, body: req}, path, err)
}

// Update changes the fields of a webhook that req sets. Errors:
// ErrNotFound, ErrValidation.
//
// API: PUT /api/v1/shops/{shop_id}/webhooks/{id}
func (s *WebhooksService) Update(ctx context.Context, id string, req UpdateWebhookRequest) (*Webhook, error) {
	path, err := s.webhookPath(id)
	return call[Webhook](ctx, s.client, &request{method: http.MethodPut, body: req}, path, err)
}

// Delete deletes a webhook, its queued deliveries and its history. Errors:
// ErrNotFound. A retried Delete whose earlier attempt may have been carried
// out (its request was sent, and then its connection broke or a gateway
// answered 502 or 504) and that then gets the API's 404 returns nil: the
// webhook is gone either way.
//
// API: DELETE /api/v1/shops/{shop_id}/webhooks/{id}
func (s *WebhooksService) Delete(ctx context.Context, id string) error {
	path, err := s.webhookPath(id)
	if err != nil {
		return err
	}
	return s.client.do(ctx, &request{method: http.MethodDelete, path: path}, nil)
}

// SetActive enables or disables a webhook. Disabling cancels its queued
// deliveries (recorded as failed, "webhook disabled"); enabling clears its
// DisabledReason and failure streak. Errors: ErrNotFound.
//
// API: PUT /api/v1/shops/{shop_id}/webhooks/{id}/set-active
func (s *WebhooksService) SetActive(ctx context.Context, id string, active bool) (*Webhook, error) {
	path, err := s.webhookPath(id, "set-active")
	body := struct {
		IsActive bool `json:"is_active"`
	}{active}
	return call[Webhook](ctx, s.client, &request{method: http.MethodPut, body: body}, path, err)
}

// Test sends a test event (envelope "test": true) with payload as its data to
// the webhook now, whether active or not, and returns the attempt. A failing
// receiver is not an error: the result's Status is StatusFailed and
// FailureReason says why. It is not retried. Errors: ErrNotFound,
// ErrValidation (unknown event type), ErrRateLimited (as RetryDelivery).
//
// API: POST /api/v1/shops/{shop_id}/webhooks/{id}/test
func (s *WebhooksService) Test(ctx context.Context, id string, event WebhookEvent, payload map[string]any) (*DeliveryResult, error) {
	path, err := s.webhookPath(id, "test")
	body := struct {
		Event   WebhookEvent   `json:"event"`
		Payload map[string]any `json:"payload,omitempty"`
	}{event, payload}
	return call[DeliveryResult](ctx, s.client, &request{method: http.MethodPost, body: body}, path, err)
}

// RotateSecret gives the webhook a new secret and returns it. The previous
// secret keeps signing deliveries too for the server's overlap (24 hours by
// default), so receivers can switch without losing events. It is not
// retried. Errors: ErrNotFound.
//
// API: POST /api/v1/shops/{shop_id}/webhooks/{id}/rotate-secret
func (s *WebhooksService) RotateSecret(ctx context.Context, id string) (*RotateSecretResult, error) {
	path, err := s.webhookPath(id, "rotate-secret")
	return call[RotateSecretResult](ctx, s.client, &request{method: http.MethodPost, body: struct{}{}}, path, err)
}

// GetStats counts the attempts made to the webhook in the days params
// selects (default: the last 7 days). Errors: ErrNotFound, ErrValidation (a
// bad date, or ToDate before FromDate).
//
// API: GET /api/v1/shops/{shop_id}/webhooks/{id}/stats
func (s *WebhooksService) GetStats(ctx context.Context, id string, params StatsParams) (*WebhookStats, error) {
	path, err := s.webhookPath(id, "stats")
	q := url.Values{}
	setQuery(q, "from_date", params.FromDate)
	setQuery(q, "to_date", params.ToDate)
	return call[WebhookStats](ctx, s.client, &request{method: http.MethodGet, query: q}, path, err)
}

// ClearDeliveryHistory deletes the webhook's finished deliveries that params
// selects and returns how many; queued ones are kept. It is not retried.
// Errors: ErrNotFound, ErrValidation.
//
// API: POST /api/v1/shops/{shop_id}/webhooks/{id}/clear-history
func (s *WebhooksService) ClearDeliveryHistory(ctx context.Context, webhookID string, params ClearHistoryParams) (*ClearHistoryResult, error) {
	path, err := s.webhookPath(webhookID, "clear-history")
	return call[ClearHistoryResult](ctx, s.client, &request{method: http.MethodPost, body: params}, path, err)
}

// setQuery sets q[key] to v unless v is empty.
func setQuery(q url.Values, key, v string) {
	if v != "" {
		q.Set(key, v)
	}
}
