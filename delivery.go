package webhooks

import (
	"context"
	"encoding/json"
	"strings"
	"time"
	"unicode/utf8"
)

// DeliveryStatus is the state of a delivery row.
type DeliveryStatus string

// Delivery statuses: a pending row is queued; an attempt makes it success or failed.
const (
	StatusPending DeliveryStatus = "pending"
	StatusSuccess DeliveryStatus = "success"
	StatusFailed  DeliveryStatus = "failed"
)

// Trigger says why an attempt was made.
type Trigger string

// Triggers.
const (
	TriggerEvent       Trigger = "event"
	TriggerRetry       Trigger = "retry"
	TriggerManualRetry Trigger = "manual_retry"
	TriggerTest        Trigger = "test"
)

// FailureWebhookDisabled is the failure reason of queued deliveries
// cancelled because their webhook was disabled.
const FailureWebhookDisabled = "webhook disabled"

// Delivery is one HTTP attempt to send one event to one webhook, or, while
// pending, the attempt queued to be made.
type Delivery struct {
	ID        string
	ShopID    string
	WebhookID string
	EventID   string
	Event     EventType
	Payload   json.RawMessage // the envelope
	Status    DeliveryStatus
	Trigger   Trigger
	Attempt   int
	RetryOf   string
	// Response is nil while pending.
	Response       *Response
	RequestHeaders map[string]string
	FailureReason  string
	CreatedAt      time.Time // queued at, then the time of the attempt
	DurationMS     int64
	ScheduledAt    *time.Time // pending: when it is due
	NextRetryAt    *time.Time // failed: when the next attempt is due
}

// Response is what the receiver answered; StatusCode 0 when nothing came.
type Response struct {
	StatusCode    int               `json:"status_code"`
	Headers       map[string]string `json:"headers"`
	Body          string            `json:"body,omitempty"`
	BodyTruncated bool              `json:"body_truncated,omitempty"`
}

// DeliveryFilter selects deliveries of one shop. Zero fields do not filter.
type DeliveryFilter struct {
	ShopID    string
	WebhookID string
	Status    DeliveryStatus // "" lists finished attempts only
	Event     EventType
	From, To  time.Time // created_at in [From, To)
	Offset    int
	Limit     int
}

// DeliveryService reads deliveries.
type DeliveryService interface {
	// FindDelivery returns one delivery of the shop, or ENOTFOUND.
	FindDelivery(ctx context.Context, shopID, id string) (*Delivery, error)
	// FindDeliveries returns a page, newest first, and the total count.
	// With Status pending it lists queued rows, next due first.
	FindDeliveries(ctx context.Context, f DeliveryFilter) ([]*Delivery, int, error)
}

// Job is a claimed pending delivery, with what the sender needs.
type Job struct {
	DeliveryID string
	ShopID     string
	WebhookID  string
	EventID    string
	Event      EventType
	Attempt    int
	Trigger    Trigger
	Payload    json.RawMessage
	URL        string
	// Secrets are the webhook's signing secrets at the claim: its secret,
	// then its previous one while the rotation's overlap lasts, until
	// SecretsUntil. A job claimed before then may be sent after it: sign
	// with SigningSecrets.
	Secrets      []string
	SecretsUntil time.Time
	CreatedAt    time.Time // when the delivery was queued
	// LeasedUntil is when the claim runs out: no attempt may still be under
	// way then, or another worker could send the delivery a second time.
	LeasedUntil time.Time
}

// SigningSecrets are the secrets that sign an attempt of j made at now:
// Secrets, without the previous one once the overlap has ended (see
// Webhook.SigningSecrets).
func (j *Job) SigningSecrets(now time.Time) []string {
	if len(j.Secrets) > 1 && !now.Before(j.SecretsUntil) {
		return j.Secrets[:1]
	}
	return j.Secrets
}

// StorableText returns s as both databases keep it: valid UTF-8 without
// NUL, each run of invalid bytes and each NUL turned into U+FFFD. PostgreSQL's
// text columns refuse both (SQLite keeps them), so a receiver's body or a
// reason quoting it would otherwise fail to be recorded on PostgreSQL only.
func StorableText(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// AttemptResult is the outcome of one attempt, to be recorded.
type AttemptResult struct {
	DeliveryID     string
	WebhookID      string
	Success        bool
	Response       Response
	RequestHeaders map[string]string
	FailureReason  string
	AttemptedAt    time.Time
	Duration       time.Duration
	// NextAttemptAt, when set, queues attempt n+1 at that time (unless the
	// webhook was disabled meanwhile).
	NextAttemptAt *time.Time
	// Disable, when set, disables the webhook with this reason (410 Gone).
	Disable string
}

// Claim says which due deliveries a claim may take.
type Claim struct {
	// Limit is the most deliveries taken.
	Limit int
	// LeaseFor is how long they stay taken.
	LeaseFor time.Duration
	// Exclude names webhooks none of whose deliveries may be taken (those
	// at their in-flight bound).
	Exclude []string
	// PerWebhook, when positive, is the most deliveries taken for one
	// webhook when the oldest due work belongs to excluded webhooks and
	// the claim looks for the other webhooks' work in turn.
	PerWebhook int
}

// Queue is the delivery table seen as a queue by the dispatcher.
type Queue interface {
	// ClaimDeliveries leases due pending deliveries as c says, oldest due
	// first, and no webhook's backlog may hold up the others'.
	ClaimDeliveries(ctx context.Context, c Claim) ([]*Job, error)
	// RecordAttempts turns claimed deliveries into finished attempts, queues
	// their next attempts and updates each webhook's health and stats, in
	// one transaction.
	RecordAttempts(ctx context.Context, results []AttemptResult) error
	// NextDue returns when the earliest pending delivery is due, or the zero
	// time when none is pending.
	NextDue(ctx context.Context) (time.Time, error)
}

// SyncAttempt is an attempt made synchronously by the API (test or manual
// retry), recorded as a finished delivery.
type SyncAttempt struct {
	Event    *Event // a new event to store first (test sends), or nil
	Delivery *Delivery
}

// AttemptRecorder records synchronous attempts.
type AttemptRecorder interface {
	// RecordSyncAttempt stores the event (if any) and the finished delivery,
	// and updates the webhook's health, stats and last_triggered_at.
	RecordSyncAttempt(ctx context.Context, a SyncAttempt) error
}

// Maintenance is the housekeeping the leader runs.
type Maintenance interface {
	// DeleteFinishedBefore deletes up to limit finished deliveries whose
	// attempt was made before t, and events left with none; returns how
	// many deliveries.
	DeleteFinishedBefore(ctx context.Context, t time.Time, limit int) (int64, error)
	// DisableFailingWebhooks disables webhooks whose deliveries have all
	// failed since before t; returns how many.
	DisableFailingWebhooks(ctx context.Context, t time.Time, reason string) (int64, error)
}

// QueueStats are the gauges exported as metrics.
type QueueStats struct {
	Due          int64         // due now, claimed by no server
	Claimed      int64         // claimed by a server: waiting for a worker, or being sent
	Scheduled    int64         // due later (retries), not claimed
	OldestDueAge time.Duration // of the oldest of Due

	WebhooksHealth map[string]int64 // by health status
}

// Attempter makes the synchronous attempts of the API: a test send and a
// manual retry. Both record the attempt as a delivery and return it; a
// receiver that fails still gives a delivery with Status failed, not an error.
type Attempter interface {
	// Test sends a test envelope (test: true) for event with payload as its
	// data to w now, whatever w.IsActive says; never retried.
	Test(ctx context.Context, w *Webhook, event EventType, payload json.RawMessage) (*Delivery, error)
	// Retry sends the event of delivery id again to its webhook now, as a new
	// delivery (trigger manual_retry, retry_of id). ENOTFOUND when the
	// delivery or its webhook is gone.
	Retry(ctx context.Context, shopID, id string) (*Delivery, error)
}
