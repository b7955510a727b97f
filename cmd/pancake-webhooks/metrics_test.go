package main_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	pw "github.com/pancake-pos/pancake-webhooks/cmd/pancake-webhooks"
	"github.com/pancake-pos/pancake-webhooks/pancake"
)

// TestMetricsExposeTheEngineWithoutSecrets scrapes /metrics of a real server
// after a delivery, and a delivery given up (410 Gone), and checks the
// engine's series are there and that no key, URL or shop id is a label
// value.
func TestMetricsExposeTheEngineWithoutSecrets(t *testing.T) {
	t.Parallel()
	srv := startE2EServer(t)
	const shop = "metrics-shop-7"
	key := srv.createShop(t, shop)
	arrived := make(chan struct{}, 1)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
		select {
		case arrived <- struct{}{}:
		default:
		}
	}))
	defer rcv.Close()
	c := srv.client(key, shop)
	ctx := context.Background()
	hook, err := c.Webhooks.Create(ctx, pancake.CreateWebhookRequest{URL: rcv.URL + "/secret-path", Events: []pancake.WebhookEvent{pancake.EventOrderCreated}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Events.Publish(ctx, pancake.PublishRequest{Event: pancake.EventOrderCreated, Data: map[string]any{"n": 1}}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery within 10s")
	}
	// A batch of two events: one for a webhook whose endpoint is gone (its
	// delivery given up at once), one no webhook takes.
	gone := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusGone)
	}))
	defer gone.Close()
	goneHook, err := c.Webhooks.Create(ctx, pancake.CreateWebhookRequest{URL: gone.URL, Events: []pancake.WebhookEvent{pancake.EventOrderUpdated}})
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.apiURL+"/shops/"+shop+"/events/batch",
		strings.NewReader(`{"events": [{"event": "order.updated", "data": {}}, {"event": "customer.created", "data": {}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("batch publish: %d", resp.StatusCode)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		w, err := c.Webhooks.GetByID(ctx, goneHook.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !w.IsActive {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the webhook answering 410 was not disabled within 10s")
		}
	}

	var text string
	deadline := time.Now().Add(10 * time.Second)
	for {
		// The attempt is counted when it is recorded, just after it arrived.
		resp, err := testClient.Get(srv.base + "/metrics?api_key=" + key)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		text = string(b)
		if strings.Contains(text, `pancake_delivery_attempts_total{outcome="success"} 1`) && strings.Contains(text, "pancake_deliveries_given_up_total 1") ||
			time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond) // a scrape is all there is to wait on
	}
	for _, want := range []string{
		`pancake_delivery_attempts_total{outcome="success"} 1`,
		"pancake_delivery_attempt_duration_seconds_bucket",
		"pancake_delivery_attempts_in_flight",
		"pancake_queue_due",
		"pancake_queue_claimed",
		"pancake_queue_scheduled",
		"pancake_queue_oldest_due_age_seconds",
		`pancake_webhooks{status="healthy"} 1`,
		`pancake_webhooks{status="error"} 1`,
		`pancake_http_requests_total{code="202",route="POST /api/v1/shops/{shop_id}/events"} 1`,
		"pancake_events_published_total 3\n",
		"pancake_deliveries_given_up_total 1\n",
		"pancake_db_commit_duration_seconds_bucket",
		`pancake_build_info{go_version="` + runtime.Version() + `",version="` + pw.Version() + `"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	for _, secret := range []string{key, shop, hook.ID, goneHook.ID, "secret-path", rcv.URL, gone.URL} {
		if strings.Contains(text, secret) {
			t.Errorf("/metrics shows %q", secret)
		}
	}
}

// TestServeRunsTheCollectorAtGOGC300 checks, on /metrics of the real binary,
// that serve sets Go's GOGC to 300 when the environment sets none, and
// leaves an operator's GOGC alone.
func TestServeRunsTheCollectorAtGOGC300(t *testing.T) {
	t.Parallel()
	bin := buildBinary(t)
	var base []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GOGC=") {
			base = append(base, kv)
		}
	}
	for _, c := range []struct {
		gogc, want string
	}{
		{"", "go_gc_gogc_percent 300\n"},
		{"GOGC=150", "go_gc_gogc_percent 150\n"},
	} {
		env := slices.Clone(base)
		if c.gogc != "" {
			env = append(env, c.gogc)
		}
		srv := startServerEnv(t, bin, env, "--db", "sqlite:"+filepath.Join(t.TempDir(), "gc.db"))
		resp, err := testClient.Get(srv.url("/metrics"))
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
		}
		if !strings.Contains(string(b), c.want) {
			t.Errorf("environment %q: /metrics lacks %q", c.gogc, strings.TrimSpace(c.want))
		}
	}
}
