package webhooks

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits and defaults of webhooks.
const (
	MaxURLLen            = 2048
	MaxDescriptionLen    = 1000
	DefaultMaxWebhooks   = 100
	DefaultSecretOverlap = 24 * time.Hour
	SecretPrefix         = "whsec_"
	// AutoDisableAfter: a webhook whose attempts have all failed for this
	// long is disabled, once a failure comes this long after the first of
	// its failing spell. A day or more without an attempt ends the spell
	// (AutoDisableBreak): one failed test send, then quiet days, is not
	// failing for 5 days (audit), and the retry schedule's longest wait
	// is 10 hours.
	AutoDisableAfter      = 5 * 24 * time.Hour
	AutoDisableBreak      = 24 * time.Hour
	DisabledReasonGone    = "endpoint answered 410 Gone"
	DisabledReasonFailing = "every delivery failed for 5 days"
)

// Health status values.
const (
	HealthHealthy = "healthy"
	HealthWarning = "warning"
	HealthError   = "error"
)

// Webhook is a shop's subscription of one URL to some event types.
type Webhook struct {
	ID          string
	ShopID      string
	URL         string
	Events      []EventType
	IsActive    bool
	Description string
	// Secret signs deliveries; PreviousSecret also signs them until
	// PreviousSecretExpiresAt, so that a rotation needs no downtime.
	Secret                  string
	PreviousSecret          string
	PreviousSecretExpiresAt time.Time
	CreatedAt               time.Time
	UpdatedAt               time.Time
	LastTriggeredAt         *time.Time
	// DisabledReason is set when the system disabled the webhook.
	DisabledReason string
	Health         Health
}

// Health is what the store keeps, attempt by attempt, to derive a webhook's
// health without scanning its deliveries.
type Health struct {
	ConsecutiveFailures int
	FailingSince        *time.Time // first failure of the current streak
	LastSuccessAt       *time.Time
	LastFailureAt       *time.Time
	LastFailureReason   string
	// Attempts and Successes in the last 24 hours, counted in whole UTC
	// hours as the stats are kept: the current hour and the 24 before it, so
	// every attempt of the last 24 hours counts.
	Attempts24h  int64
	Successes24h int64
}

// HealthStatus is the contract's health_status object.
type HealthStatus struct {
	Status              string     `json:"status"`
	SuccessRate         float64    `json:"success_rate"`
	LastFailureReason   string     `json:"last_failure_reason,omitempty"`
	LastSuccessAt       *time.Time `json:"-"`
	LastFailureAt       *time.Time `json:"-"`
	ConsecutiveFailures int        `json:"consecutive_failures"`
}

// HealthStatus derives the contract's health: error when disabled by the
// system, the last 5 attempts failed or the 24-hour success rate is under
// 80 %; warning under 95 % or after 2 failures in a row; else healthy.
func (w *Webhook) HealthStatus() HealthStatus {
	h := w.Health
	rate := 100.0
	if h.Attempts24h > 0 {
		rate = math.Round(float64(h.Successes24h)*10000/float64(h.Attempts24h)) / 100
	}
	status := HealthHealthy
	switch {
	case w.DisabledReason != "" || h.ConsecutiveFailures >= 5 || rate < 80:
		status = HealthError
	case rate < 95 || h.ConsecutiveFailures >= 2:
		status = HealthWarning
	}
	return HealthStatus{
		Status:              status,
		SuccessRate:         rate,
		LastFailureReason:   h.LastFailureReason,
		LastSuccessAt:       h.LastSuccessAt,
		LastFailureAt:       h.LastFailureAt,
		ConsecutiveFailures: h.ConsecutiveFailures,
	}
}

// SigningSecrets returns the secrets that sign a delivery made at now: the
// current one, and the previous one while its overlap lasts.
func (w *Webhook) SigningSecrets(now time.Time) []string {
	if w.PreviousSecret != "" && now.Before(w.PreviousSecretExpiresAt) {
		return []string{w.Secret, w.PreviousSecret}
	}
	return []string{w.Secret}
}

// Subscribes reports whether the webhook wants events of type t.
func (w *Webhook) Subscribes(t EventType) bool {
	return slices.Contains(w.Events, t)
}

// NewSecret returns a fresh whsec_ secret: 32 random bytes, base64.
func NewSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return SecretPrefix + base64.StdEncoding.EncodeToString(b)
}

// URLPolicy says which webhook URLs are acceptable.
type URLPolicy struct {
	AllowHTTP bool // plain http:// allowed (development)
}

// ValidateURL checks a webhook URL against the contract: absolute https
// (http only if allowed), at most 2,048 characters, a host, no user:password.
// It returns the reason, or "". A #fragment is allowed, as the contract
// does not forbid one; like any HTTP client, delivery never sends it.
func (p URLPolicy) ValidateURL(raw string) string {
	if raw == "" {
		return "is required"
	}
	if utf8.RuneCountInString(raw) > MaxURLLen {
		return "must be at most 2048 characters"
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" {
		return "must be an absolute URL"
	}
	if QueryHasSpace(u) {
		// It went onto the request line as it was: an invalid request
		// every receiver refuses, at every attempt. (A space in the path
		// is escaped when sent; a fragment is never sent.)
		return "must not contain a space in its query (percent-encode it, as %20)"
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
	case "http":
		if !p.AllowHTTP {
			return "must use https"
		}
	default:
		if p.AllowHTTP {
			return "must use https or http"
		}
		return "must use https"
	}
	if u.User != nil {
		return "must not contain a user or password"
	}
	if u.Hostname() == "" {
		return "must have a host"
	}
	if port := u.Port(); port != "" {
		// Every delivery to it would fail: refused here instead.
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return "must have a port from 1 to 65535"
		}
	}
	return ""
}

// QueryHasSpace reports whether u's query holds a bare space, which
// net/http would write onto the request line as it is. (url.Parse refuses
// control characters; a space in the path is escaped when sent.)
func QueryHasSpace(u *url.URL) bool {
	return strings.Contains(u.RawQuery, " ")
}

// NormalizeEvents checks a list of event types (non-empty, all known) and
// folds duplicates, keeping first-seen order. It returns the reason, or "".
func NormalizeEvents(events []EventType) ([]EventType, string) {
	if len(events) == 0 {
		return nil, "must be a non-empty list of event types"
	}
	out := make([]EventType, 0, len(events))
	for _, e := range events {
		if !IsEventType(e) {
			return nil, "unknown event type " + quote(e) + "; allowed: " + strings.Join(EventTypeNames(), ", ")
		}
		if !slices.Contains(out, e) {
			out = append(out, e)
		}
	}
	return out, ""
}

func quote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return `"` + s + `"`
}

// WebhookUpdate is a partial update: nil fields keep their value.
type WebhookUpdate struct {
	URL         *string
	Events      []EventType // nil: keep
	Description *string
	// IsActive true enables the webhook: one that was inactive forgets why
	// the system stopped it and its failure streak. An update that merely
	// repeats true of an active one (an edit form that sends every field)
	// keeps them, or it would hold off the 5-day rule for ever.
	IsActive *bool
	// ClearFailures, with IsActive true, clears the failure streak even of
	// an active webhook: set-active true does, as the contract says.
	ClearFailures bool
}

// WebhookStats is the contract's stats object.
type WebhookStats struct {
	TotalDeliveries   int64            `json:"total_deliveries"`
	SuccessCount      int64            `json:"success_count"`
	FailureCount      int64            `json:"failure_count"`
	AverageDurationMS float64          `json:"average_duration_ms"`
	EventCounts       map[string]int64 `json:"event_counts"`
	HourlyStats       []HourlyStat     `json:"hourly_stats"`
}

// HourlyStat counts the attempts of one UTC hour.
type HourlyStat struct {
	Hour    string `json:"hour"`
	Total   int64  `json:"total"`
	Success int64  `json:"success"`
	Failed  int64  `json:"failed"`
}

// WebhookService manages a shop's webhooks. Every method is scoped to a
// shop; an id of another shop is ENOTFOUND.
type WebhookService interface {
	// ListWebhooks returns the shop's webhooks, oldest first.
	ListWebhooks(ctx context.Context, shopID string) ([]*Webhook, error)
	// FindWebhook returns one webhook, or ENOTFOUND.
	FindWebhook(ctx context.Context, shopID, id string) (*Webhook, error)
	// CreateWebhook stores w (ID, secret and times set by the caller).
	// Returns ECONFLICT when the shop already has maxPerShop webhooks.
	CreateWebhook(ctx context.Context, w *Webhook, maxPerShop int) error
	// UpdateWebhook applies upd and returns the result, or ENOTFOUND.
	// Setting IsActive false cancels queued deliveries (recorded as failed,
	// "webhook disabled"); true clears DisabledReason and the failure streak.
	UpdateWebhook(ctx context.Context, shopID, id string, upd WebhookUpdate) (*Webhook, error)
	// DeleteWebhook removes the webhook, its queued deliveries and history.
	DeleteWebhook(ctx context.Context, shopID, id string) error
	// RotateSecret makes secret the current one; the old one keeps signing
	// for overlap. Returns ENOTFOUND.
	RotateSecret(ctx context.Context, shopID, id, secret string, overlap time.Duration) (*Webhook, error)
	// WebhookStats counts the attempts made to the webhook in [from, to).
	WebhookStats(ctx context.Context, shopID, id string, from, to time.Time) (*WebhookStats, error)
	// ClearHistory deletes finished deliveries of the webhook created before
	// before (zero: all), only those of status when not "". Returns the count.
	ClearHistory(ctx context.Context, shopID, id string, before time.Time, status DeliveryStatus) (int64, error)
}
