package main_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	webhooks "github.com/pancake-pos/pancake-webhooks"
	pw "github.com/pancake-pos/pancake-webhooks/cmd/pancake-webhooks"
	"github.com/pancake-pos/pancake-webhooks/pancake"
	"github.com/pancake-pos/pancake-webhooks/store"
	"github.com/pancake-pos/pancake-webhooks/store/storetest"
)

// testClient is the tests' HTTP client. Not http.DefaultClient: closing an
// httptest.Server closes the idle connections of the default transport,
// which breaks a request another parallel test is sending on one of them
// ("http: CloseIdleConnections called").
var testClient = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}

// e2eAdminToken is the admin token of the servers the CLI and SDK tests
// start.
const e2eAdminToken = "e2e-admin-token-0123456789abcdef"

// e2eServer is a real server (store, engine, API) started in-process on a
// throw-away SQLite database.
type e2eServer struct {
	base   string // http://127.0.0.1:port
	apiURL string // base + /api/v1
	db     string // its --db
}

// startE2EServer starts Main on a free port, its configuration changed by
// mods, and stops it when t ends.
func startE2EServer(t *testing.T, mods ...func(*pw.ServeConfig)) *e2eServer {
	t.Helper()
	db := "sqlite:" + filepath.Join(t.TempDir(), "webhooks.db")
	cfg := pw.ServeConfig{
		Addr:                 "127.0.0.1:0",
		DB:                   db,
		AdminToken:           e2eAdminToken,
		AllowPrivateNetworks: true,
		AllowHTTP:            true,
		LogLevel:             "error",
		LogFormat:            "text",
		SecretOverlap:        webhooks.DefaultSecretOverlap, // the flag's default
	}
	for _, mod := range mods {
		mod(&cfg)
	}
	m := pw.NewMain(cfg, io.Discard, t.Output())
	if err := m.Run(context.Background()); err != nil {
		m.Close()
		t.Fatalf("Main.Run: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Errorf("Main.Close: %v", err)
		}
	})
	base := "http://" + m.Addr
	return &e2eServer{base: base, apiURL: base + "/api/v1", db: db}
}

// createShop creates a shop through the admin API and returns its API key.
func (s *e2eServer) createShop(t *testing.T, shopID string) string {
	t.Helper()
	body := strings.NewReader(fmt.Sprintf(`{"shop_id": %q}`, shopID))
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.apiURL+"/admin/shops", body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e2eAdminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		ShopID string `json:"shop_id"`
		APIKey string `json:"api_key"`
	}
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST /admin/shops: %d %s", resp.StatusCode, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	if out.ShopID != shopID || !strings.HasPrefix(out.APIKey, "pk_") {
		t.Fatalf("POST /admin/shops answered %+v", out)
	}
	return out.APIKey
}

// client returns an SDK client of the server for shopID with key.
func (s *e2eServer) client(key, shopID string) *pancake.Client {
	return pancake.NewClient(key, shopID, pancake.WithBaseURL(s.apiURL), pancake.WithRetry(0, 0, 0))
}

// e2eRequest is what a receiver got.
type e2eRequest struct {
	header http.Header
	body   []byte
}

// envelope decodes the body.
func (r e2eRequest) envelope(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("receiver got a body that is not JSON: %v: %s", err, r.body)
	}
	return m
}

// e2eReceiver is a webhook endpoint that records what it gets. It answers
// status (200 unless set) with answer (`{"ok":true}` unless set, and then
// with a header X-Tab: "left<TAB>right"); with hold set it waits until
// released.
type e2eReceiver struct {
	srv    *httptest.Server
	url    string
	got    chan e2eRequest
	status atomic.Int32
	answer atomic.Pointer[string]

	mu      sync.Mutex
	hold    bool
	release chan struct{}
	relOnce sync.Once
}

func startE2EReceiver(t *testing.T) *e2eReceiver {
	t.Helper()
	r := &e2eReceiver{got: make(chan e2eRequest, 1000), release: make(chan struct{})}
	r.status.Store(http.StatusOK)
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.got <- e2eRequest{header: req.Header.Clone(), body: body}
		r.mu.Lock()
		hold := r.hold
		r.mu.Unlock()
		if hold {
			select {
			case <-r.release:
			case <-req.Context().Done():
			}
		}
		answer := `{"ok":true}`
		if a := r.answer.Load(); a != nil {
			answer = *a
			w.Header().Set("X-Tab", "left\tright") // a header value may hold a tab
		}
		w.WriteHeader(int(r.status.Load()))
		io.WriteString(w, answer)
	}))
	r.url = r.srv.URL + "/hooks"
	t.Cleanup(func() {
		r.unhold()
		r.srv.Close()
	})
	return r
}

// holdRequests makes requests wait until unhold.
func (r *e2eReceiver) holdRequests() {
	r.mu.Lock()
	r.hold = true
	r.mu.Unlock()
}

func (r *e2eReceiver) unhold() { r.relOnce.Do(func() { close(r.release) }) }

// next waits for the next request.
func (r *e2eReceiver) next(t *testing.T) e2eRequest {
	t.Helper()
	select {
	case req := <-r.got:
		return req
	case <-t.Context().Done():
		t.Fatal("the receiver got nothing")
		return e2eRequest{}
	}
}

// drain forgets what the receiver got so far.
func (r *e2eReceiver) drain() {
	for {
		select {
		case <-r.got:
		default:
			return
		}
	}
}

// cliResult is what one run of the CLI did.
type cliResult struct {
	code           int
	stdout, stderr string
}

// runCLI runs the command line in-process.
func runCLI(t *testing.T, args ...string) cliResult {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := pw.Run(t.Context(), args, &stdout, &stderr)
	return cliResult{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// wantCode fails the test unless the run exited with code.
func (r cliResult) wantCode(t *testing.T, code int) cliResult {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit code = %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
	return r
}

// wantOK fails the test unless the run succeeded.
func (r cliResult) wantOK(t *testing.T) cliResult {
	t.Helper()
	return r.wantCode(t, pw.ExitOK)
}

// contains fails the test unless stdout contains every string.
func (r cliResult) contains(t *testing.T, want ...string) cliResult {
	t.Helper()
	has(t, "stdout", r.stdout, want)
	return r
}

// stderrContains fails the test unless stderr has every one of want.
func (r cliResult) stderrContains(t *testing.T, want ...string) cliResult {
	t.Helper()
	has(t, "stderr", r.stderr, want)
	return r
}

// has fails the test unless out (named name) contains every one of want.
func has(t *testing.T, name, out string, want []string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("%s lacks %q:\n%s", name, w, out)
		}
	}
}

// decode decodes stdout as JSON into v, refusing fields v does not have.
func (r cliResult) decode(t *testing.T, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("stdout is not the JSON expected: %v\n%s", err, r.stdout)
	}
}

// object decodes stdout as one JSON object.
func (r cliResult) object(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &m); err != nil {
		t.Fatalf("stdout is not a JSON object: %v\n%s", err, r.stdout)
	}
	return m
}

// wantKeys fails the test unless m has every key.
func wantKeys(t *testing.T, what string, m map[string]any, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			t.Errorf("%s lacks %q: %v", what, k, m)
		}
	}
}

// freeAddr returns an address on which nothing listens.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// e2eBundle is one server, one shop with its key and SDK client, and a
// receiver; run runs the CLI bound to them.
type e2eBundle struct {
	srv      *e2eServer
	shop     string
	key      string
	client   *pancake.Client
	receiver *e2eReceiver
}

// conn returns the connection flags.
func (b *e2eBundle) conn() []string {
	return []string{"--api-url", b.srv.apiURL, "--api-key", b.key, "--shop", b.shop}
}

// run runs group sub args… with the connection flags.
func (b *e2eBundle) run(t *testing.T, args ...string) cliResult {
	t.Helper()
	return runCLI(t, append(args, b.conn()...)...)
}

// webhook creates a webhook to the receiver through the SDK.
func (b *e2eBundle) webhook(t *testing.T, evs ...pancake.WebhookEvent) *pancake.Webhook {
	t.Helper()
	if len(evs) == 0 {
		evs = []pancake.WebhookEvent{pancake.EventOrderCreated}
	}
	h, err := b.client.Webhooks.Create(t.Context(), pancake.CreateWebhookRequest{URL: b.receiver.url, Events: evs})
	if err != nil {
		t.Fatalf("Webhooks.Create: %v", err)
	}
	return h
}

// setupE2E starts a server (changed by mods) and a receiver and creates the
// shop "shop-e2e".
func setupE2E(t *testing.T, mods ...func(*pw.ServeConfig)) *e2eBundle {
	t.Helper()
	srv := startE2EServer(t, mods...)
	b := &e2eBundle{srv: srv, shop: "shop-e2e", receiver: startE2EReceiver(t)}
	b.key = srv.createShop(t, b.shop)
	b.client = srv.client(b.key, b.shop)
	return b
}

var (
	webhookIDRe  = regexp.MustCompile(`\bwh_[0-9A-Za-z]+`)
	deliveryIDRe = regexp.MustCompile(`\bdlv_[0-9A-Za-z]+`)
)

func TestCLIWebhooks(t *testing.T) {
	t.Parallel()

	t.Run("CreateShowsTheSecret", func(t *testing.T) {
		t.Parallel()
		b := setupE2E(t)

		r := b.run(t, "webhooks", "create", "--url", b.receiver.url, "--event", "order.created", "--event", "order.updated,order.cancelled",
			"--description", "Kitchen display").wantOK(t).
			contains(t, "ID:", "URL:", b.receiver.url, "order.created, order.updated, order.cancelled", "Kitchen display",
				"Active:", "yes", "● healthy", "Secret:", "whsec_")
		id := webhookIDRe.FindString(r.stdout)
		h, err := b.client.Webhooks.GetByID(t.Context(), id)
		if err != nil {
			t.Fatalf("Webhooks.GetByID(%q): %v", id, err)
		}
		if !strings.Contains(r.stdout, h.SecretKey) {
			t.Errorf("the table does not show the secret %s:\n%s", h.SecretKey, r.stdout)
		}

		r = b.run(t, "webhooks", "create", "--url", b.receiver.url, "--event", "customer.created", "--inactive", "--json").wantOK(t)
		m := r.object(t)
		wantKeys(t, "create --json", m, "id", "url", "events", "is_active", "secret_key", "created_at", "updated_at", "health_status")
		var got pancake.Webhook
		r.decode(t, &got)
		if !strings.HasPrefix(got.SecretKey, "whsec_") || got.IsActive {
			t.Errorf("create --inactive --json = %+v, want a secret and is_active false", got)
		}
		want, err := b.client.Webhooks.GetByID(t.Context(), got.ID)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, &got); diff != "" {
			t.Errorf("webhooks create --json returned diff (-server +cli):\n%s", diff)
		}
	})

	t.Run("ListShowsHealthWithoutSecrets", func(t *testing.T) {
		t.Parallel()
		b := setupE2E(t)
		h1 := b.webhook(t)
		h2 := b.webhook(t, pancake.AllEvents()...)
		if _, err := b.client.Webhooks.SetActive(t.Context(), h2.ID, false); err != nil {
			t.Fatal(err)
		}

		r := b.run(t, "webhooks", "list").wantOK(t).
			contains(t, "ID", "URL", "EVENTS", "HEALTH", h1.ID, h2.ID, b.receiver.url, "order.created", "all 13 events",
				"● healthy", "100.0%", "2 webhooks")
		if strings.Contains(r.stdout, "whsec_") {
			t.Errorf("webhooks list shows a secret:\n%s", r.stdout)
		}
		lines := strings.Split(r.stdout, "\n")
		if !strings.Contains(lines[2], h2.ID) || !strings.Contains(lines[2], "no") {
			t.Errorf("the row of the disabled webhook does not say so: %q", lines[2])
		}

		r = b.run(t, "webhooks", "list", "--json").wantOK(t)
		m := r.object(t)
		wantKeys(t, "list --json", m, "data", "total")
		for _, w := range m["data"].([]any) {
			wm := w.(map[string]any)
			wantKeys(t, "a webhook of list --json", wm, "id", "url", "events", "is_active", "health_status")
			if _, ok := wm["secret_key"]; ok {
				t.Errorf("list --json has a secret_key: %v", wm)
			}
		}
		var got pancake.WebhookList
		r.decode(t, &got)
		want, err := b.client.Webhooks.List(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, &got); diff != "" {
			t.Errorf("webhooks list --json returned diff (-server +cli):\n%s", diff)
		}
	})

	t.Run("ListOfNoneSaysHowToCreate", func(t *testing.T) {
		t.Parallel()
		b := setupE2E(t)
		b.run(t, "webhooks", "list").wantOK(t).contains(t, "No webhooks", "webhooks create")
		var got pancake.WebhookList
		b.run(t, "webhooks", "list", "--json").wantOK(t).decode(t, &got)
		if got.Total != 0 || got.Data == nil {
			t.Errorf("list --json of none = %+v, want data [] and total 0", got)
		}
	})

	t.Run("GetUpdateEnableDisable", func(t *testing.T) {
		t.Parallel()
		b := setupE2E(t)
		h := b.webhook(t)

		b.run(t, "webhooks", "get", h.ID).wantOK(t).contains(t, h.ID, h.URL, "order.created", h.SecretKey, "● healthy", "Created:")
		var got pancake.Webhook
		b.run(t, "webhooks", "get", h.ID, "--json").wantOK(t).decode(t, &got)
		if diff := cmp.Diff(h, &got); diff != "" {
			t.Errorf("webhooks get --json returned diff (-created +got):\n%s", diff)
		}

		newURL := b.receiver.srv.URL + "/v2"
		r := b.run(t, "webhooks", "update", h.ID, "--url", newURL, "--event", "order.cancelled", "--description", "v2").wantOK(t).
			contains(t, newURL, "order.cancelled", "v2")
		// Only get, create and rotate-secret show the secret.
		if strings.Contains(r.stdout, "whsec_") {
			t.Errorf("webhooks update shows the secret:\n%s", r.stdout)
		}
		got = pancake.Webhook{}
		b.run(t, "webhooks", "update", h.ID, "--description", "", "--json").wantOK(t).decode(t, &got)
		if got.URL != newURL || got.Description != "" || !slices.Equal(got.Events, []pancake.WebhookEvent{pancake.EventOrderCancelled}) {
			t.Errorf("after the updates the webhook is %+v", got)
		}

		if r := b.run(t, "webhooks", "disable", h.ID).wantOK(t).contains(t, "Active:", "no"); strings.Contains(r.stdout, "whsec_") {
			t.Errorf("webhooks disable shows the secret:\n%s", r.stdout)
		}
		got = pancake.Webhook{}
		b.run(t, "webhooks", "disable", h.ID, "--json").wantOK(t).decode(t, &got)
		if got.IsActive {
			t.Error("disable --json: is_active true")
		}
		got = pancake.Webhook{}
		b.run(t, "webhooks", "enable", h.ID, "--json").wantOK(t).decode(t, &got)
		if !got.IsActive {
			t.Error("enable --json: is_active false")
		}
		b.run(t, "webhooks", "enable", h.ID).wantOK(t).contains(t, "Active:", "yes")
	})

	t.Run("TestSendsToTheReceiver", func(t *testing.T) {
		t.Parallel()
		b := setupE2E(t)
		h := b.webhook(t)

		r := b.run(t, "webhooks", "test", h.ID, "--event", "order.created", "--data", `{"order_id": "ord_1", "total": 120000}`).wantOK(t).
			contains(t, "Delivery:", "dlv_", "✔ success", "HTTP 200")
		env := b.receiver.next(t).envelope(t)
		if env["test"] != true || env["event"] != "order.created" {
			t.Errorf("the receiver got %v, want a test order.created", env)
		}
		if data, _ := env["data"].(map[string]any); data["order_id"] != "ord_1" || data["total"] != float64(120000) {
			t.Errorf("the receiver got data %v", env["data"])
		}
		dlv := deliveryIDRe.FindString(r.stdout)

		var res pancake.DeliveryResult
		r = b.run(t, "webhooks", "test", h.ID, "--event", "order.created", "--json").wantOK(t)
		wantKeys(t, "test --json", r.object(t), "delivery_id", "status", "response")
		r.decode(t, &res)
		if res.Status != pancake.StatusSuccess || !strings.HasPrefix(res.DeliveryID, "dlv_") || res.DeliveryID == dlv ||
			res.Response == nil || res.Response.StatusCode != 200 {
			t.Errorf("test --json = %+v", res)
		}
		b.receiver.next(t)
	})

	t.Run("TestDataFromAFile", func(t *testing.T) {
		t.Parallel()
		b := setupE2E(t)
		h := b.webhook(t)
		file := filepath.Join(t.TempDir(), "order.json")
		if err := os.WriteFile(file, []byte(`{"order_id": "ord_file"}`), 0o600); err != nil {
			t.Fatal(err)
		}
		b.run(t, "webhooks", "test", h.ID, "--event", "order.created", "--data", "@"+file).wantOK(t)
		if data, _ := b.receiver.next(t).envelope(t)["data"].(map[string]any); data["order_id"] != "ord_file" {
			t.Errorf("the receiver got data %v", data)
		}
	})

	t.Run("FailingReceiverIsNotAnErrorOfTheCommand", func(t *testing.T) {
		t.Parallel()
		b := setupE2E(t)
		h := b.webhook(t)
		b.receiver.status.Store(http.StatusInternalServerError)

		b.run(t, "webhooks", "test", h.ID, "--event", "order.created").wantOK(t).
			contains(t, "✖ failed", "HTTP 500", "Failure:")
		var res pancake.DeliveryResult
		b.run(t, "webhooks", "test", h.ID, "--event", "order.created", "--json").wantOK(t).decode(t, &res)
		if res.Status != pancake.StatusFailed || res.FailureReason == "" {
			t.Errorf("test --json of a failing receiver = %+v", res)
		}
		// No HTTP response at all: no "HTTP 0", the failure says why.
		closed := httptest.NewServer(http.NotFoundHandler())
		closed.Close()
		gone, err := b.client.Webhooks.Create(t.Context(), pancake.CreateWebhookRequest{URL: closed.URL, Events: []pancake.WebhookEvent{pancake.EventOrderCreated}})
		if err != nil {
			t.Fatal(err)
		}
		out := b.run(t, "webhooks", "test", gone.ID, "--event", "order.created").wantOK(t).contains(t, "✖ failed", "Failure:", "connection refused")
		if strings.Contains(out.stdout, "Response:") {
			t.Errorf("test of a receiver that never answered shows a response:\n%s", out.stdout)
		}
		// Health shows at a glance: two failures in a row are a warning at
		// least.
		r := b.run(t, "webhooks", "list").wantOK(t)
		if !strings.Contains(r.stdout, "▲ warning") && !strings.Contains(r.stdout, "✖ error") {
			t.Errorf("webhooks list does not show the failures:\n%s", r.stdout)
		}
		b.run(t, "webhooks", "get", h.ID).wantOK(t).contains(t, "Last failure:", "failures in a row")
	})

	t.Run("ReceiverTextCannotDriveTheTerminal", func(t *testing.T) {
		t.Parallel()
		b := setupE2E(t)
		h := b.webhook(t)
		// Colours, a carriage return over the line, a bell, a title change
		// and a right-to-left override. (A byte that is not UTF-8 is
		// stored as U+FFFD by the server.)
		hostile := "boom \x1b[31mred\x1b[0m\rgone\a \x1b]0;title\x07 \u202eabc \xff\nline 2"
		b.receiver.answer.Store(&hostile)
		b.receiver.status.Store(http.StatusInternalServerError)

		test := b.run(t, "webhooks", "test", h.ID, "--event", "order.created").wantOK(t).
			contains(t, "HTTP 500 boom", `\x1b[31mred\x1b[0m gone\a`, `\x1b]0;title\a`, `\u202eabc`) // one line: \r and \n are spaces
		id := deliveryIDRe.FindString(test.stdout)
		get := b.run(t, "deliveries", "get", id).wantOK(t).
			contains(t, "Response body:", `boom \x1b[31mred\x1b[0m\rgone\a \x1b]0;title\a \u202eabc`, "\n  line 2",
				"X-Tab:", `left\tright`) // the tab escaped: one cell
		list := b.run(t, "deliveries", "list").wantOK(t)
		for name, out := range map[string]string{"webhooks test": test.stdout, "deliveries get": get.stdout, "deliveries list": list.stdout} {
			if i := strings.IndexFunc(out, func(r rune) bool {
				return r == 0x1b || r == '\r' || r == '\a' || r == 0x202e
			}); i >= 0 {
				t.Errorf("%s prints the receiver's control characters raw:\n%q", name, out)
			}
		}
		// --json keeps the text as stored, escaped as JSON.
		var d pancake.WebhookDelivery
		b.run(t, "deliveries", "get", id, "--json").wantOK(t).decode(t, &d)
		if d.Response.Body != strings.ToValidUTF8(hostile, "\uFFFD") {
			t.Errorf("deliveries get --json body = %q, want %q", d.Response.Body, hostile)
		}
	})

	t.Run("RotateSecretShowsTheNewOne", func(t *testing.T) {
		t.Parallel()
		b := setupE2E(t)
		h := b.webhook(t)

		r := b.run(t, "webhooks", "rotate-secret", h.ID).wantOK(t).contains(t, "New secret: whsec_")
		if strings.Contains(r.stdout, h.SecretKey) {
			t.Errorf("rotate-secret shows the old secret:\n%s", r.stdout)
		}
		var res pancake.RotateSecretResult
		r = b.run(t, "webhooks", "rotate-secret", h.ID, "--json").wantOK(t)
		r.decode(t, &res)
		got, err := b.client.Webhooks.GetByID(t.Context(), h.ID)
		if err != nil {
			t.Fatal(err)
		}
		if res.SecretKey != got.SecretKey || !strings.HasPrefix(res.SecretKey, "whsec_") {
			t.Errorf("rotate-secret --json = %q, the webhook's secret is now %q", res.SecretKey, got.SecretKey)
		}
	})

	t.Run("StatsCountTheAttempts", func(t *testing.T) {
		t.Parallel()
		b := setupE2E(t)
		h := b.webhook(t)
		for range 2 {
			if _, err := b.client.Webhooks.Test(t.Context(), h.ID, pancake.EventOrderCreated, nil); err != nil {
				t.Fatal(err)
			}
		}
		b.receiver.status.Store(http.StatusServiceUnavailable)
		if _, err := b.client.Webhooks.Test(t.Context(), h.ID, pancake.EventOrderUpdated, nil); err != nil {
			t.Fatal(err)
		}

		b.run(t, "webhooks", "stats", h.ID).wantOK(t).
			contains(t, "Deliveries:", "3", "Succeeded:", "2", "Failed:", "1", "Success rate:", "66.7%",
				"EVENT", "order.created", "order.updated", "HOUR (UTC)")
		var s pancake.WebhookStats
		r := b.run(t, "webhooks", "stats", h.ID, "--json").wantOK(t)
		wantKeys(t, "stats --json", r.object(t), "total_deliveries", "success_count", "failure_count", "average_duration_ms", "event_counts", "hourly_stats")
		r.decode(t, &s)
		if s.TotalDeliveries != 3 || s.SuccessCount != 2 || s.FailureCount != 1 ||
			s.EventCounts[pancake.EventOrderCreated] != 2 || s.EventCounts[pancake.EventOrderUpdated] != 1 || len(s.HourlyStats) == 0 {
			t.Errorf("stats --json = %+v", s)
		}
		// A range that ends before today has none of them.
		b.run(t, "webhooks", "stats", h.ID, "--from", "2020-01-01", "--to", "2020-01-31", "--json").wantOK(t).decode(t, &s)
		if s.TotalDeliveries != 0 {
			t.Errorf("stats of January 2020 = %+v, want none", s)
		}
	})

	t.Run("ClearHistoryDeletesFinishedDeliveries", func(t *testing.T) {
		t.Parallel()
		b := setupE2E(t)
		h := b.webhook(t)
		for _, status := range []int32{200, 500, 500} {
			b.receiver.status.Store(status)
			if _, err := b.client.Webhooks.Test(t.Context(), h.ID, pancake.EventOrderCreated, nil); err != nil {
				t.Fatal(err)
			}
		}

		b.run(t, "webhooks", "clear-history", h.ID, "--status", "failed").wantOK(t).contains(t, "Deleted 2 deliveries of "+h.ID)
		var res pancake.ClearHistoryResult
		r := b.run(t, "webhooks", "clear-history", h.ID, "--before", "2999-01-01", "--json").wantOK(t)
		wantKeys(t, "clear-history --json", r.object(t), "deleted_count")
		r.decode(t, &res)
		if res.DeletedCount != 1 {
			t.Errorf("clear-history --json deleted %d, want 1", res.DeletedCount)
		}
	})

	t.Run("DeleteRemovesIt", func(t *testing.T) {
		t.Parallel()
		b := setupE2E(t)
		h1, h2 := b.webhook(t), b.webhook(t)

		b.run(t, "webhooks", "delete", h1.ID).wantOK(t).contains(t, "Deleted webhook "+h1.ID)
		var res map[string]any
		b.run(t, "webhooks", "delete", h2.ID, "--json").wantOK(t).decode(t, &res)
		if diff := cmp.Diff(map[string]any{"success": true}, res); diff != "" {
			t.Errorf("delete --json returned diff (-want +got):\n%s", diff)
		}
		b.run(t, "webhooks", "get", h1.ID).wantCode(t, pw.ExitNotFound)
	})
}

func TestCLIDeliveries(t *testing.T) {
	t.Parallel()

	// sends makes n test sends and returns their delivery IDs, oldest first.
	sends := func(t *testing.T, b *e2eBundle, h *pancake.Webhook, n int) []string {
		t.Helper()
		var ids []string
		for range n {
			r, err := b.client.Webhooks.Test(t.Context(), h.ID, pancake.EventOrderCreated, map[string]any{"n": len(ids)})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, r.DeliveryID)
		}
		return ids
	}

	t.Run("ListShowsOnePageAndWhereItIs", func(t *testing.T) {
		t.Parallel()
		b := setupE2E(t)
		h := b.webhook(t)
		ids := sends(t, b, h, 5)

		r := b.run(t, "deliveries", "list", "--page-size", "2").wantOK(t).
			contains(t, "ID", "WEBHOOK", "EVENT", "STATUS", ids[4], ids[3], h.ID, "order.created", "✔ success", "200", "test",
				"page 1 of 3, 5 deliveries; --page 2 for more")
		if strings.Contains(r.stdout, ids[2]) {
			t.Errorf("page 1 of 2 per page shows the third newest:\n%s", r.stdout)
		}
		r = b.run(t, "deliveries", "list", "--page-size", "2", "--page", "3", "--webhook", h.ID).wantOK(t).
			contains(t, ids[0], "page 3 of 3, 5 deliveries")
		if strings.Contains(r.stdout, "for more") {
			t.Errorf("the last page offers more:\n%s", r.stdout)
		}

		var page pancake.DeliveryList
		r = b.run(t, "deliveries", "list", "--page-size", "2", "--page", "2", "--json").wantOK(t)
		wantKeys(t, "deliveries list --json", r.object(t), "data", "total", "page_number", "page_size", "total_pages")
		r.decode(t, &page)
		if page.Total != 5 || page.PageNumber != 2 || page.PageSize != 2 || page.TotalPages != 3 || len(page.Data) != 2 ||
			page.Data[0].ID != ids[2] || page.Data[1].ID != ids[1] {
			t.Errorf("deliveries list --json page 2 = %+v", page)
		}
		for _, d := range r.object(t)["data"].([]any) {
			wantKeys(t, "a delivery", d.(map[string]any), "id", "webhook_id", "event", "payload", "response", "status", "created_at", "duration_ms")
		}

		b.run(t, "deliveries", "list", "--status", "failed").wantOK(t).contains(t, "No deliveries.")
		b.run(t, "deliveries", "list", "--event", "order.created", "--from", "2020-01-01", "--to", "2999-12-31").wantOK(t).contains(t, "5 deliveries")
	})

	t.Run("AllWalksEveryPage", func(t *testing.T) {
		t.Parallel()
		b := setupE2E(t)
		h := b.webhook(t)
		ids := sends(t, b, h, 5)

		r := b.run(t, "deliveries", "list", "--all", "--page-size", "2").wantOK(t).contains(t, "5 deliveries")
		for _, id := range ids {
			if !strings.Contains(r.stdout, id) {
				t.Errorf("--all lacks %s:\n%s", id, r.stdout)
			}
		}
		if strings.Contains(r.stdout, "page ") {
			t.Errorf("--all speaks of pages:\n%s", r.stdout)
		}

		var all []pancake.WebhookDelivery
		b.run(t, "deliveries", "list", "--all", "--page-size", "2", "--json").wantOK(t).decode(t, &all)
		var got []string
		for _, d := range all {
			got = append(got, d.ID)
		}
		slices.Reverse(ids)
		if diff := cmp.Diff(ids, got); diff != "" {
			t.Errorf("deliveries list --all --json returned diff (-want +got):\n%s", diff)
		}

		all = nil
		b.run(t, "deliveries", "list", "--all", "--status", "failed", "--json").wantOK(t).decode(t, &all)
		if all == nil || len(all) != 0 {
			t.Errorf("--all --json of none = %#v, want []", all)
		}
	})

	t.Run("GetShowsRequestResponseAndPayload", func(t *testing.T) {
		t.Parallel()
		b := setupE2E(t)
		h := b.webhook(t)
		id := sends(t, b, h, 1)[0]

		b.run(t, "deliveries", "get", id).wantOK(t).
			contains(t, "ID:", id, "Webhook:", h.ID, "Status:", "✔ success", "Trigger:", "test", "Response:", "HTTP 200",
				"Request headers:", "webhook-signature:", "Response body:", `{"ok":true}`, "Payload:", `"test": true`)
		var d pancake.WebhookDelivery
		r := b.run(t, "deliveries", "get", id, "--json").wantOK(t)
		wantKeys(t, "deliveries get --json", r.object(t), "id", "webhook_id", "event", "payload", "response", "status", "created_at", "duration_ms")
		r.decode(t, &d)
		want, err := b.client.Webhooks.GetDeliveryByID(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		compact := cmp.Transformer("compact", func(m json.RawMessage) string {
			var b bytes.Buffer
			if err := json.Compact(&b, m); err != nil {
				return "not JSON: " + string(m)
			}
			return b.String()
		})
		if diff := cmp.Diff(want, &d, compact); diff != "" {
			t.Errorf("deliveries get --json returned diff (-server +cli):\n%s", diff)
		}
	})

	t.Run("EveryDigitOfThePayloadIsKept", func(t *testing.T) {
		t.Parallel()
		b := setupE2E(t)
		h := b.webhook(t)
		// Beyond float64: these come back as ...567000 and ...992 through it.
		data := map[string]any{"order_no": json.Number("12345678901234567890"), "n": json.Number("9007199254740993")}
		r, err := b.client.Webhooks.Test(t.Context(), h.ID, pancake.EventOrderCreated, data)
		if err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{
			{"deliveries", "get", r.DeliveryID},
			{"deliveries", "get", r.DeliveryID, "--json"},
			{"deliveries", "list", "--json"},
			{"deliveries", "list", "--all", "--json"},
		} {
			b.run(t, args...).wantOK(t).contains(t, `"order_no": 12345678901234567890`, `"n": 9007199254740993`)
		}
	})

	t.Run("RetrySendsAgain", func(t *testing.T) {
		t.Parallel()
		b := setupE2E(t)
		h := b.webhook(t)
		id := sends(t, b, h, 1)[0]
		b.receiver.drain()

		r := b.run(t, "deliveries", "retry", id).wantOK(t).contains(t, "Delivery:", "✔ success")
		retry := deliveryIDRe.FindString(r.stdout)
		if retry == "" || retry == id {
			t.Errorf("retry shows delivery %q, want a new one:\n%s", retry, r.stdout)
		}
		b.receiver.next(t)
		var res pancake.DeliveryResult
		b.run(t, "deliveries", "retry", id, "--json").wantOK(t).decode(t, &res)
		d, err := b.client.Webhooks.GetDeliveryByID(t.Context(), res.DeliveryID)
		if err != nil {
			t.Fatal(err)
		}
		if d.RetryOf != id || d.Trigger != pancake.TriggerManualRetry {
			t.Errorf("the retry is %+v, want a manual retry of %s", d, id)
		}
	})

	t.Run("PendingShowsTheQueue", func(t *testing.T) {
		t.Parallel()
		b := setupE2E(t)
		h := b.webhook(t)
		b.run(t, "deliveries", "pending").wantOK(t).contains(t, "No pending deliveries.")

		// The attempts are held at the receiver: their deliveries stay
		// queued.
		b.receiver.holdRequests()
		for range 3 {
			if _, err := b.client.Events.Publish(t.Context(), pancake.PublishRequest{Event: pancake.EventOrderCreated}); err != nil {
				t.Fatal(err)
			}
			b.receiver.next(t)
		}
		b.run(t, "deliveries", "pending").wantOK(t).contains(t, "ATTEMPT", "DUE", h.ID, "order.created", "3 pending deliveries")
		var p pancake.PendingDeliveries
		r := b.run(t, "deliveries", "pending", "--json").wantOK(t)
		wantKeys(t, "deliveries pending --json", r.object(t), "total_count", "deliveries")
		r.decode(t, &p)
		if p.TotalCount != 3 || len(p.Deliveries) != 3 || p.Deliveries[0].Status != pancake.StatusPending {
			t.Errorf("deliveries pending --json = %+v", p)
		}
		for _, d := range r.object(t)["deliveries"].([]any) {
			if _, ok := d.(map[string]any)["response"]; ok {
				t.Errorf("a pending delivery has a response: %v", d)
			}
		}

		// One page at a time, of one webhook.
		first := b.run(t, "deliveries", "pending", "--page-size", "2", "--webhook", h.ID).wantOK(t).
			contains(t, p.Deliveries[0].ID, p.Deliveries[1].ID, "page 1 of 2, 3 pending deliveries; --page 2 for more")
		if strings.Contains(first.stdout, p.Deliveries[2].ID) {
			t.Errorf("page 1 of 2 per page shows the third:\n%s", first.stdout)
		}
		last := b.run(t, "deliveries", "pending", "--page-size", "2", "--page", "2").wantOK(t).
			contains(t, p.Deliveries[2].ID, "page 2 of 2, 3 pending deliveries")
		if strings.Contains(last.stdout, "for more") || strings.Contains(last.stdout, p.Deliveries[0].ID) {
			t.Errorf("the last page:\n%s", last.stdout)
		}
		b.run(t, "deliveries", "pending", "--page", "9").wantOK(t).contains(t, "No pending deliveries on page 9; 3 pending deliveries in all.")
		other, err := b.client.Webhooks.Create(t.Context(), pancake.CreateWebhookRequest{URL: b.receiver.url, Events: []pancake.WebhookEvent{pancake.EventOrderUpdated}})
		if err != nil {
			t.Fatal(err)
		}
		b.run(t, "deliveries", "pending", "--webhook", other.ID).wantOK(t).contains(t, "No pending deliveries.")
		b.receiver.unhold()
	})
}

// TestCLIRevokedKeyStopsAtOnce revokes a key the running server has just
// authenticated (so it is in its 5 s key cache) with the CLI, run
// in-process here: another connection to its SQLite database, as the CLI
// in another process is (SQLite's data_version tells connections apart,
// not processes). The server must refuse the key well before the cache
// would have let it go.
func TestCLIRevokedKeyStopsAtOnce(t *testing.T) {
	t.Parallel()
	s := startE2EServer(t)
	s.createShop(t, "shop-rev")
	var created struct {
		APIKey string `json:"api_key"`
		KeyID  string `json:"key_id"`
	}
	runCLI(t, "shops", "keys", "create", "--shop", "shop-rev", "--db", s.db).wantOK(t).decode(t, &created)
	status := func() int {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, s.apiURL+"/shops/shop-rev/webhooks", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+created.APIKey)
		resp, err := testClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for range 2 { // the second from the cache
		if code := status(); code != http.StatusOK {
			t.Fatalf("the new key: %d, want 200", code)
		}
	}
	runCLI(t, "shops", "keys", "revoke", "--shop", "shop-rev", "--key", created.KeyID, "--db", s.db).wantOK(t)
	revoked := time.Now()
	for status() != http.StatusUnauthorized {
		if time.Since(revoked) > 2500*time.Millisecond {
			t.Fatal("the revoked key still works 2.5 s after the CLI revoked it (the key cache keeps it 5 s)")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestCLIEventsPublish(t *testing.T) {
	t.Parallel()

	t.Run("PublishDelivers", func(t *testing.T) {
		t.Parallel()
		b := setupE2E(t)
		b.webhook(t)

		r := b.run(t, "events", "publish", "--event", "order.created", "--data", `{"order_id": "ord_9"}`).wantOK(t).
			contains(t, "Published evt_", "order.created", "queued for 1 webhook")
		got := b.receiver.next(t)
		evt := regexp.MustCompile(`\bevt_[0-9A-Za-z]+`).FindString(r.stdout)
		if got.header.Get("webhook-id") != evt {
			t.Errorf("the receiver got webhook-id %q, want %q", got.header.Get("webhook-id"), evt)
		}
		if data, _ := got.envelope(t)["data"].(map[string]any); data["order_id"] != "ord_9" {
			t.Errorf("the receiver got data %v", data)
		}
	})

	t.Run("JSONAndIdempotencyKey", func(t *testing.T) {
		t.Parallel()
		b := setupE2E(t)
		b.webhook(t, pancake.EventInventoryUpdated)
		file := filepath.Join(t.TempDir(), "stock.json")
		if err := os.WriteFile(file, []byte(`{"sku": "PAN-1", "quantity": 3}`), 0o600); err != nil {
			t.Fatal(err)
		}

		var first, again pancake.PublishResult
		r := b.run(t, "events", "publish", "--event", "inventory.updated", "--data", "@"+file, "--id", "stock-1", "--json").wantOK(t)
		wantKeys(t, "events publish --json", r.object(t), "event_id", "deliveries")
		r.decode(t, &first)
		b.run(t, "events", "publish", "--event", "inventory.updated", "--data", "@"+file, "--id", "stock-1", "--json").wantOK(t).decode(t, &again)
		if first.Deliveries != 1 || !strings.HasPrefix(first.EventID, "evt_") || again != first {
			t.Errorf("publish twice with one --id = %+v then %+v, want the same answer, queued for 1", first, again)
		}
		// Events nobody subscribes to are queued for none.
		var none pancake.PublishResult
		b.run(t, "events", "publish", "--event", "order.created", "--data", "{}", "--json").wantOK(t).decode(t, &none)
		if none.Deliveries != 0 {
			t.Errorf("publish of an event nobody subscribes to = %+v", none)
		}
	})
}

// TestCLIDBCopyRefusesARunningServer: db copy does not start while a server
// runs on the SQLite database (what the server writes meanwhile would not be
// copied), and says why; once the server stopped, it goes on.
func TestCLIDBCopyRefusesARunningServer(t *testing.T) {
	t.Parallel()
	from := "sqlite:" + filepath.Join(t.TempDir(), "live.db")
	to := "postgres://postgres@127.0.0.1:1/nowhere?connect_timeout=5" // never reached while the server runs
	server, err := store.Open(t.Context(), from, store.Options{Server: true})
	if err != nil {
		t.Fatal(err)
	}
	r := runCLI(t, "db", "copy", "--from", from, "--to", to).wantCode(t, pw.ExitInvalid)
	if !strings.Contains(r.stderr, "another pancake-webhooks server is running") || !strings.Contains(r.stderr, "stop it first") {
		t.Errorf("stderr does not say why the copy refused:\n%s", r.stderr)
	}
	if err := server.Close(); err != nil {
		t.Fatal(err)
	}
	r = runCLI(t, "db", "copy", "--from", from, "--to", to)
	if r.code == pw.ExitInvalid || !strings.Contains(r.stderr, "open target") {
		t.Errorf("after the server stopped: exit %d, want the copy to go on to the target\n%s", r.code, r.stderr)
	}
}

// TestCLIDBCopyMovesASchemaTheServerRefuses: a server refuses a database
// whose schema its migrations do not make, and points to db copy; db copy
// must then take it as its source (it refused it too).
func TestCLIDBCopyMovesASchemaTheServerRefuses(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "old.db")
	db, err := store.Open(t.Context(), "sqlite:"+file, store.Options{Server: true})
	if err != nil {
		t.Fatal(err)
	}
	storetest.MustCreateShop(t, db, "shop-old", time.Now())
	w := storetest.MustCreateWebhook(t, db, "shop-old", "https://example.com/hook", time.Now(), "order.created")
	db.Close()
	raw, err := sql.Open("sqlite", file)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := raw.ExecContext(t.Context(), `DROP INDEX api_keys_shop`); err != nil {
		t.Fatal(err)
	}
	raw.Close()
	if _, err := store.Open(t.Context(), "sqlite:"+file, store.Options{Server: true}); err == nil || !strings.Contains(err.Error(), "db copy") {
		t.Fatalf("a server opened the changed schema (%v); want a refusal pointing to db copy", err)
	}
	to := storetest.PostgresDSN(t)
	runCLI(t, "db", "copy", "--from", "sqlite:"+file, "--to", to).wantOK(t)
	moved, err := store.Open(t.Context(), to, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer moved.Close()
	if got, err := moved.FindWebhook(t.Context(), "shop-old", w.ID); err != nil || got.URL != w.URL {
		t.Errorf("the copied webhook: %+v, %v", got, err)
	}
}

func TestCLIErrors(t *testing.T) {
	t.Parallel()

	// noKey fails the test if r printed key.
	noKey := func(t *testing.T, r cliResult, key string) {
		t.Helper()
		if strings.Contains(r.stdout, key) || strings.Contains(r.stderr, key) {
			t.Errorf("the output shows the API key:\nstdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
		}
	}

	t.Run("BadKeyIsExitAuth", func(t *testing.T) {
		t.Parallel()
		b := setupE2E(t)
		bad := "pk_" + strings.Repeat("x", 43)
		for _, args := range [][]string{
			{"webhooks", "list"},
			{"deliveries", "list"},
			{"events", "publish", "--event", "order.created", "--data", "{}"},
		} {
			r := runCLI(t, append(args, "--api-url", b.srv.apiURL, "--api-key", bad, "--shop", b.shop)...).wantCode(t, pw.ExitAuth)
			if !strings.Contains(r.stderr, "401") {
				t.Errorf("%v: stderr does not say 401: %s", args, r.stderr)
			}
			noKey(t, r, bad)
		}
	})

	t.Run("AnotherShopIsExitAuth", func(t *testing.T) {
		t.Parallel()
		b := setupE2E(t)
		b.srv.createShop(t, "shop-other")
		r := runCLI(t, "webhooks", "list", "--api-url", b.srv.apiURL, "--api-key", b.key, "--shop", "shop-other").wantCode(t, pw.ExitAuth)
		if !strings.Contains(r.stderr, "403 forbidden") {
			t.Errorf("stderr does not say 403 forbidden: %s", r.stderr)
		}
		noKey(t, r, b.key)
	})

	t.Run("AnAPIURLWithoutTheAPIIsNotExitNotFound", func(t *testing.T) {
		t.Parallel()
		b := setupE2E(t)
		// The server's root, not its /api/v1: a setting to fix, not a
		// webhook that is missing.
		r := runCLI(t, "webhooks", "list", "--api-url", b.srv.base, "--api-key", b.key, "--shop", b.shop).wantCode(t, pw.ExitError)
		if !strings.Contains(r.stderr, "/api/v1") {
			t.Errorf("stderr does not say where the API is: %s", r.stderr)
		}
		noKey(t, r, b.key)
	})

	t.Run("UnknownIDIsExitNotFound", func(t *testing.T) {
		t.Parallel()
		b := setupE2E(t)
		for _, args := range [][]string{
			{"webhooks", "get", "wh_nope"},
			{"webhooks", "update", "wh_nope", "--url", "https://example.com"},
			{"webhooks", "delete", "wh_nope"},
			{"webhooks", "enable", "wh_nope"},
			{"webhooks", "disable", "wh_nope"},
			{"webhooks", "test", "wh_nope", "--event", "order.created"},
			{"webhooks", "rotate-secret", "wh_nope"},
			{"webhooks", "stats", "wh_nope"},
			{"webhooks", "clear-history", "wh_nope"},
			{"deliveries", "get", "dlv_nope"},
			{"deliveries", "retry", "dlv_nope"},
			{"webhooks", "get", "wh_nope", "--json"},
		} {
			r := b.run(t, args...).wantCode(t, pw.ExitNotFound)
			if !strings.Contains(r.stderr, "404 not_found") || r.stdout != "" {
				t.Errorf("%v: stdout %q, stderr %q", args, r.stdout, r.stderr)
			}
			noKey(t, r, b.key)
		}
	})

	t.Run("ValidationIsExitInvalid", func(t *testing.T) {
		t.Parallel()
		b := setupE2E(t)
		h := b.webhook(t)
		for _, tc := range []struct {
			args []string
			say  string
		}{
			{[]string{"webhooks", "create", "--url", "ftp://example.com/hooks", "--event", "order.created"}, "url"},
			{[]string{"webhooks", "create", "--url", b.receiver.url, "--event", "order.shipped"}, "events"},
			{[]string{"webhooks", "update", h.ID, "--event", "order.shipped"}, "events"},
			{[]string{"webhooks", "test", h.ID, "--event", "order.shipped"}, "event"},
			{[]string{"webhooks", "stats", h.ID, "--from", "2026-02-01", "--to", "2026-01-01"}, "to_date"},
			{[]string{"webhooks", "clear-history", h.ID, "--status", "ok"}, "status"},
			{[]string{"deliveries", "list", "--status", "ok"}, "status"},
			{[]string{"events", "publish", "--event", "order.shipped", "--data", "{}"}, "event"},
		} {
			r := b.run(t, tc.args...).wantCode(t, pw.ExitInvalid)
			if !strings.Contains(r.stderr, "400 validation_failed") || !strings.Contains(r.stderr, tc.say) {
				t.Errorf("%v: stderr %q does not say what is wrong", tc.args, r.stderr)
			}
			// One bad field: the message names it, and is not repeated.
			_, msg, _ := strings.Cut(strings.TrimSpace(r.stderr), "400 validation_failed: ")
			if before, after, ok := strings.Cut(msg, " ("); ok && strings.TrimSuffix(after, ")") == before {
				t.Errorf("%v: stderr repeats the details: %q", tc.args, r.stderr)
			}
			noKey(t, r, b.key)
		}
	})

	t.Run("ServerDownIsExitError", func(t *testing.T) {
		t.Parallel()
		url := "http://" + freeAddr(t) + "/api/v1"
		key := "pk_" + strings.Repeat("k", 43)
		r := runCLI(t, "webhooks", "list", "--api-url", url, "--api-key", key, "--shop", "shop-1").wantCode(t, pw.ExitError)
		if !strings.Contains(r.stderr, "cannot reach the API at "+url) {
			t.Errorf("stderr does not say the API is unreachable: %s", r.stderr)
		}
		noKey(t, r, key)
		runCLI(t, "events", "publish", "--event", "order.created", "--data", "{}", "--api-url", url, "--api-key", key, "--shop", "shop-1").
			wantCode(t, pw.ExitError)
	})

	t.Run("DataOverTheBoundIsRefused", func(t *testing.T) {
		t.Parallel()
		// @/dev/zero grew the process until it died; more than the bound
		// read from stdin was cut and called broken JSON (code review).
		big := filepath.Join(t.TempDir(), "big.json")
		if err := os.WriteFile(big, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(big, 17<<20); err != nil { // sparse: no disk taken
			t.Fatal(err)
		}
		r := runCLI(t, "events", "publish", "--event", "order.created", "--data", "@"+big,
			"--api-url", "http://127.0.0.1:1/api/v1", "--api-key", "pk_x", "--shop", "s").wantCode(t, pw.ExitUsage)
		if !strings.Contains(r.stderr, "more than 16 MiB") {
			t.Errorf("stderr %q; want it to say the data is over the bound", r.stderr)
		}
	})

	t.Run("UsageErrorsAreExitUsage", func(t *testing.T) {
		t.Parallel()
		b := setupE2E(t)
		conn := []string{"--api-url", b.srv.apiURL, "--shop", b.shop}
		for _, args := range [][]string{
			append([]string{"webhooks", "list", "--api-key", ""}, conn...),                               // no key
			{"webhooks", "list", "--api-url", b.srv.apiURL, "--api-key", b.key, "--shop", ""},            // no shop
			{"webhooks", "list", "--api-url", "ftp://host/api/v1", "--api-key", b.key, "--shop", b.shop}, // not http
			{"webhooks", "get"},                                    // no id
			{"webhooks", "get", "wh_1", "wh_2"},                    // two ids
			{"webhooks", "create", "--event", "order.created"},     // no --url
			{"webhooks", "create", "--url", "https://example.com"}, // no --event
			{"webhooks", "update", "wh_1"},                         // nothing to update
			{"webhooks", "test", "wh_1"},                           // no --event
			{"webhooks", "test", "wh_1", "--event", "order.created", "--data", "[1]"},
			{"webhooks", "test", "wh_1", "--event", "order.created", "--data", "@/nonexistent/file.json"},
			{"webhooks", "stats", "wh_1", "--from", "yesterday"},
			{"webhooks", "frob"},
			{"webhooks", "list", "--frob"},
			{"deliveries", "list", "--page", "0"},
			{"deliveries", "list", "--page-size", "500"},
			{"deliveries", "list", "--page-size", "0"},
			{"deliveries", "list", "--page", "x"},
			{"events", "publish", "--event", "order.created"},                // no --data
			{"events", "publish", "--event", "order.created", "--data", "{"}, // bad JSON
			{"webhooks", "get", ""},                                          // not an ID
			{"deliveries", "get", ".."},
			{"deliveries", "pending", "--page", "0"},
			{"deliveries", "pending", "--page-size", "101"},
			{"deliveries", "pending", "--page-size", "0"},
		} {
			if !slices.Contains(args, "--api-url") {
				args = append(args, "--api-url", b.srv.apiURL, "--api-key", b.key, "--shop", b.shop)
			}
			r := runCLI(t, args...).wantCode(t, pw.ExitUsage)
			if r.stderr == "" {
				t.Errorf("%v: nothing on stderr", args)
			}
			noKey(t, r, b.key)
		}
	})
}

func TestCLIGroupsRefuseUnknownCommands(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"shops", "creat"},
		{"shops", "keys", "revok"},
		{"db", "cop"},
		{"webhooks", "lsit"},
	} {
		r := runCLI(t, args...).wantCode(t, pw.ExitUsage)
		if !strings.Contains(r.stderr, fmt.Sprintf("unknown command %q", args[len(args)-1])) {
			t.Errorf("%v: stderr %q does not name the unknown command", args, r.stderr)
		}
	}
	// Without one, a group shows its help.
	runCLI(t, "shops").wantOK(t).contains(t, "keys", "create")
}

// TestCLIEnvironment is not parallel: it sets the environment.
func TestCLIEnvironment(t *testing.T) {
	b := setupE2E(t)
	h := b.webhook(t)
	t.Setenv("PANCAKE_API_URL", b.srv.apiURL)
	t.Setenv("PANCAKE_API_KEY", b.key)
	t.Setenv("PANCAKE_SHOP_ID", b.shop)
	runCLI(t, "webhooks", "list").wantOK(t).contains(t, h.ID)

	// Flags win over the environment.
	runCLI(t, "webhooks", "list", "--shop", "shop-other").wantCode(t, pw.ExitAuth)
	// Only the connection flags come from the environment.
	t.Setenv("PANCAKE_STATUS", "failed")
	t.Setenv("PANCAKE_PAGE", "0")
	t.Setenv("PANCAKE_JSON", "true")
	if _, err := b.client.Webhooks.Test(t.Context(), h.ID, pancake.EventOrderCreated, nil); err != nil {
		t.Fatal(err)
	}
	runCLI(t, "deliveries", "list").wantOK(t).contains(t, "1 delivery")

	// shops reads PANCAKE_DB, and no other variable: a stray PANCAKE_ID
	// or PANCAKE_NAME neither creates nor names a shop.
	t.Setenv("PANCAKE_DB", "sqlite:"+filepath.Join(t.TempDir(), "env.db"))
	t.Setenv("PANCAKE_ID", "shop-from-env")
	t.Setenv("PANCAKE_NAME", "Stray Name")
	t.Setenv("PANCAKE_SHOP", "shop-from-env")
	runCLI(t, "shops", "create").wantCode(t, pw.ExitUsage).stderrContains(t, `"id" not set`)
	runCLI(t, "shops", "create", "--id", "shop-env").wantOK(t)
	runCLI(t, "shops", "keys", "create").wantCode(t, pw.ExitUsage).stderrContains(t, `"shop" not set`)
	runCLI(t, "shops", "keys", "create", "--shop", "shop-from-env").wantCode(t, pw.ExitNotFound)
	runCLI(t, "shops", "keys", "create", "--shop", "shop-env").wantOK(t)
}

// A shop's first key can be revoked: shops create prints its key_id. A
// revoke given the key itself instead is not found, and the key is not
// echoed in the error (operator audit: it was).
func TestCLIRevokesAShopsFirstKey(t *testing.T) {
	t.Parallel()
	db := "sqlite:" + filepath.Join(t.TempDir(), "keys.db")
	var created struct {
		ShopID string `json:"shop_id"`
		APIKey string `json:"api_key"`
		KeyID  string `json:"key_id"`
	}
	runCLI(t, "shops", "create", "--id", "shop-first", "--db", db).wantOK(t).decode(t, &created)
	if created.ShopID != "shop-first" || !strings.HasPrefix(created.APIKey, "pk_") || !strings.HasPrefix(created.KeyID, "key_") {
		t.Fatalf("shops create printed %+v", created)
	}
	r := runCLI(t, "shops", "keys", "revoke", "--shop", "shop-first", "--key", created.APIKey, "--db", db).wantCode(t, pw.ExitNotFound)
	if strings.Contains(r.stderr+r.stdout, created.APIKey) || strings.Contains(r.stderr+r.stdout, created.APIKey[len(created.APIKey)-12:]) {
		t.Errorf("a revoke given the key echoed it: %s%s", r.stdout, r.stderr)
	}
	runCLI(t, "shops", "keys", "revoke", "--shop", "shop-first", "--key", created.KeyID, "--db", db).wantOK(t)
	runCLI(t, "shops", "keys", "revoke", "--shop", "shop-first", "--key", created.KeyID, "--db", db).wantCode(t, pw.ExitNotFound)
}

// A shop name the API would refuse is refused by the CLI too (it writes to
// the database directly), and nothing is created.
func TestCLIShopNameChecked(t *testing.T) {
	t.Parallel()
	db := "sqlite:" + filepath.Join(t.TempDir(), "names.db")
	for _, c := range []struct{ name, want string }{
		{"bad\x00name", "NUL"},
		{"bad \xff name", "UTF-8"},
		{strings.Repeat("é", 256), "at most 255"},
	} {
		runCLI(t, "shops", "create", "--id", "shop-named", "--name", c.name, "--db", db).
			wantCode(t, pw.ExitUsage).stderrContains(t, "--name", c.want)
	}
	runCLI(t, "shops", "keys", "create", "--shop", "shop-named", "--db", db).wantCode(t, pw.ExitNotFound)
	runCLI(t, "shops", "create", "--id", "shop-named", "--name", strings.Repeat("é", 255), "--db", db).wantOK(t)
}

// TestCLIDatabasePasswordsNotShown: a database the CLI cannot use is named
// in its error without the password, whichever way the password came.
func TestCLIDatabasePasswordsNotShown(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"db", "copy", "--from", "postgres://a:SECRET1@127.0.0.1:1/x", "--to", "sqlite:x.db"},
		{"shops", "create", "--id", "c", "--db", "postgres://postgres@127.0.0.1:1/x?password=SECRET2&sslmode=disable"},
		{"shops", "create", "--id", "c", "--db", "host=127.0.0.1 password=SECRET3 user=u"},
	} {
		r := runCLI(t, args...)
		if r.code == pw.ExitOK {
			t.Fatalf("%q: exit 0", args)
		}
		if out := r.stdout + r.stderr; strings.Contains(out, "SECRET") {
			t.Errorf("%q shows the password:\n%s", args, out)
		}
	}
}

func TestCLIHelpHasExamples(t *testing.T) {
	t.Parallel()
	for _, c := range []string{
		"webhooks", "webhooks list", "webhooks get", "webhooks create", "webhooks update", "webhooks delete",
		"webhooks enable", "webhooks disable", "webhooks test", "webhooks rotate-secret", "webhooks stats",
		"webhooks clear-history", "deliveries", "deliveries list", "deliveries get", "deliveries pending",
		"deliveries retry", "events", "events publish",
	} {
		r := runCLI(t, append(strings.Fields(c), "--help")...).wantOK(t)
		_, examples, ok := strings.Cut(r.stdout, "\nExamples:\n")
		if !ok || !strings.Contains(examples, "pancake-webhooks "+c) {
			t.Errorf("%s --help has no example:\n%s", c, r.stdout)
		}
		for _, f := range []string{"--api-url", "--api-key", "--shop", "--json"} {
			if !strings.Contains(r.stdout, f) {
				t.Errorf("%s --help does not mention %s", c, f)
			}
		}
	}
}

func TestCLICompletion(t *testing.T) {
	t.Parallel()

	t.Run("ScriptsForEveryShell", func(t *testing.T) {
		t.Parallel()
		runCLI(t, "completion", "bash").wantOK(t).contains(t, "bash completion", "__start_pancake-webhooks")
		for _, sh := range []string{"zsh", "fish", "powershell"} {
			if r := runCLI(t, "completion", sh).wantOK(t); !strings.Contains(r.stdout, "pancake-webhooks") {
				t.Errorf("completion %s:\n%s", sh, r.stdout)
			}
		}
	})

	t.Run("CommandsFlagsAndEventTypes", func(t *testing.T) {
		t.Parallel()
		runCLI(t, "__complete", "").wantOK(t).contains(t, "webhooks", "deliveries", "events")
		runCLI(t, "__complete", "webhooks", "").wantOK(t).contains(t, "rotate-secret", "clear-history")
		runCLI(t, "__complete", "webhooks", "create", "--event", "").wantOK(t).contains(t, "order.created", "loyalty.points_redeemed")
		runCLI(t, "__complete", "deliveries", "list", "--status", "").wantOK(t).contains(t, "success", "failed", "pending")
	})

	t.Run("WebhookIDsFromTheAPI", func(t *testing.T) {
		t.Parallel()
		b := setupE2E(t)
		h := b.webhook(t)
		runCLI(t, append([]string{"__complete", "webhooks", "get"}, append(b.conn(), "")...)...).wantOK(t).contains(t, h.ID, h.URL)
		id := sendOne(t, b, h)
		runCLI(t, append([]string{"__complete", "deliveries", "retry"}, append(b.conn(), "")...)...).wantOK(t).contains(t, id)
	})
}

// sendOne makes a test send and returns its delivery ID.
func sendOne(t *testing.T, b *e2eBundle, h *pancake.Webhook) string {
	t.Helper()
	r, err := b.client.Webhooks.Test(t.Context(), h.ID, pancake.EventOrderCreated, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r.DeliveryID
}

// TestCLIBinaryReadsDataFromStdin runs the built binary: --data - reads the
// event's data from stdin, and the exit code reaches the shell.
func TestCLIBinaryReadsDataFromStdin(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	b := setupE2E(t)
	b.webhook(t)

	cmd := exec.CommandContext(t.Context(), bin, append([]string{"events", "publish", "--event", "order.created", "--data", "-", "--json"}, b.conn()...)...)
	cmd.Stdin = strings.NewReader(`{"order_id": "ord_stdin"}`)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("events publish --data -: %v\n%s", err, out)
	}
	var res pancake.PublishResult
	if err := json.Unmarshal(out, &res); err != nil || res.Deliveries != 1 {
		t.Fatalf("events publish --data - --json printed %s (%v)", out, err)
	}
	got := b.receiver.next(t)
	if got.header.Get("webhook-id") != res.EventID {
		t.Errorf("the receiver got webhook-id %q, want %q", got.header.Get("webhook-id"), res.EventID)
	}
	if data, _ := got.envelope(t)["data"].(map[string]any); data["order_id"] != "ord_stdin" {
		t.Errorf("the receiver got data %v", data)
	}

	cmd = exec.CommandContext(t.Context(), bin, append([]string{"webhooks", "get", "wh_nope"}, b.conn()...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != pw.ExitNotFound {
		t.Errorf("webhooks get wh_nope: %v, want exit code %d", err, pw.ExitNotFound)
	}
	if !strings.Contains(stderr.String(), "404 not_found") || strings.Contains(stderr.String(), b.key) {
		t.Errorf("webhooks get wh_nope: stderr %q", stderr.String())
	}
}

// TestSecretOverlap: after a rotation the previous secret signs too for
// --secret-overlap, and not at all when it is 0 (an operator rotating a
// leaked secret).
func TestSecretOverlap(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name      string
		overlap   time.Duration
		oldSigns  bool
		signature int // entries in webhook-signature
	}{
		{"Default", webhooks.DefaultSecretOverlap, true, 2},
		{"Zero", 0, false, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setupE2E(t, func(c *pw.ServeConfig) { c.SecretOverlap = tt.overlap })
			h := b.webhook(t)
			rotated, err := b.client.Webhooks.RotateSecret(t.Context(), h.ID)
			if err != nil {
				t.Fatal(err)
			}
			sendOne(t, b, h)
			req := b.receiver.next(t)
			if n := len(strings.Fields(req.header.Get("webhook-signature"))); n != tt.signature {
				t.Errorf("%d signatures after the rotation, want %d", n, tt.signature)
			}
			if _, err := pancake.Verify([]string{rotated.SecretKey}, req.header, req.body, time.Minute); err != nil {
				t.Errorf("the new secret does not verify: %v", err)
			}
			_, err = pancake.Verify([]string{h.SecretKey}, req.header, req.body, time.Minute)
			if signs := err == nil; signs != tt.oldSigns {
				t.Errorf("the old secret verifies: %v, want %v (err %v)", signs, tt.oldSigns, err)
			}
		})
	}
}

// Settings that would break a promise of the contract are refused by
// their flag's name, before a database file is made.
func TestServeRefusesSettingsThatBreakTheContract(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		flag string
		mod  func(*pw.ServeConfig)
	}{
		{"--secret-overlap", func(c *pw.ServeConfig) { c.SecretOverlap = -time.Second }},
		{"--retention", func(c *pw.ServeConfig) { c.Retention = -time.Hour }},
		{"--retention", func(c *pw.ServeConfig) { c.Retention = 20 * time.Second }}, // ids are kept 24 h
		{"--retention", func(c *pw.ServeConfig) { c.Retention = 23 * time.Hour }},
		{"--poll-interval", func(c *pw.ServeConfig) { c.PollInterval = -time.Second }}, // polled in a busy loop
		{"--lease", func(c *pw.ServeConfig) { c.LeaseFor = -time.Second }},
		{"--attempt-timeout", func(c *pw.ServeConfig) { c.AttemptTimeout = -time.Second }},
		{"--shutdown-timeout", func(c *pw.ServeConfig) { c.ShutdownTimeout = -time.Second }},
		// The engine's and the API's own checks named Go fields, after
		// the database was made and migrated.
		{"--workers", func(c *pw.ServeConfig) { c.Workers = -1 }},
		{"--max-in-flight-per-webhook", func(c *pw.ServeConfig) { c.MaxInFlightPerWebhook = -1 }},
		{"--max-in-flight-per-shop", func(c *pw.ServeConfig) { c.MaxInFlightPerShop = -1 }},
		{"--max-webhooks-per-shop", func(c *pw.ServeConfig) { c.MaxWebhooksPerShop = -1 }},
		{"--max-body-bytes", func(c *pw.ServeConfig) { c.MaxBodyBytes = -1 }},
		{"--rate-burst", func(c *pw.ServeConfig) { c.RateBurst = -1 }},
		{"--publish-rate-burst", func(c *pw.ServeConfig) { c.PublishRateBurst = -1 }},
		{"--rate-limit", func(c *pw.ServeConfig) { c.RateLimit = -5 }}, // was taken as "off"
		{"--publish-rate-limit", func(c *pw.ServeConfig) { c.PublishRateLimit = math.NaN() }},
		{"--retry-schedule", func(c *pw.ServeConfig) { c.RetrySchedule = []time.Duration{time.Second, 0} }},
		{"--lease", func(c *pw.ServeConfig) { c.LeaseFor = 10 * time.Second }}, // shorter than the 15 s attempt timeout
		{"--workers", func(c *pw.ServeConfig) { c.Workers = math.MaxInt }},     // the pool's size overflowed: a panic
		{"--max-in-flight-per-shop", func(c *pw.ServeConfig) { c.MaxInFlightPerShop = 1 << 40 }},
		{"--attempt-timeout", func(c *pw.ServeConfig) { c.AttemptTimeout = 700000 * time.Hour }}, // the default lease overflowed
		{"--addr", func(c *pw.ServeConfig) { c.Addr = "8080" }},
		{"--debug-addr", func(c *pw.ServeConfig) { c.DebugAddr = "localhost" }},
	} {
		file := filepath.Join(t.TempDir(), "webhooks.db")
		cfg := pw.ServeConfig{Addr: "127.0.0.1:0", DB: "sqlite:" + file, LogLevel: "error", LogFormat: "text"}
		tt.mod(&cfg)
		m := pw.NewMain(cfg, io.Discard, io.Discard)
		err := m.Run(t.Context())
		m.Close()
		if err == nil || !strings.Contains(err.Error(), tt.flag) {
			t.Errorf("%s (retention %v, overlap %v): %v; want an error naming it", tt.flag, cfg.Retention, cfg.SecretOverlap, err)
		}
		if _, err := os.Stat(file); err == nil {
			t.Errorf("%s: the database file was made", tt.flag)
		}
	}
}

// TestHTTPWebhooksStopWhenHTTPIsNoLongerAllowed: a webhook made while the
// server allowed http:// URLs is not sent to once it is restarted without
// --allow-http; its attempts fail, saying why, and nothing reaches it.
func TestHTTPWebhooksStopWhenHTTPIsNoLongerAllowed(t *testing.T) {
	t.Parallel()
	db := "sqlite:" + filepath.Join(t.TempDir(), "webhooks.db")
	receiver := startE2EReceiver(t)
	var key, hookID string
	t.Run("AllowHTTP", func(t *testing.T) {
		srv := startE2EServer(t, func(c *pw.ServeConfig) { c.DB = db })
		key = srv.createShop(t, "shop-http")
		b := &e2eBundle{srv: srv, shop: "shop-http", key: key, client: srv.client(key, "shop-http"), receiver: receiver}
		h := b.webhook(t)
		hookID = h.ID
		sendOne(t, b, h)
		receiver.next(t)
	})
	if t.Failed() {
		return
	}

	srv := startE2EServer(t, func(c *pw.ServeConfig) { c.DB, c.AllowHTTP = db, false })
	client := srv.client(key, "shop-http")
	const reason = "invalid URL: must use https"
	r, err := client.Webhooks.Test(t.Context(), hookID, pancake.EventOrderCreated, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != pancake.StatusFailed || r.FailureReason != reason {
		t.Errorf("test send: %s %q, want failed %q", r.Status, r.FailureReason, reason)
	}
	if _, err := client.Events.Publish(t.Context(), pancake.PublishRequest{Event: pancake.EventOrderCreated}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for {
		list, err := client.Webhooks.ListDeliveries(ctx, pancake.DeliveryListParams{WebhookID: hookID, Status: pancake.StatusFailed})
		if err != nil {
			t.Fatal(err)
		}
		if list.Total == 2 { // the test send and the published event's first attempt
			for _, d := range list.Data {
				if d.FailureReason != reason {
					t.Errorf("delivery %s failed with %q, want %q", d.ID, d.FailureReason, reason)
				}
			}
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%d failed deliveries, want 2", list.Total)
		case <-time.After(20 * time.Millisecond):
		}
	}
	select {
	case <-receiver.got:
		t.Error("the receiver got a request over http")
	default:
	}
}
