package httpapi

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	webhooks "github.com/pancake-pos/pancake-webhooks"
)

// webhookJSON is the contract's Webhook object.
type webhookJSON struct {
	ID              string     `json:"id"`
	URL             string     `json:"url"`
	Events          []string   `json:"events"`
	IsActive        bool       `json:"is_active"`
	SecretKey       string     `json:"secret_key,omitempty"`
	Description     string     `json:"description,omitempty"`
	CreatedAt       string     `json:"created_at"`
	UpdatedAt       string     `json:"updated_at"`
	LastTriggeredAt string     `json:"last_triggered_at,omitempty"`
	HealthStatus    healthJSON `json:"health_status"`
	DisabledReason  string     `json:"disabled_reason,omitempty"`
}

type healthJSON struct {
	Status              string  `json:"status"`
	SuccessRate         float64 `json:"success_rate"`
	LastFailureReason   string  `json:"last_failure_reason,omitempty"`
	LastSuccessAt       string  `json:"last_success_at,omitempty"`
	LastFailureAt       string  `json:"last_failure_at,omitempty"`
	ConsecutiveFailures int     `json:"consecutive_failures"`
}

func formatTimePtr(t *time.Time) string {
	if t == nil || t.IsZero() {
		return ""
	}
	return webhooks.FormatTime(*t)
}

// newWebhookJSON converts w; withSecret includes its secret_key.
func newWebhookJSON(w *webhooks.Webhook, withSecret bool) webhookJSON {
	h := w.HealthStatus()
	out := webhookJSON{
		ID:              w.ID,
		URL:             w.URL,
		Events:          append([]string{}, w.Events...),
		IsActive:        w.IsActive,
		Description:     w.Description,
		CreatedAt:       webhooks.FormatTime(w.CreatedAt),
		UpdatedAt:       webhooks.FormatTime(w.UpdatedAt),
		LastTriggeredAt: formatTimePtr(w.LastTriggeredAt),
		HealthStatus: healthJSON{
			Status:              h.Status,
			SuccessRate:         h.SuccessRate,
			LastFailureReason:   h.LastFailureReason,
			LastSuccessAt:       formatTimePtr(h.LastSuccessAt),
			LastFailureAt:       formatTimePtr(h.LastFailureAt),
			ConsecutiveFailures: h.ConsecutiveFailures,
		},
		DisabledReason: w.DisabledReason,
	}
	if withSecret {
		out.SecretKey = w.Secret
	}
	return out
}

type webhookListJSON struct {
	Data  []webhookJSON `json:"data"`
	Total int           `json:"total"`
}

type successJSON struct {
	Success bool `json:"success"`
}

type secretJSON struct {
	SecretKey string `json:"secret_key"`
}

type deletedCountJSON struct {
	DeletedCount int64 `json:"deleted_count"`
}

// pathWebhookID returns the webhook id of the path; one that cannot exist
// is ENOTFOUND without asking the store.
func pathWebhookID(r *http.Request) (string, error) {
	id := r.PathValue("webhook_id")
	if !webhooks.ValidID(webhooks.PrefixWebhook, id) {
		return "", webhooks.Errorf(webhooks.ENOTFOUND, "Webhook not found")
	}
	return id, nil
}

// webhookParams is a decoded create or update body. Nil fields were absent.
type webhookParams struct {
	URL         *string
	Events      []string
	Description *string
	IsActive    *bool
}

// decodeWebhookParams decodes and validates the body of POST /webhooks
// (create true: url and events required) or PUT /webhooks/{id} (absent
// fields keep their value; null url or events is an error, a null
// description clears it).
func decodeWebhookParams(body []byte, policy webhooks.URLPolicy, create bool) (webhookParams, error) {
	m, err := parseObject(body)
	if err != nil {
		return webhookParams{}, err
	}
	errs := webhooks.ValidationErrors{}
	o := newJSONObject(m, "", errs)
	o.only("url", "events", "description", "is_active")
	var p webhookParams
	p.URL = o.str("url", create, false)
	if p.URL != nil {
		u := strings.TrimSpace(*p.URL)
		if reason := policy.ValidateURL(u); reason != "" {
			o.bad("url", reason)
		}
		p.URL = &u
	}
	if raw, ok := m["events"]; ok && jsonKind(raw) == kindNull {
		o.bad("events", "must be a non-empty list of event types, not null")
	} else if evs := o.strs("events", create); evs != nil || (ok && !create) {
		norm, reason := webhooks.NormalizeEvents(evs)
		if reason != "" {
			o.bad("events", reason)
		}
		p.Events = norm
	}
	if raw, ok := m["description"]; ok && jsonKind(raw) == kindNull {
		empty := ""
		p.Description = &empty
	} else if d := o.str("description", false, false); d != nil {
		if utf8.RuneCountInString(*d) > webhooks.MaxDescriptionLen {
			o.bad("description", "must be at most 1000 characters")
		}
		p.Description = d
	}
	p.IsActive = o.boolean("is_active", false)
	if err := errs.Err(); err != nil {
		return webhookParams{}, err
	}
	return p, nil
}

func (s *Server) handleListWebhooks(w http.ResponseWriter, r *http.Request) error {
	list, err := s.cfg.Webhooks.ListWebhooks(r.Context(), r.PathValue("shop_id"))
	if err != nil {
		return err
	}
	out := webhookListJSON{Data: make([]webhookJSON, 0, len(list)), Total: len(list)}
	for _, wh := range list {
		out.Data = append(out.Data, newWebhookJSON(wh, false))
	}
	s.writeJSON(w, r, http.StatusOK, out)
	return nil
}

func (s *Server) handleCreateWebhook(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	p, err := decodeWebhookParams(body, s.cfg.URLPolicy, true)
	if err != nil {
		return err
	}
	now := s.now().UTC()
	wh := &webhooks.Webhook{
		ID:        webhooks.NewID(webhooks.PrefixWebhook, now),
		ShopID:    r.PathValue("shop_id"),
		URL:       *p.URL,
		Events:    p.Events,
		IsActive:  true,
		Secret:    webhooks.NewSecret(),
		CreatedAt: now,
		UpdatedAt: now,
	}
	if p.Description != nil {
		wh.Description = *p.Description
	}
	if p.IsActive != nil {
		wh.IsActive = *p.IsActive
	}
	if err := s.cfg.Webhooks.CreateWebhook(r.Context(), wh, s.cfg.MaxWebhooksPerShop); err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusCreated, newWebhookJSON(wh, true))
	return nil
}

func (s *Server) handleGetWebhook(w http.ResponseWriter, r *http.Request) error {
	id, err := pathWebhookID(r)
	if err != nil {
		return err
	}
	wh, err := s.cfg.Webhooks.FindWebhook(r.Context(), r.PathValue("shop_id"), id)
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, newWebhookJSON(wh, true))
	return nil
}

func (s *Server) handleUpdateWebhook(w http.ResponseWriter, r *http.Request) error {
	id, err := pathWebhookID(r)
	if err != nil {
		return err
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	p, err := decodeWebhookParams(body, s.cfg.URLPolicy, false)
	if err != nil {
		return err
	}
	upd := webhooks.WebhookUpdate{URL: p.URL, Events: p.Events, Description: p.Description, IsActive: p.IsActive}
	wh, err := s.cfg.Webhooks.UpdateWebhook(r.Context(), r.PathValue("shop_id"), id, upd)
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, newWebhookJSON(wh, true))
	return nil
}

func (s *Server) handleDeleteWebhook(w http.ResponseWriter, r *http.Request) error {
	id, err := pathWebhookID(r)
	if err != nil {
		return err
	}
	if err := s.cfg.Webhooks.DeleteWebhook(r.Context(), r.PathValue("shop_id"), id); err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, successJSON{Success: true})
	return nil
}

// decodeSetActive decodes {is_active: bool}, which is required.
func decodeSetActive(body []byte) (bool, error) {
	m, err := parseObject(body)
	if err != nil {
		return false, err
	}
	errs := webhooks.ValidationErrors{}
	o := newJSONObject(m, "", errs)
	o.only("is_active")
	b := o.boolean("is_active", true)
	if err := errs.Err(); err != nil {
		return false, err
	}
	return *b, nil
}

func (s *Server) handleSetActive(w http.ResponseWriter, r *http.Request) error {
	id, err := pathWebhookID(r)
	if err != nil {
		return err
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	active, err := decodeSetActive(body)
	if err != nil {
		return err
	}
	wh, err := s.cfg.Webhooks.UpdateWebhook(r.Context(), r.PathValue("shop_id"), id, webhooks.WebhookUpdate{IsActive: &active, ClearFailures: true})
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, newWebhookJSON(wh, true))
	return nil
}

// testParams is a decoded test body.
type testParams struct {
	Event   string
	Payload json.RawMessage
}

// decodeTest decodes {event, payload}: event required and known, payload a
// JSON object (absent or null: {}).
func decodeTest(body []byte) (testParams, error) {
	m, err := parseObject(body)
	if err != nil {
		return testParams{}, err
	}
	errs := webhooks.ValidationErrors{}
	o := newJSONObject(m, "", errs)
	o.only("event", "payload")
	var p testParams
	if ev := o.str("event", true, false); ev != nil {
		if !webhooks.IsEventType(*ev) {
			o.bad("event", "unknown event type; allowed: "+strings.Join(webhooks.EventTypeNames(), ", "))
		}
		p.Event = *ev
	}
	p.Payload = o.object("payload", false, true)
	if p.Payload == nil {
		p.Payload = json.RawMessage("{}")
	}
	if err := errs.Err(); err != nil {
		return testParams{}, err
	}
	return p, nil
}

// attemptJSON answers test and retry.
type attemptJSON struct {
	DeliveryID    string               `json:"delivery_id"`
	Status        string               `json:"status"`
	Response      *attemptResponseJSON `json:"response,omitempty"`
	FailureReason string               `json:"failure_reason,omitempty"`
}

type attemptResponseJSON struct {
	StatusCode int    `json:"status_code"`
	Body       string `json:"body,omitempty"`
}

func newAttemptJSON(d *webhooks.Delivery) attemptJSON {
	out := attemptJSON{DeliveryID: d.ID, Status: string(d.Status), FailureReason: d.FailureReason}
	if d.Response != nil {
		out.Response = &attemptResponseJSON{StatusCode: d.Response.StatusCode, Body: d.Response.Body}
	}
	return out
}

func (s *Server) handleTestWebhook(w http.ResponseWriter, r *http.Request) error {
	id, err := pathWebhookID(r)
	if err != nil {
		return err
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	p, err := decodeTest(body)
	if err != nil {
		return err
	}
	// The slot first: the webhook is read once one is free, so a test
	// that waited goes to its URL and secret as they are then.
	leave, err := s.sync.enter(r.Context(), w, r.PathValue("shop_id"))
	if err != nil {
		return err
	}
	defer leave()
	wh, err := s.cfg.Webhooks.FindWebhook(r.Context(), r.PathValue("shop_id"), id)
	if err != nil {
		return err
	}
	d, err := s.cfg.Attempter.Test(r.Context(), wh, p.Event, p.Payload)
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, newAttemptJSON(d))
	return nil
}

// decodeEmpty accepts an empty body or {} and nothing else.
func decodeEmpty(body []byte) error {
	m, err := parseObject(body)
	if err != nil {
		return err
	}
	errs := webhooks.ValidationErrors{}
	newJSONObject(m, "", errs).only()
	return errs.Err()
}

func (s *Server) handleRotateSecret(w http.ResponseWriter, r *http.Request) error {
	id, err := pathWebhookID(r)
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
	wh, err := s.cfg.Webhooks.RotateSecret(r.Context(), r.PathValue("shop_id"), id, webhooks.NewSecret(), max(0, s.cfg.SecretOverlap))
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, secretJSON{SecretKey: wh.Secret})
	return nil
}

func (s *Server) handleWebhookStats(w http.ResponseWriter, r *http.Request) error {
	id, err := pathWebhookID(r)
	if err != nil {
		return err
	}
	from, to, err := parseStatsQuery(r.URL.RawQuery, s.now())
	if err != nil {
		return err
	}
	st, err := s.cfg.Webhooks.WebhookStats(r.Context(), r.PathValue("shop_id"), id, from, to)
	if err != nil {
		return err
	}
	out := *st
	if out.EventCounts == nil {
		out.EventCounts = map[string]int64{}
	}
	if out.HourlyStats == nil {
		out.HourlyStats = []webhooks.HourlyStat{}
	}
	s.writeJSON(w, r, http.StatusOK, out)
	return nil
}

// clearHistoryParams is a decoded clear-history body.
type clearHistoryParams struct {
	Before time.Time // zero: all
	Status webhooks.DeliveryStatus
}

// decodeClearHistory decodes {before_date?, status?}: before_date a
// YYYY-MM-DD day (00:00 UTC) or an RFC 3339 time, status success or failed.
func decodeClearHistory(body []byte) (clearHistoryParams, error) {
	m, err := parseObject(body)
	if err != nil {
		return clearHistoryParams{}, err
	}
	errs := webhooks.ValidationErrors{}
	o := newJSONObject(m, "", errs)
	o.only("before_date", "status")
	var p clearHistoryParams
	if d := o.str("before_date", false, true); d != nil && *d != "" {
		if t, ok := parseDate(*d); ok {
			p.Before = t
		} else if t, err := time.Parse(time.RFC3339Nano, *d); err == nil && len(*d) <= 40 {
			p.Before = notBeforeEpoch(t.UTC())
		} else {
			o.bad("before_date", "must be a date as YYYY-MM-DD, or an RFC 3339 time")
		}
	}
	if st := o.str("status", false, true); st != nil && *st != "" {
		switch *st {
		case "success", "failed":
			p.Status = webhooks.DeliveryStatus(*st)
		default:
			o.bad("status", "must be one of: success, failed")
		}
	}
	if err := errs.Err(); err != nil {
		return clearHistoryParams{}, err
	}
	return p, nil
}

func (s *Server) handleClearHistory(w http.ResponseWriter, r *http.Request) error {
	id, err := pathWebhookID(r)
	if err != nil {
		return err
	}
	body, err := readBody(r)
	if err != nil {
		return err
	}
	p, err := decodeClearHistory(body)
	if err != nil {
		return err
	}
	n, err := s.cfg.Webhooks.ClearHistory(r.Context(), r.PathValue("shop_id"), id, p.Before, p.Status)
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, deletedCountJSON{DeletedCount: n})
	return nil
}
