package bench

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	webhooks "github.com/pancake-pos/pancake-webhooks"
)

// relayCall sends one request to the relay's handler and returns the answer.
func relayCall(t *testing.T, r *Relay, method, path, body string) (int, string) {
	t.Helper()
	w := httptest.NewRecorder()
	r.ServeHTTP(w, httptest.NewRequest(method, path, strings.NewReader(body)))
	return w.Code, w.Body.String()
}

// TestRelayPublishWaitsForRoom checks the relay's bound: with one worker
// busy and the one waiting place taken, a publish waits for room, and
// gives up when its request ends, queuing nothing.
func TestRelayPublishWaitsForRoom(t *testing.T) {
	arrived := make(chan string, 8)
	release := make(chan struct{})
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		arrived <- string(b)
		<-release
	}))
	defer recv.Close()
	r, err := NewRelay(RelayOptions{Workers: 1, Queue: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer close(release) // before Close: a worker held by the receiver must be let go
	if code, body := relayCall(t, r, "POST", "/api/v1/shops/s1/webhooks", `{"url":"`+recv.URL+`"}`); code != http.StatusCreated || !strings.Contains(body, `"secret_key":"whsec_`) {
		t.Fatalf("create webhook: %d %s", code, body)
	}
	publish := func(ctx context.Context) (int, string) {
		w := httptest.NewRecorder()
		req := httptest.NewRequestWithContext(ctx, "POST", "/api/v1/shops/s1/events", strings.NewReader(`{"event":"order.created","data":{"n":1}}`))
		r.ServeHTTP(w, req)
		return w.Code, w.Body.String()
	}
	code, body := publish(context.Background())
	var res struct {
		EventID    string `json:"event_id"`
		Deliveries int    `json:"deliveries"`
	}
	if err := json.Unmarshal([]byte(body), &res); code != http.StatusAccepted || err != nil || res.Deliveries != 1 || !strings.HasPrefix(res.EventID, "evt_") {
		t.Fatalf("publish: %d %s", code, body)
	}
	if env := <-arrived; !strings.Contains(env, `"id":"`+res.EventID+`"`) || !strings.Contains(env, `"data":{"n":1}`) {
		t.Errorf("the receiver got %s", env)
	}
	// The worker is held by the receiver; the second publish takes the one
	// waiting place, the third finds none.
	if code, body := publish(context.Background()); code != http.StatusAccepted {
		t.Fatalf("second publish: %d %s", code, body)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if code, _ := publish(ctx); code == http.StatusAccepted {
		t.Errorf("a publish with no room and its request ended was accepted")
	}
	release <- struct{}{}
	release <- struct{}{}
	if env := <-arrived; strings.Contains(env, res.EventID) {
		t.Errorf("the same event was delivered twice")
	}
	r.Close() // makes the waiting delivery first: nothing more may arrive
	if n := len(arrived); n != 0 {
		t.Errorf("%d deliveries more than the two accepted", n)
	}
	if r.Failed() != 0 {
		t.Errorf("%d attempts failed", r.Failed())
	}
}

// TestRelayRefusesWhatItCannotServe checks the relay's answers to requests
// the benchmark does not make: a batch with a bad event in it is refused
// whole, and sends nothing.
func TestRelayRefusesWhatItCannotServe(t *testing.T) {
	var arrived atomic.Int64
	recv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { arrived.Add(1) }))
	defer recv.Close()
	r, err := NewRelay(RelayOptions{Workers: 1, Queue: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if code, body := relayCall(t, r, "POST", "/api/v1/shops/s1/webhooks", `{"url":"`+recv.URL+`"}`); code != http.StatusCreated {
		t.Fatalf("create webhook: %d %s", code, body)
	}
	for _, c := range []struct {
		method, path, body string
		want               int
	}{
		{"GET", "/readyz", "", http.StatusOK},
		{"POST", "/api/v1/admin/shops", `{}`, http.StatusBadRequest},
		{"POST", "/api/v1/shops/s1/webhooks", `{"url":""}`, http.StatusBadRequest},
		{"POST", "/api/v1/shops/s1/webhooks", `{"url":"https://192.0.2.1/hook"}`, http.StatusBadRequest},
		{"POST", "/api/v1/shops/s1/webhooks", `{"url":"http://localhost.example.com/hook"}`, http.StatusBadRequest},
		{"POST", "/api/v1/shops/s1/events", `{"event":`, http.StatusBadRequest},
		{"POST", "/api/v1/shops/s1/events", `{"event":"order.created","data":[1]}`, http.StatusBadRequest},
		{"POST", "/api/v1/shops/s1/events/batch", `{"events":[{"event":"order.created","data":{}},{"event":"order.created","data":"x"}]}`, http.StatusBadRequest},
		{"GET", "/api/v1/shops/s1/webhooks", "", http.StatusNotFound},
		{"POST", "/api/v1/shops/s1/nothing", `{}`, http.StatusNotFound},
	} {
		if code, body := relayCall(t, r, c.method, c.path, c.body); code != c.want {
			t.Errorf("%s %s %s: %d %s, want %d", c.method, c.path, c.body, code, body, c.want)
		}
	}
	// A shop without webhooks: accepted, delivered nowhere.
	code, body := relayCall(t, r, "POST", "/api/v1/shops/s2/events/batch", `{"events":[{"event":"order.created","data":{}}]}`)
	if code != http.StatusAccepted || !strings.Contains(body, `"deliveries":0`) {
		t.Errorf("batch to a shop without webhooks: %d %s", code, body)
	}
	r.Close() // the deliveries queued are made before it returns
	if n := arrived.Load(); n != 0 {
		t.Errorf("%d deliveries made for requests refused", n)
	}
}

// TestRelayJournal checks the journal of bench --relay-journal: a publish
// is answered 202 only once its events are in the file, each attempt's
// result follows, and a journal that cannot be written refuses publishes.
func TestRelayJournal(t *testing.T) {
	arrived := make(chan struct{}, 8)
	recv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { arrived <- struct{}{} }))
	defer recv.Close()
	path := filepath.Join(t.TempDir(), "journal.log")
	r, err := NewRelay(RelayOptions{Workers: 2, Queue: 8, Journal: path})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := NewRelay(RelayOptions{Workers: 1, Queue: 1, Journal: path}); err == nil {
		t.Errorf("a second relay opened the same journal")
	}
	if code, body := relayCall(t, r, "POST", "/api/v1/shops/s1/webhooks", `{"url":"`+recv.URL+`"}`); code != http.StatusCreated {
		t.Fatalf("create webhook: %d %s", code, body)
	}
	var ids []string
	code, body := relayCall(t, r, "POST", "/api/v1/shops/s1/events", `{"event":"order.created","data":{"n":1}}`)
	var one webhooks.PublishResult
	if err := json.Unmarshal([]byte(body), &one); code != http.StatusAccepted || err != nil {
		t.Fatalf("publish: %d %s", code, body)
	}
	ids = append(ids, one.EventID)
	code, body = relayCall(t, r, "POST", "/api/v1/shops/s1/events/batch", `{"events":[{"event":"order.created","data":{"n":2}},{"event":"order.paid","data":{"n":3}}]}`)
	var batch struct{ Results []webhooks.PublishResult }
	if err := json.Unmarshal([]byte(body), &batch); code != http.StatusAccepted || err != nil || len(batch.Results) != 2 {
		t.Fatalf("batch: %d %s", code, body)
	}
	for _, res := range batch.Results {
		ids = append(ids, res.EventID)
	}
	// On disk at the 202: read before any delivery is waited for.
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		if !strings.Contains(string(b), `{"id":"`+id+`"`) {
			t.Errorf("event %d (%s) is not in the journal at its 202:\n%s", i, id, b)
		}
	}
	for range ids {
		<-arrived
	}
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if ev, res, syncs := r.Journaled(); ev != 3 || res != 3 || syncs < 2 {
		t.Errorf("journaled %d events and %d results in %d fsyncs, want 3, 3 and at least 2", ev, res, syncs)
	}
	b, _ = os.ReadFile(path)
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	results := 0
	for _, l := range lines {
		var rec struct {
			Delivery, Event string
			Status          int
		}
		if json.Unmarshal([]byte(l), &rec) == nil && rec.Delivery != "" {
			results++
			if !strings.HasPrefix(rec.Delivery, "dlv_") || !slices.Contains(ids, rec.Event) || rec.Status != http.StatusOK {
				t.Errorf("result line %s", l)
			}
		}
	}
	if len(lines) != 6 || results != 3 {
		t.Errorf("the journal has %d lines, %d of them results; want 3 events and 3 results:\n%s", len(lines), results, b)
	}

	// A journal that cannot be written: the publish is refused, and Close
	// reports why.
	r2, err := NewRelay(RelayOptions{Workers: 1, Queue: 1, Journal: filepath.Join(t.TempDir(), "j")})
	if err != nil {
		t.Fatal(err)
	}
	_ = r2.jrnl.f.Close()
	if code, body := relayCall(t, r2, "POST", "/api/v1/shops/s1/events", `{"event":"order.created","data":{}}`); code != http.StatusServiceUnavailable {
		t.Errorf("publish with a broken journal: %d %s", code, body)
	}
	if err := r2.Close(); err == nil || !strings.Contains(err.Error(), "journal") {
		t.Errorf("Close after a failed write: %v", err)
	}
}
