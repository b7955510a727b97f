package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp/cmpopts"
	webhooks "github.com/pancake-pos/pancake-webhooks"
	"github.com/pancake-pos/pancake-webhooks/httpapi"
	"github.com/pancake-pos/pancake-webhooks/store"
	"github.com/pancake-pos/pancake-webhooks/store/storetest"
)

// testStart is the fixed time every test clock starts at.
var testStart = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// testClock is a clock that moves only when told.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func newTestClock() *testClock { return &testClock{t: testStart} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// dbKinds are the databases the HTTP contract is run against.
var dbKinds = []string{"sqlite", "postgres"}

// forEachDB runs body once per database, as subtests named after the kind
// (TestX/sqlite, TestX/postgres); mustOpenDB, called anywhere under one of
// them, opens that kind. Without PANCAKE_TEST_POSTGRES_URL the postgres
// subtest skips with a message saying how to run it (and fails when
// PANCAKE_TEST_REQUIRE_POSTGRES=1).
func forEachDB(t *testing.T, body func(t *testing.T)) {
	t.Helper()
	for _, kind := range dbKinds {
		t.Run(kind, func(t *testing.T) {
			if kind == "postgres" && os.Getenv("PANCAKE_TEST_POSTGRES_URL") == "" {
				storetest.PostgresDSN(t) // skips or fails, with the message
			}
			body(t)
		})
	}
}

// dbKind is the database of the forEachDB subtest tb runs under.
func dbKind(tb testing.TB) string {
	tb.Helper()
	if parts := strings.Split(tb.Name(), "/"); len(parts) > 1 && slices.Contains(dbKinds, parts[1]) {
		return parts[1]
	}
	tb.Fatalf("%s does not run under forEachDB, so it has no database kind", tb.Name())
	return ""
}

// mustOpenDB opens a fresh, empty store of the test's database kind: SQLite
// in a temporary directory, or PostgreSQL in a schema of its own.
func mustOpenDB(tb testing.TB, now func() time.Time) *store.DB {
	tb.Helper()
	var dsn string
	switch dbKind(tb) {
	case "sqlite":
		dsn = "sqlite:" + filepath.Join(tb.TempDir(), "test.db")
	case "postgres":
		dsn = storetest.PostgresDSN(tb)
	}
	db, err := store.Open(context.Background(), dsn, store.Options{Now: now})
	if err != nil {
		tb.Fatalf("store.Open: %v", err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	return db
}

// mustCreateShop creates a shop and returns its API key and key id.
func mustCreateShop(tb testing.TB, db *store.DB, shopID string, now time.Time) (key, keyID string) {
	tb.Helper()
	key, stored := webhooks.NewAPIKey(shopID, now)
	if err := db.CreateShop(context.Background(), &webhooks.Shop{ID: shopID, CreatedAt: now}, stored); err != nil {
		tb.Fatalf("CreateShop: %v", err)
	}
	return key, stored.ID
}

// testAttempter is the Attempter of the tests: it makes no HTTP call but
// records the attempt in the store like the real one, with the outcome
// ResultFunc chooses (default: 200 OK).
type testAttempter struct {
	db  *store.DB
	now func() time.Time

	mu         sync.Mutex
	ResultFunc func(w *webhooks.Webhook) (webhooks.DeliveryStatus, *webhooks.Response, string)
	// TestFunc and RetryFunc, when set, replace the whole behaviour.
	TestFunc  func(ctx context.Context, w *webhooks.Webhook, event webhooks.EventType, payload json.RawMessage) (*webhooks.Delivery, error)
	RetryFunc func(ctx context.Context, shopID, id string) (*webhooks.Delivery, error)

	lastPayload json.RawMessage
}

func (a *testAttempter) result(w *webhooks.Webhook) (webhooks.DeliveryStatus, *webhooks.Response, string) {
	a.mu.Lock()
	f := a.ResultFunc
	a.mu.Unlock()
	if f != nil {
		return f(w)
	}
	return webhooks.StatusSuccess, &webhooks.Response{StatusCode: 200, Headers: map[string]string{"Content-Type": "text/plain"}, Body: "ok"}, ""
}

func (a *testAttempter) Test(ctx context.Context, w *webhooks.Webhook, event webhooks.EventType, payload json.RawMessage) (*webhooks.Delivery, error) {
	if a.TestFunc != nil {
		return a.TestFunc(ctx, w, event, payload)
	}
	a.mu.Lock()
	a.lastPayload = payload
	a.mu.Unlock()
	now := a.now()
	ev, err := webhooks.NewEvent(w.ShopID, event, payload, "", true, now)
	if err != nil {
		return nil, err
	}
	status, resp, reason := a.result(w)
	d := &webhooks.Delivery{
		ID: webhooks.NewID(webhooks.PrefixDelivery, now), ShopID: w.ShopID, WebhookID: w.ID, EventID: ev.ID,
		Event: event, Payload: ev.Envelope, Status: status, Trigger: webhooks.TriggerTest, Attempt: 1,
		Response: resp, FailureReason: reason, CreatedAt: now, DurationMS: 12,
		RequestHeaders: map[string]string{"webhook-id": ev.ID},
	}
	if err := a.db.RecordSyncAttempt(ctx, webhooks.SyncAttempt{Event: ev, Delivery: d}); err != nil {
		return nil, err
	}
	return d, nil
}

func (a *testAttempter) Retry(ctx context.Context, shopID, id string) (*webhooks.Delivery, error) {
	if a.RetryFunc != nil {
		return a.RetryFunc(ctx, shopID, id)
	}
	orig, err := a.db.FindDelivery(ctx, shopID, id)
	if err != nil {
		return nil, err
	}
	if orig.Status == webhooks.StatusPending {
		return nil, webhooks.Errorf(webhooks.ECONFLICT, "Delivery %s is queued", id)
	}
	w, err := a.db.FindWebhook(ctx, shopID, orig.WebhookID)
	if err != nil {
		return nil, err
	}
	now := a.now()
	status, resp, reason := a.result(w)
	d := &webhooks.Delivery{
		ID: webhooks.NewID(webhooks.PrefixDelivery, now), ShopID: shopID, WebhookID: w.ID, EventID: orig.EventID,
		Event: orig.Event, Payload: orig.Payload, Status: status, Trigger: webhooks.TriggerManualRetry,
		Attempt: 1, RetryOf: id, Response: resp, FailureReason: reason, CreatedAt: now, DurationMS: 7,
	}
	if err := a.db.RecordSyncAttempt(ctx, webhooks.SyncAttempt{Delivery: d}); err != nil {
		return nil, err
	}
	return d, nil
}

// apiBundle is what most tests need: a Server on a real store with one shop.
type apiBundle struct {
	srv       *httpapi.Server
	db        *store.DB
	clock     *testClock
	attempter *testAttempter
	logs      *storetest.LogBuffer
	shopID    string
	key       string
	keyID     string
	// otherShop has its own key, for isolation tests.
	otherShop string
	otherKey  string
}

// setupAPI returns a Server on a fresh store of the test's database kind
// (see forEachDB); mods adjust its Config.
func setupAPI(t *testing.T, mods ...func(*httpapi.Config)) *apiBundle {
	t.Helper()
	clock := newTestClock()
	db := mustOpenDB(t, clock.Now)
	key, keyID := mustCreateShop(t, db, "shop-1", clock.Now())
	otherKey, _ := mustCreateShop(t, db, "shop-2", clock.Now())
	logs := &storetest.LogBuffer{}
	att := &testAttempter{db: db, now: clock.Now}
	cfg := httpapi.Config{
		Logger:     slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:        clock.Now,
		Shops:      db,
		Webhooks:   db,
		Deliveries: db,
		Events:     db,
		Attempter:  att,
		Ready:      db.Ready,
		AdminToken: "admin-secret",
		Version:    "test",
	}
	for _, m := range mods {
		m(&cfg)
	}
	srv, err := httpapi.NewServer(cfg)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	t.Cleanup(srv.Close)
	return &apiBundle{
		srv: srv, db: db, clock: clock, attempter: att, logs: logs,
		shopID: "shop-1", key: key, keyID: keyID, otherShop: "shop-2", otherKey: otherKey,
	}
}

// response is a recorded answer.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into a generic value.
func (r *response) JSON(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("response is not a JSON object: %v\n%s", err, r.Body)
	}
	return m
}

// Decode decodes the body into v.
func (r *response) Decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode response: %v\n%s", err, r.Body)
	}
}

// ErrorCode returns error.code of an error envelope.
func (r *response) ErrorCode(t *testing.T) string {
	t.Helper()
	var env struct {
		Success *bool `json:"success"`
		Error   struct {
			Code    string         `json:"code"`
			Message string         `json:"message"`
			Details map[string]any `json:"details"`
		} `json:"error"`
	}
	r.Decode(t, &env)
	if env.Success == nil || *env.Success {
		t.Fatalf("not an error envelope: %s", r.Body)
	}
	return env.Error.Code
}

// ErrorDetails returns error.details of an error envelope.
func (r *response) ErrorDetails(t *testing.T) map[string]any {
	t.Helper()
	var env struct {
		Error struct {
			Details map[string]any `json:"details"`
		} `json:"error"`
	}
	r.Decode(t, &env)
	return env.Error.Details
}

// request is one call to make.
type request struct {
	Method string
	Path   string // with query
	Body   any    // string, []byte or a value to marshal; nil: no body
	Key    string // sent as ?api_key= unless Bearer
	Bearer string // sent as Authorization: Bearer
	Header http.Header
}

func (b *apiBundle) do(t *testing.T, req request) *response {
	t.Helper()
	return serve(t, b.srv, req)
}

// call makes a request with the bundle's key, the way pancake-client-sdk
// does: ?api_key= and Content-Type: application/json.
func (b *apiBundle) call(t *testing.T, method, path string, body any) *response {
	t.Helper()
	return b.do(t, request{Method: method, Path: path, Body: body, Key: b.key})
}

func serve(t *testing.T, h http.Handler, req request) *response {
	t.Helper()
	var body io.Reader
	switch v := req.Body.(type) {
	case nil:
	case string:
		body = strings.NewReader(v)
	case []byte:
		body = bytes.NewReader(v)
	case io.Reader:
		body = v
	default:
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("marshal request: %v", err)
		}
		body = bytes.NewReader(b)
	}
	path := req.Path
	if req.Key != "" {
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		path += sep + "api_key=" + req.Key
	}
	r := httptest.NewRequest(req.Method, path, body)
	r.Header.Set("Content-Type", "application/json")
	if req.Bearer != "" {
		r.Header.Set("Authorization", "Bearer "+req.Bearer)
	}
	for k, vs := range req.Header {
		r.Header[k] = vs
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	res := w.Result()
	b, _ := io.ReadAll(res.Body)
	return &response{Status: res.StatusCode, Header: res.Header, Body: b}
}

// shopPath returns /api/v1/shops/{shop}/ + rest.
func shopPath(shop, rest string) string {
	return "/api/v1/shops/" + shop + rest
}

// webhookOut is the Webhook object as a client sees it.
type webhookOut struct {
	ID              string   `json:"id"`
	URL             string   `json:"url"`
	Events          []string `json:"events"`
	IsActive        bool     `json:"is_active"`
	SecretKey       string   `json:"secret_key,omitempty"`
	Description     string   `json:"description,omitempty"`
	CreatedAt       string   `json:"created_at"`
	UpdatedAt       string   `json:"updated_at"`
	LastTriggeredAt string   `json:"last_triggered_at,omitempty"`
	HealthStatus    struct {
		Status              string  `json:"status"`
		SuccessRate         float64 `json:"success_rate"`
		LastFailureReason   string  `json:"last_failure_reason,omitempty"`
		LastSuccessAt       string  `json:"last_success_at,omitempty"`
		LastFailureAt       string  `json:"last_failure_at,omitempty"`
		ConsecutiveFailures int     `json:"consecutive_failures"`
	} `json:"health_status"`
	DisabledReason string `json:"disabled_reason,omitempty"`
}

// createWebhook creates a webhook through the API and returns it.
func (b *apiBundle) createWebhook(t *testing.T, body any) webhookOut {
	t.Helper()
	res := b.call(t, "POST", shopPath(b.shopID, "/webhooks"), body)
	if res.Status != http.StatusCreated {
		t.Fatalf("create webhook: status %d: %s", res.Status, res.Body)
	}
	var w webhookOut
	res.Decode(t, &w)
	return w
}

func (b *apiBundle) mustCreateWebhook(t *testing.T, events ...string) webhookOut {
	t.Helper()
	if len(events) == 0 {
		events = []string{"order.created"}
	}
	return b.createWebhook(t, map[string]any{"url": "https://example.com/hook", "events": events})
}

// publish publishes one event through the API.
func (b *apiBundle) publish(t *testing.T, event string, data any) string {
	t.Helper()
	res := b.call(t, "POST", shopPath(b.shopID, "/events"), map[string]any{"event": event, "data": data})
	if res.Status != http.StatusAccepted {
		t.Fatalf("publish: status %d: %s", res.Status, res.Body)
	}
	var out struct {
		EventID string `json:"event_id"`
	}
	res.Decode(t, &out)
	return out.EventID
}

// attemptQueued claims every due delivery and records each as one attempt
// with the outcome success says, as the dispatcher would. It returns the
// ids of the attempted deliveries.
func (b *apiBundle) attemptQueued(t *testing.T, success bool, next *time.Time) []string {
	t.Helper()
	ctx := context.Background()
	var ids []string
	for {
		jobs, err := b.db.ClaimDeliveries(ctx, webhooks.Claim{Limit: 100, LeaseFor: time.Minute})
		if err != nil {
			t.Fatalf("ClaimDeliveries: %v", err)
		}
		if len(jobs) == 0 {
			return ids
		}
		var results []webhooks.AttemptResult
		for _, j := range jobs {
			r := webhooks.AttemptResult{
				DeliveryID: j.DeliveryID, WebhookID: j.WebhookID, Success: success,
				Response:       webhooks.Response{StatusCode: 200, Headers: map[string]string{"X-Test": "1"}, Body: "fine"},
				AttemptedAt:    b.clock.Now(),
				Duration:       30 * time.Millisecond,
				RequestHeaders: map[string]string{"webhook-id": j.EventID},
			}
			if !success {
				r.Response = webhooks.Response{StatusCode: 500, Headers: map[string]string{}, Body: "boom"}
				r.FailureReason = "HTTP 500"
				r.NextAttemptAt = next
			}
			results = append(results, r)
			ids = append(ids, j.DeliveryID)
		}
		if err := b.db.RecordAttempts(ctx, results); err != nil {
			t.Fatalf("RecordAttempts: %v", err)
		}
	}
}

// cmpSortStrings compares string slices as sets.
var cmpSortStrings = cmpopts.SortSlices(func(a, b string) bool { return a < b })
