package dispatch_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	webhooks "github.com/pancake-pos/pancake-webhooks"
	"github.com/pancake-pos/pancake-webhooks/dispatch"
	"github.com/pancake-pos/pancake-webhooks/egress"
	"github.com/pancake-pos/pancake-webhooks/store"
	"github.com/pancake-pos/pancake-webhooks/store/storetest"
)

const testShop = "shop-a"

// receiver is a real HTTP endpoint whose answers the test chooses.
type receiver struct {
	srv      *httptest.Server
	mu       sync.Mutex
	requests []*recorded
	arrived  chan *recorded
	handle   func(w http.ResponseWriter, r *recorded)
}

type recorded struct {
	uri    string // the request's target, as the receiver got it
	header http.Header
	body   []byte
}

func newReceiver(t *testing.T, handle func(w http.ResponseWriter, r *recorded)) *receiver {
	t.Helper()
	rc := &receiver{arrived: make(chan *recorded, 1000), handle: handle}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rec := &recorded{uri: r.RequestURI, header: r.Header.Clone(), body: body}
		rc.mu.Lock()
		rc.requests = append(rc.requests, rec)
		rc.mu.Unlock()
		rc.arrived <- rec
		if rc.handle != nil {
			rc.handle(w, rec)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) next(t *testing.T) *recorded {
	t.Helper()
	select {
	case r := <-rc.arrived:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery arrived within 10s")
		return nil
	}
}

type testBundle struct {
	db       *store.DB
	disp     *dispatch.Dispatcher
	recorded chan webhooks.AttemptResult
	ctx      context.Context

	mu      sync.Mutex
	commits []int // the size of each batch of results recorded

	recordErrors atomic.Bool // results not recorded are expected

	logs storetest.LogBuffer // the dispatcher's and the store's log, at debug
}

func setup(t *testing.T, cfg dispatch.Config) *testBundle {
	t.Helper()
	return setupWith(t, cfg, nil)
}

// setupWith is setup with the dispatcher's store wrapped by wrap.
func setupWith(t *testing.T, cfg dispatch.Config, wrap func(*store.DB) dispatch.Store) *testBundle {
	t.Helper()
	ctx := context.Background()
	b := &testBundle{recorded: make(chan webhooks.AttemptResult, 1000), ctx: ctx}
	logger := slog.New(slog.NewJSONHandler(&b.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	db, err := store.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "d.db"), store.Options{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	b.db = db
	t.Cleanup(func() { db.Close() })
	storetest.MustCreateShop(t, db, testShop, time.Now())
	client, err := egress.NewClient(egress.Config{Timeout: 5 * time.Second, AllowPrivateNetworks: true, UserAgent: "PancakeWebhooks/test"})
	if err != nil {
		t.Fatal(err)
	}
	cfg.OnRecordFunc = func(rs []webhooks.AttemptResult, err error) {
		if err != nil && !b.recordErrors.Load() {
			t.Errorf("record attempts: %v", err)
		}
		b.mu.Lock()
		b.commits = append(b.commits, len(rs))
		b.mu.Unlock()
		for _, r := range rs {
			b.recorded <- r
		}
	}
	if cfg.Jitter == 0 {
		cfg.Jitter = -1
	}
	var st dispatch.Store = db
	if wrap != nil {
		st = wrap(db)
	}
	b.disp, err = dispatch.NewDispatcher(logger, nil, st, client, nil, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	db.OnQueued(b.disp.Queued)
	db.OnWebhookStopped(b.disp.Stopped)
	db.OnWebhookChanged(b.disp.Changed)
	db.SetHandoff(b.disp)
	if err := b.disp.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.disp.Stop)
	return b
}

func (b *testBundle) waitRecorded(t *testing.T, n int) []webhooks.AttemptResult {
	t.Helper()
	var out []webhooks.AttemptResult
	for len(out) < n {
		select {
		case r := <-b.recorded:
			out = append(out, r)
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d attempts recorded within 10s", len(out), n)
		}
	}
	return out
}

func (b *testBundle) waitRecordedWithin(t *testing.T, n int, d time.Duration) []webhooks.AttemptResult {
	t.Helper()
	var out []webhooks.AttemptResult
	deadline := time.After(d)
	for len(out) < n {
		select {
		case r := <-b.recorded:
			out = append(out, r)
		case <-deadline:
			t.Fatalf("%d of %d attempts recorded within %s", len(out), n, d)
		}
	}
	return out
}

// sendWithSlowClaims publishes n events to one webhook answered by handle,
// through a dispatcher (32 workers, the given bound and claim batch) whose
// every claim waits 40 ms, and returns once n attempts are recorded.
func sendWithSlowClaims(t *testing.T, bound, batch, n int, handle func(http.ResponseWriter, *recorded)) *slowClaims {
	t.Helper()
	slow := &slowClaims{delay: 40 * time.Millisecond}
	b := setupWith(t, dispatch.Config{Workers: 32, MaxInFlightPerWebhook: bound, ClaimBatch: batch},
		func(db *store.DB) dispatch.Store { slow.DB = db; return slow })
	rc := newReceiver(t, handle)
	storetest.MustCreateWebhook(t, b.db, testShop, rc.srv.URL, time.Now(), "order.created")
	b.publish(t, n)
	b.waitRecordedWithin(t, n, time.Minute)
	return slow
}

// slowClaims makes every claim wait, remembers the largest asked for, and
// counts the claims made and the deliveries they took.
type slowClaims struct {
	*store.DB
	delay    time.Duration
	maxLimit atomic.Int32
	calls    atomic.Int32 // claims that returned
	claimed  atomic.Int32
	// of counts the claimed jobs of event type ofEvent, when set.
	ofEvent string
	of      atomic.Int32
}

func (s *slowClaims) ClaimDeliveries(ctx context.Context, c webhooks.Claim) ([]*webhooks.Job, error) {
	for m := s.maxLimit.Load(); int32(c.Limit) > m && !s.maxLimit.CompareAndSwap(m, int32(c.Limit)); m = s.maxLimit.Load() {
	}
	time.Sleep(s.delay)
	jobs, err := s.DB.ClaimDeliveries(ctx, c)
	s.claimed.Add(int32(len(jobs)))
	for _, j := range jobs {
		if s.ofEvent != "" && string(j.Event) == s.ofEvent {
			s.of.Add(1)
		}
	}
	s.calls.Add(1)
	return jobs, err
}

// waitFirstClaim returns once the dispatcher's first claim (on start, of
// an empty queue) has returned from the store. The dispatcher may not yet
// have noted that the queue is empty: a publish right after may still be
// queued and claimed rather than handed over.
func (s *slowClaims) waitFirstClaim(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); s.calls.Load() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no claim within 10s of the start")
		}
	}
}

// sendCheck is a receiver's handler (answering 200 after 1 ms) that
// notes deliveries sent twice and the most attempts in flight at once.
type sendCheck struct {
	seen           sync.Map
	dups, now, top atomic.Int32
}

func (c *sendCheck) handle(_ http.ResponseWriter, r *recorded) {
	n := c.now.Add(1)
	defer c.now.Add(-1)
	for m := c.top.Load(); n > m && !c.top.CompareAndSwap(m, n); m = c.top.Load() {
	}
	if _, loaded := c.seen.LoadOrStore(r.header.Get("X-Pancake-Delivery"), true); loaded {
		c.dups.Add(1)
	}
	time.Sleep(time.Millisecond)
}

// check fails t if a delivery was sent twice or more than bound at once.
func (c *sendCheck) check(t *testing.T, bound int) {
	t.Helper()
	if d := c.dups.Load(); d > 0 {
		t.Errorf("%d deliveries sent twice", d)
	}
	if m := c.top.Load(); m > int32(bound) {
		t.Errorf("%d attempts in flight at once; the bound is %d", m, bound)
	}
}

func (b *testBundle) publish(t *testing.T, n int) []webhooks.PublishResult {
	t.Helper()
	in := make([]webhooks.PublishInput, n)
	for i := range in {
		in[i] = webhooks.PublishInput{Event: "order.created", Data: json.RawMessage(`{"order_id":"o-1","total":1000}`)}
	}
	res, err := b.db.Publish(b.ctx, testShop, in)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// While results keep coming, those within RecordWait of one another are
// recorded in one commit: deliveries that trickle in, one sent after the
// other, do not each cost a commit of their own. The first, after a quiet
// spell, is recorded at once.
func TestResultsThatTrickleInShareACommit(t *testing.T) {
	t.Parallel()
	b := setup(t, dispatch.Config{RecordWait: time.Second})
	rc := newReceiver(t, nil)
	storetest.MustCreateWebhook(t, b.db, testShop, rc.srv.URL, time.Now(), "order.created")
	for range 5 {
		b.publish(t, 1)
		rc.next(t) // sent before the next is published
	}
	b.waitRecorded(t, 5)
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.commits) > 2 {
		t.Errorf("5 results that came one after the other were recorded in commits of %v; want the first alone, the rest together", b.commits)
	}
}

// A webhook URL may carry a #fragment (the contract does not forbid one);
// like any HTTP request, the delivery goes to the URL without it.
func TestAFragmentIsNotSent(t *testing.T) {
	t.Parallel()
	b := setup(t, dispatch.Config{})
	rc := newReceiver(t, nil)
	storetest.MustCreateWebhook(t, b.db, testShop, rc.srv.URL+"/hooks?shop=a#primary", time.Now(), "order.created")
	b.publish(t, 1)
	if got := rc.next(t).uri; got != "/hooks?shop=a" {
		t.Errorf("the receiver got a request for %q; want /hooks?shop=a", got)
	}
	if r := b.waitRecorded(t, 1)[0]; !r.Success {
		t.Errorf("attempt = %+v; want a success", r)
	}
}

// A delivery that waited so long behind its webhook's backlog that less
// than a whole attempt's time is left of its lease gets the lease renewed,
// and with it the whole timeout: one worker, deliveries of 1.5 s each and
// a 5 s lease leave the third 1 s, which would cut it short.
func TestALateAttemptGetsItsWholeTimeout(t *testing.T) {
	t.Parallel()
	claims := &slowClaims{}
	b := setupWith(t, dispatch.Config{Workers: 1, LeaseFor: 5 * time.Second, AttemptTimeout: 3500 * time.Millisecond},
		func(db *store.DB) dispatch.Store { claims.DB = db; return claims })
	rc := newReceiver(t, func(w http.ResponseWriter, _ *recorded) {
		time.Sleep(1500 * time.Millisecond)
		w.WriteHeader(http.StatusOK)
	})
	storetest.MustCreateWebhook(t, b.db, testShop, rc.srv.URL, time.Now(), "order.created")
	// Once the dispatcher has found the queue empty, a publish hands all 4
	// over at once, leased together (claimed, they might come one by one).
	claims.waitFirstClaim(t)
	time.Sleep(100 * time.Millisecond)
	b.publish(t, 4)
	for _, r := range b.waitRecordedWithin(t, 4, 20*time.Second) {
		if !r.Success {
			t.Errorf("attempt of %s: %s after %s; want a success within its 3.5s", r.DeliveryID, r.FailureReason, r.Duration)
		}
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.requests) != 4 {
		t.Errorf("the receiver got %d requests; want 4", len(rc.requests))
	}
}

// A result after a quiet spell does not wait for others: whatever
// RecordWait is, a lone delivery's attempt shows at once.
func TestALoneResultIsRecordedAtOnce(t *testing.T) {
	t.Parallel()
	b := setup(t, dispatch.Config{RecordWait: time.Minute})
	rc := newReceiver(t, nil)
	storetest.MustCreateWebhook(t, b.db, testShop, rc.srv.URL, time.Now(), "order.created")
	b.publish(t, 1)
	rc.next(t)
	b.waitRecordedWithin(t, 1, 10*time.Second)
}

// Of more response headers than are kept, the same ones are kept for the
// same answer, the common ones first; a value is cut between characters.
func TestManyResponseHeadersKeptInOrder(t *testing.T) {
	t.Parallel()
	b := setup(t, dispatch.Config{})
	long := "a" + strings.Repeat("é", 600) // cut at 1,024 bytes, in the middle of an é
	rc := newReceiver(t, func(w http.ResponseWriter, r *recorded) {
		for i := range 100 {
			w.Header().Set(fmt.Sprintf("X-H-%03d", i), "v")
		}
		w.Header().Set("A-Long", long)
		w.Header().Set("A-"+strings.Repeat("n", 255), "name too long to keep")
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "ok")
	})
	storetest.MustCreateWebhook(t, b.db, testShop, rc.srv.URL, time.Now(), "order.created")
	b.publish(t, 1)
	r := b.waitRecorded(t, 1)[0]
	d, err := b.db.FindDelivery(b.ctx, testShop, r.DeliveryID)
	if err != nil {
		t.Fatal(err)
	}
	h := d.Response.Headers
	if len(h) != 64 {
		t.Errorf("%d headers kept, want 64", len(h))
	}
	for _, name := range []string{"Content-Type", "Content-Length", "Date", "A-Long", "X-H-000", "X-H-059"} {
		if _, ok := h[name]; !ok {
			t.Errorf("%s not kept; kept %v", name, slices.Sorted(maps.Keys(h)))
		}
	}
	if _, ok := h["X-H-060"]; ok {
		t.Errorf("X-H-060 kept before lower names")
	}
	for name := range h {
		if len(name) > 256 {
			t.Errorf("a header name of %d bytes kept", len(name))
		}
	}
	if v := h["A-Long"]; len(v) != 1023 || !utf8.ValidString(v) || !strings.HasPrefix(long, v) {
		t.Errorf("A-Long kept as %d bytes (valid UTF-8: %v)", len(v), utf8.ValidString(v))
	}
}

// A result the database refuses does not take the others of its batch
// with it: they are recorded one by one, and only it waits for its lease.
func TestARefusedResultLeavesItsBatchRecorded(t *testing.T) {
	t.Parallel()
	refusing := &refusingRecords{release: make(chan struct{})}
	t.Cleanup(refusing.open) // a test that fails early does not leave the recorder waiting
	b := setupWith(t, dispatch.Config{}, func(db *store.DB) dispatch.Store { refusing.DB = db; return refusing })
	b.recordErrors.Store(true)
	const n = 10
	var answered sync.WaitGroup
	answered.Add(n)
	rc := newReceiver(t, func(w http.ResponseWriter, r *recorded) {
		defer answered.Done()
		if strings.Contains(string(r.body), `"order_id":"o-5"`) {
			io.WriteString(w, "refused")
		}
	})
	storetest.MustCreateWebhook(t, b.db, testShop, rc.srv.URL, time.Now(), "order.created")
	in := make([]webhooks.PublishInput, n)
	for i := range in {
		in[i] = webhooks.PublishInput{Event: "order.created", Data: json.RawMessage(fmt.Sprintf(`{"order_id":"o-%d"}`, i))}
	}
	if _, err := b.db.Publish(b.ctx, testShop, in); err != nil {
		t.Fatal(err)
	}
	// The first record waits until every result is in, so that the
	// refused one shares a batch with others.
	answered.Wait()
	time.Sleep(50 * time.Millisecond)
	refusing.open()

	deadline := time.Now().Add(10 * time.Second)
	for {
		done, total, err := b.db.FindDeliveries(b.ctx, webhooks.DeliveryFilter{ShopID: testShop, Status: webhooks.StatusSuccess})
		if err != nil {
			t.Fatal(err)
		}
		if total == n-1 {
			for _, d := range done {
				if d.Response.Body == "refused" {
					t.Fatalf("the refused result was recorded: %+v", d)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d accepted results recorded within 10s (batches refused: %d)", total, n-1, refusing.refused.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if refusing.refused.Load() < 2 || refusing.largestRefused.Load() < 2 {
		t.Errorf("refused %d batches, the largest of %d results; want the refused result in a batch with others",
			refusing.refused.Load(), refusing.largestRefused.Load())
	}
	_, pending, _ := b.db.FindDeliveries(b.ctx, webhooks.DeliveryFilter{ShopID: testShop, Status: webhooks.StatusPending})
	if pending != 1 {
		t.Errorf("%d deliveries left pending, want the refused one", pending)
	}
}

// When every record fails (the database is down), a batch's results are
// kept, and written once the database answers again: the attempts were made. They
// were dropped after ~1.5 s before, so a PostgreSQL restart left every
// attempt in flight unrecorded, and sent again after its lease (audit).
func TestResultsWaitForTheDatabaseToWriteThem(t *testing.T) {
	t.Parallel()
	refusing := &refusingRecords{release: make(chan struct{})}
	refusing.all.Store(true)
	t.Cleanup(refusing.open)
	b := setupWith(t, dispatch.Config{}, func(db *store.DB) dispatch.Store { refusing.DB = db; return refusing })
	const n = 12
	var answered sync.WaitGroup
	answered.Add(n)
	var requests atomic.Int32
	rc := newReceiver(t, func(w http.ResponseWriter, r *recorded) { requests.Add(1); answered.Done() })
	storetest.MustCreateWebhook(t, b.db, testShop, rc.srv.URL, time.Now(), "order.created")
	b.publish(t, n)
	answered.Wait()
	time.Sleep(50 * time.Millisecond)
	refusing.open()
	// Down for two rounds or so of the first batch (5 tries, up to 3
	// results alone, a pause of 1 s, the same again), then back.
	for refusing.calls.Load() < 16 {
		time.Sleep(10 * time.Millisecond)
	}
	refusing.all.Store(false)
	b.waitRecorded(t, n)
	_, total, err := b.db.FindDeliveries(b.ctx, webhooks.DeliveryFilter{ShopID: testShop, Status: webhooks.StatusSuccess})
	if err != nil || total != n {
		b.mu.Lock()
		batches := slices.Clone(b.commits)
		b.mu.Unlock()
		t.Fatalf("%d deliveries recorded as sent, %v; want all %d (batches %v)", total, err, n, batches)
	}
	if got := requests.Load(); got != n {
		t.Errorf("the receiver got %d requests for %d deliveries", got, n)
	}
}

// refusingRecords refuses every batch of results holding a response body
// "refused", as PostgreSQL refused a NUL, or every batch when all is set
// (and then does not answer Ready either); its first record waits for
// release.
type refusingRecords struct {
	*store.DB
	release        chan struct{}
	once           sync.Once
	all            atomic.Bool
	full           atomic.Bool // every record refused with errDiskFull; reads still answered
	calls          atomic.Int32
	refused        atomic.Int32
	largestRefused atomic.Int32
}

func (s *refusingRecords) open() { s.once.Do(func() { close(s.release) }) }

// Ready fails while every record does: the database is down.
func (s *refusingRecords) Ready(ctx context.Context) error {
	if s.all.Load() {
		return errors.New("down")
	}
	return s.DB.Ready(ctx)
}

func (s *refusingRecords) RecordAttempts(ctx context.Context, rs []webhooks.AttemptResult) error {
	<-s.release
	s.calls.Add(1)
	if s.full.Load() {
		s.refused.Add(1)
		return fmt.Errorf("record: %w", errDiskFull)
	}
	if s.all.Load() || slices.ContainsFunc(rs, func(r webhooks.AttemptResult) bool { return r.Response.Body == "refused" }) {
		s.refused.Add(1)
		if int32(len(rs)) > s.largestRefused.Load() {
			s.largestRefused.Store(int32(len(rs)))
		}
		return errors.New("refused")
	}
	return s.DB.RecordAttempts(ctx, rs)
}

// A test send cut on this side before the receiver answered (the caller
// went away, or the server stops) is not recorded against the webhook: it
// was recorded as failed and counted in its health (operator audit).
func TestACutTestSendIsNotRecorded(t *testing.T) {
	t.Parallel()
	b := setup(t, dispatch.Config{})
	release := make(chan struct{})
	rc := newReceiver(t, func(w http.ResponseWriter, _ *recorded) {
		select {
		case <-release:
		case <-time.After(5 * time.Second):
		}
	})
	t.Cleanup(func() { close(release) }) // before the receiver's Close, which waits for its handlers
	w := storetest.MustCreateWebhook(t, b.db, testShop, rc.srv.URL, time.Now(), "order.created")
	ctx, cancel := context.WithTimeout(b.ctx, 300*time.Millisecond)
	defer cancel()
	if d, err := b.disp.Test(ctx, w, "order.created", json.RawMessage(`{}`)); err == nil {
		t.Fatalf("a cut test send returned %+v, want an error", d)
	}
	rc.next(t) // it did reach the receiver
	_, failed, err := b.db.FindDeliveries(b.ctx, webhooks.DeliveryFilter{ShopID: testShop, Status: webhooks.StatusFailed})
	if err != nil || failed != 0 {
		t.Errorf("%d failed deliveries recorded (%v), want none", failed, err)
	}
	after, err := b.db.FindWebhook(b.ctx, testShop, w.ID)
	if err != nil {
		t.Fatal(err)
	}
	if h := after.HealthStatus(); h.ConsecutiveFailures != 0 {
		t.Errorf("health after a cut test send: %+v, want no failure", h)
	}
}

// errDiskFull stands for SQLite's disk full: the database takes no writes
// but still serves reads.
var errDiskFull = errors.New("database or disk is full")

// A lone result the database takes no write of, while it still answers
// reads (SQLite's disk full), is kept and written once it takes writes
// again: it was given up on after ~1 s before, and its delivery sent again
// after its lease (operator audit).
func TestALoneResultWaitsForAFullDisk(t *testing.T) {
	t.Parallel()
	refusing := &refusingRecords{release: make(chan struct{})}
	refusing.full.Store(true)
	refusing.open()
	b := setupWith(t, dispatch.Config{Unavailable: func(err error) bool { return errors.Is(err, errDiskFull) }},
		func(db *store.DB) dispatch.Store { refusing.DB = db; return refusing })
	var requests atomic.Int32
	rc := newReceiver(t, func(w http.ResponseWriter, r *recorded) { requests.Add(1) })
	storetest.MustCreateWebhook(t, b.db, testShop, rc.srv.URL, time.Now(), "order.created")
	b.publish(t, 1)
	// Two rounds of 5 tries, a pause between them; then writes again.
	deadline := time.Now().Add(20 * time.Second)
	for refusing.calls.Load() < 8 {
		if time.Now().After(deadline) {
			t.Fatalf("%d tries to record the result in 20s", refusing.calls.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	refusing.full.Store(false)
	b.waitRecorded(t, 1)
	_, total, err := b.db.FindDeliveries(b.ctx, webhooks.DeliveryFilter{ShopID: testShop, Status: webhooks.StatusSuccess})
	if err != nil || total != 1 {
		t.Fatalf("%d deliveries recorded as sent, %v; want 1", total, err)
	}
	if got := requests.Load(); got != 1 {
		t.Errorf("the receiver got %d requests for 1 delivery", got)
	}
}

// A webhook not sent to lately starts with 4 attempts in flight, not its
// bound, so an endpoint that starts hanging holds 4 workers, not 16; one
// whose attempts keep failing stays at 4 until one succeeds. Each success
// lets it have one more, up to its bound.
func TestAnEndpointEarnsItsBound(t *testing.T) {
	// No poll meanwhile: what starts an attempt is a publish, a claim or a
	// finished attempt.
	b := setup(t, dispatch.Config{Workers: 64, MaxInFlightPerWebhook: 16, Schedule: []time.Duration{time.Hour}, PollInterval: time.Hour})
	var failing atomic.Bool
	failing.Store(true)
	var mu sync.Mutex
	cur := 0
	var atStart []int // attempts in flight when each request began, in order
	var lastStart, released time.Time
	// The requests in flight are held together until none has begun for
	// 100 ms (at most 2 s), then let go together, so that every attempt
	// the window lets start is in flight at once however slowly a loaded
	// machine starts them: a fixed 100 ms hold each let the first of a
	// round end before the last began (the 38th and 55th attempts instead
	// of the 28th on loaded runs).
	const quiet = 100 * time.Millisecond
	rc := newReceiver(t, func(w http.ResponseWriter, _ *recorded) {
		mu.Lock()
		cur++
		atStart = append(atStart, cur)
		start := time.Now()
		lastStart = start
		mu.Unlock()
		for deadline := start.Add(2 * time.Second); time.Now().Before(deadline); {
			time.Sleep(5 * time.Millisecond)
			mu.Lock()
			if released.After(start) { // let go with the others
				mu.Unlock()
				break
			}
			if time.Since(lastStart) >= quiet {
				released = time.Now()
				mu.Unlock()
				break
			}
			mu.Unlock()
		}
		mu.Lock()
		cur--
		mu.Unlock()
		if failing.Load() {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
	storetest.MustCreateWebhook(t, b.db, testShop, rc.srv.URL, time.Now(), "order.created")
	// phase publishes 60 events to a receiver that fails or not, waits
	// for their 60 attempts and returns how many were in flight as each
	// began.
	phase := func(fail bool) []int {
		t.Helper()
		failing.Store(fail)
		mu.Lock()
		atStart = atStart[:0]
		mu.Unlock()
		b.publish(t, 60)
		for _, r := range b.waitRecordedWithin(t, 60, 30*time.Second) {
			if r.Success == fail {
				t.Fatalf("attempt recorded with success %v, want %v", r.Success, !fail)
			}
		}
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(atStart)
	}

	if most := slices.Max(phase(true)); most > 4 {
		t.Errorf("%d attempts in flight to an endpoint that never answered well, want at most 4", most)
	}

	// 4, then 8 as the first 4 succeed, then 16: the window doubles each
	// round trip, and 12 successes give it its bound, by the 28th attempt.
	ok := phase(false)
	if reached := slices.Index(ok, 16); reached < 0 || reached >= 36 {
		t.Errorf("16 attempts in flight first at the %dth attempt (-1: never); want it by the 36th (4 + 8 + 16, and margin)", reached+1)
	}
	if recovered := slices.Max(ok); recovered > 16 {
		t.Errorf("%d attempts in flight once it answered well; want its bound (16) at most", recovered)
	}

	// At its bound, it starts failing: after 5 failures in a row it gets 4.
	// The first 16 go at the bound; each of the first failures hands its
	// slot to the next (4 more) before the fifth makes it failing.
	failed := phase(true)
	if first := slices.Max(failed[:16]); first < 8 {
		t.Errorf("at most %d attempts in flight before it failed again, want its bound (16) used", first)
	}
	if later := slices.Max(failed[24:]); later > 4 {
		t.Errorf("%d attempts in flight to a failing endpoint, want at most 4", later)
	}
}

// An endpoint that fails at once, 5 times in a row and more, gets at most
// 4 attempts started every 100 ms (40 a second): a dead receiver's backlog
// must not take every core from the rest. Every delivery is still
// attempted.
func TestAFailingEndpointIsPaced(t *testing.T) {
	b := setup(t, dispatch.Config{Workers: 64, MaxInFlightPerWebhook: 16, Schedule: []time.Duration{time.Hour}, PollInterval: time.Hour})
	var arrived arrivals
	rc := newReceiver(t, func(w http.ResponseWriter, _ *recorded) {
		arrived.note()
		w.WriteHeader(http.StatusInternalServerError)
	})
	storetest.MustCreateWebhook(t, b.db, testShop, rc.srv.URL, time.Now(), "order.created")
	b.publish(t, 60)
	for _, r := range b.waitRecordedWithin(t, 60, 30*time.Second) {
		if r.Success {
			t.Fatal("an attempt to the failing endpoint was recorded as a success")
		}
	}
	arrived.mu.Lock()
	at := slices.Clone(arrived.at)
	arrived.mu.Unlock()
	if len(at) != 60 {
		t.Fatalf("%d requests arrived, want 60", len(at))
	}
	slices.SortFunc(at, func(a, b time.Time) int { return a.Compare(b) })
	// From the 11th on it is failing: 49 more attempts, 4 per 100 ms, take
	// at least 1.1 s; unpaced, they took a few milliseconds.
	if span := at[59].Sub(at[10]); span < 900*time.Millisecond {
		t.Errorf("attempts 11 to 60 to a failing endpoint started within %v; want them paced at 4 per 100 ms (≥ 1.1 s)", span)
	}
}

// A failing endpoint's held slots do not hold workers: with 4 workers
// and a failing endpoint's backlog keeping its 4 slots held, a healthy
// endpoint's deliveries still go out at once, not after that backlog.
func TestAPacedEndpointHoldsNoWorkers(t *testing.T) {
	b := setup(t, dispatch.Config{Workers: 4, MaxInFlightPerWebhook: 16, Schedule: []time.Duration{time.Hour}, PollInterval: time.Hour})
	var mu sync.Mutex
	var lastFailing, lastHealthy time.Time
	failing := newReceiver(t, func(w http.ResponseWriter, _ *recorded) {
		mu.Lock()
		lastFailing = time.Now()
		mu.Unlock()
		w.WriteHeader(http.StatusInternalServerError)
	})
	healthy := newReceiver(t, func(w http.ResponseWriter, _ *recorded) {
		mu.Lock()
		lastHealthy = time.Now()
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	})
	storetest.MustCreateWebhook(t, b.db, testShop, failing.srv.URL, time.Now(), "order.created")
	storetest.MustCreateWebhook(t, b.db, testShop, healthy.srv.URL, time.Now(), "order.updated")
	b.publish(t, 80) // order.created: the failing endpoint's backlog, paced after its 5th failure
	b.waitRecordedWithin(t, 10, 10*time.Second)
	in := make([]webhooks.PublishInput, 20)
	for i := range in {
		in[i] = webhooks.PublishInput{Event: "order.updated", Data: json.RawMessage(`{"order_id":"o-2"}`)}
	}
	if _, err := b.db.Publish(b.ctx, testShop, in); err != nil {
		t.Fatal(err)
	}
	b.waitRecordedWithin(t, 90, 30*time.Second)
	mu.Lock()
	defer mu.Unlock()
	// The failing endpoint's 70 paced attempts take ~1.7 s more (with 30,
	// ~0.7 s, a loaded machine's stall once put the healthy endpoint's
	// last delivery after them); the healthy ones must not wait for them.
	if !lastHealthy.Before(lastFailing) {
		t.Errorf("the healthy endpoint's last delivery came %v after the failing endpoint's last attempt; want it long before", lastHealthy.Sub(lastFailing))
	}
}

// TestAShopWithSlowEndpointsLeavesWorkersForTheOthers: a shop whose
// endpoints answer slowly, with more deliveries than workers, has at most
// Workers in flight, the spare eighth of the pool kept for other shops;
// once another shop's deliveries wait, it is held to its share
// (MaxInFlightPerShop) as its attempts end, and they go out with the
// slots it frees, not after its backlog.
func TestAShopWithSlowEndpointsLeavesWorkersForTheOthers(t *testing.T) {
	t.Parallel()
	b := setup(t, dispatch.Config{Workers: 8, MaxInFlightPerWebhook: 4, MaxInFlightPerShop: 4, PollInterval: time.Hour})
	slow := newReceiver(t, func(w http.ResponseWriter, _ *recorded) { time.Sleep(time.Second) })
	other := newReceiver(t, func(w http.ResponseWriter, _ *recorded) { time.Sleep(time.Second) })
	const slowShop = "shop-with-slow-endpoints"
	storetest.MustCreateShop(t, b.db, slowShop, time.Now())
	for range 6 { // 6 × 4 attempts at once could be made, three times the 8 workers
		storetest.MustCreateWebhook(t, b.db, slowShop, slow.srv.URL, time.Now(), "order.created")
	}
	// The shop's POS keeps publishing: 6 deliveries every 100 ms, 1 s each.
	stop := make(chan struct{})
	done := make(chan struct{})
	t.Cleanup(func() { close(stop); <-done })
	go func() {
		defer close(done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			if _, err := b.db.Publish(b.ctx, slowShop, []webhooks.PublishInput{{Event: "order.created", Data: json.RawMessage(`{}`)}}); err != nil {
				t.Error(err)
				return
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	for range 8 {
		slow.next(t) // alone, the shop has every worker
	}
	storetest.MustCreateWebhook(t, b.db, testShop, other.srv.URL, time.Now(), "order.created")
	start := time.Now()
	b.publish(t, 4) // 4 attempts of 1 s: ~1 s with the slots the first shop frees, 4 s on the spare worker alone
	for i := range 4 {
		select {
		case <-other.arrived:
		case <-time.After(2500*time.Millisecond - time.Since(start)):
			t.Fatalf("%d of the other shop's 4 deliveries arrived within 2.5s; the first shop kept its slots", i)
		}
	}
	t.Logf("the other shop's 4 deliveries arrived in %v", time.Since(start))
}

// arrivals notes when each request reached a receiver.
type arrivals struct {
	mu sync.Mutex
	at []time.Time
}

func (a *arrivals) note() {
	a.mu.Lock()
	a.at = append(a.at, time.Now())
	a.mu.Unlock()
}

// since returns how many requests arrived in all, and how many after t.
func (a *arrivals) since(t time.Time) (all, after int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, at := range a.at {
		if at.After(t) {
			after++
		}
	}
	return len(a.at), after
}

func TestDispatcher(t *testing.T) {
	t.Parallel()

	t.Run("DeliversSignedEnvelopeAndRecordsIt", func(t *testing.T) {
		t.Parallel()
		b := setup(t, dispatch.Config{})
		rc := newReceiver(t, nil)
		w := storetest.MustCreateWebhook(t, b.db, testShop, rc.srv.URL+"/hook", time.Now(), "order.created")
		res := b.publish(t, 1)
		req := rc.next(t)

		// The official Standard Webhooks library verifies what we sent.
		sw, err := standardwebhooks.NewWebhook(w.Secret)
		if err != nil {
			t.Fatal(err)
		}
		if err := sw.Verify(req.body, req.header); err != nil {
			t.Fatalf("standard webhooks verify: %v", err)
		}
		if got := req.header.Get("webhook-id"); got != res[0].EventID {
			t.Errorf("webhook-id = %q, want the event id %q", got, res[0].EventID)
		}
		for h, want := range map[string]string{"X-Pancake-Event": "order.created", "X-Pancake-Shop": testShop, "Content-Type": "application/json"} {
			if got := req.header.Get(h); got != want {
				t.Errorf("%s = %q, want %q", h, got, want)
			}
		}
		if ua := req.header.Get("User-Agent"); ua != "PancakeWebhooks/test" {
			t.Errorf("User-Agent = %q", ua)
		}
		var env map[string]any
		if err := json.Unmarshal(req.body, &env); err != nil {
			t.Fatal(err)
		}
		if env["id"] != res[0].EventID || env["event"] != "order.created" || env["shop_id"] != testShop || env["data"].(map[string]any)["order_id"] != "o-1" {
			t.Errorf("envelope = %v", env)
		}
		if _, ok := env["test"]; ok {
			t.Errorf("a real event carries test: %v", env["test"])
		}
		r := b.waitRecorded(t, 1)[0]
		d, err := b.db.FindDelivery(b.ctx, testShop, r.DeliveryID)
		if err != nil || d.Status != webhooks.StatusSuccess || d.Response.StatusCode != 200 || req.header.Get("X-Pancake-Delivery") != d.ID {
			t.Fatalf("delivery = %+v, %v", d, err)
		}
		// request.headers shows what the receiver got, User-Agent included,
		// under the names as the contract spells them.
		if len(d.RequestHeaders) != 8 {
			t.Errorf("request.headers = %v; want the 8 headers sent", d.RequestHeaders)
		}
		for _, h := range []string{"webhook-id", "webhook-timestamp", "webhook-signature", "Content-Type", "User-Agent", "X-Pancake-Event", "X-Pancake-Delivery", "X-Pancake-Shop"} {
			if got, want := d.RequestHeaders[h], req.header.Get(h); got != want || want == "" {
				t.Errorf("request.headers[%s] = %q, the receiver got %q", h, got, want)
			}
		}
		got, _ := b.db.FindWebhook(b.ctx, testShop, w.ID)
		if got.LastTriggeredAt == nil || got.Health.LastSuccessAt == nil {
			t.Errorf("webhook not touched: %+v", got)
		}
	})

	t.Run("RetriesUntilItLands", func(t *testing.T) {
		t.Parallel()
		b := setup(t, dispatch.Config{Schedule: []time.Duration{10 * time.Millisecond, 10 * time.Millisecond, 10 * time.Millisecond}})
		var calls atomic.Int32
		rc := newReceiver(t, func(w http.ResponseWriter, _ *recorded) {
			if calls.Add(1) <= 2 {
				w.WriteHeader(http.StatusInternalServerError)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		})
		storetest.MustCreateWebhook(t, b.db, testShop, rc.srv.URL, time.Now(), "order.created")
		b.publish(t, 1)
		ids := map[string]bool{}
		for range 3 {
			ids[rc.next(t).header.Get("webhook-id")] = true
		}
		if len(ids) != 1 {
			t.Errorf("webhook-id changed between attempts: %v", ids)
		}
		rs := b.waitRecorded(t, 3)
		if rs[0].Success || rs[1].Success || !rs[2].Success {
			t.Fatalf("outcomes = %v %v %v, want fail fail success", rs[0].Success, rs[1].Success, rs[2].Success)
		}
		first, _ := b.db.FindDelivery(b.ctx, testShop, rs[0].DeliveryID)
		if first.NextRetryAt == nil || first.FailureReason == "" || first.Attempt != 1 {
			t.Errorf("failed attempt = %+v; want next_retry_at and a reason", first)
		}
		last, _ := b.db.FindDelivery(b.ctx, testShop, rs[2].DeliveryID)
		if last.Attempt != 3 || last.Trigger != webhooks.TriggerRetry || last.RetryOf != rs[1].DeliveryID {
			t.Errorf("third attempt = %+v", last)
		}
	})

	t.Run("LastAttemptSaysNoMoreWillCome", func(t *testing.T) {
		t.Parallel()
		b := setup(t, dispatch.Config{Schedule: []time.Duration{10 * time.Millisecond}})
		rc := newReceiver(t, func(w http.ResponseWriter, _ *recorded) { w.WriteHeader(http.StatusBadGateway) })
		storetest.MustCreateWebhook(t, b.db, testShop, rc.srv.URL, time.Now(), "order.created")
		b.publish(t, 1)
		rs := b.waitRecorded(t, 2)
		last, _ := b.db.FindDelivery(b.ctx, testShop, rs[1].DeliveryID)
		if last.Status != webhooks.StatusFailed || last.NextRetryAt != nil || last.Attempt != 2 {
			t.Fatalf("last attempt = %+v", last)
		}
		if _, n, _ := b.db.FindDeliveries(b.ctx, webhooks.DeliveryFilter{ShopID: testShop, Status: webhooks.StatusPending}); n != 0 {
			t.Fatalf("%d still pending after the last attempt", n)
		}
	})

	t.Run("RetryAfterIsHonoured", func(t *testing.T) {
		t.Parallel()
		b := setup(t, dispatch.Config{Schedule: []time.Duration{10 * time.Millisecond}})
		rc := newReceiver(t, func(w http.ResponseWriter, _ *recorded) {
			w.Header().Set("Retry-After", "120")
			w.WriteHeader(http.StatusTooManyRequests)
		})
		storetest.MustCreateWebhook(t, b.db, testShop, rc.srv.URL, time.Now(), "order.created")
		b.publish(t, 1)
		r := b.waitRecorded(t, 1)[0]
		d, _ := b.db.FindDelivery(b.ctx, testShop, r.DeliveryID)
		if d.NextRetryAt == nil || d.NextRetryAt.Sub(r.AttemptedAt) < 119*time.Second {
			t.Fatalf("next retry at %v after an attempt at %v; want Retry-After 120s honoured", d.NextRetryAt, r.AttemptedAt)
		}
	})

	t.Run("RetryIsCountedFromTheAttemptsEnd", func(t *testing.T) {
		t.Parallel()
		// A receiver that fails after 1 s (as one that times out does):
		// the retry is due a whole delay after the failure, not 1 s of it.
		b := setup(t, dispatch.Config{Schedule: []time.Duration{2 * time.Second}})
		rc := newReceiver(t, func(w http.ResponseWriter, _ *recorded) {
			time.Sleep(time.Second)
			w.WriteHeader(http.StatusInternalServerError)
		})
		storetest.MustCreateWebhook(t, b.db, testShop, rc.srv.URL, time.Now(), "order.created")
		b.publish(t, 1)
		first := b.waitRecorded(t, 1)[0]
		d, _ := b.db.FindDelivery(b.ctx, testShop, first.DeliveryID)
		if d.NextRetryAt == nil || d.NextRetryAt.Before(first.AttemptedAt.Add(first.Duration+2*time.Second-time.Millisecond)) {
			t.Fatalf("next retry at %v after an attempt at %v that took %v; want 2s after its end", d.NextRetryAt, first.AttemptedAt, first.Duration)
		}
		second := b.waitRecordedWithin(t, 1, 10*time.Second)[0]
		d, _ = b.db.FindDelivery(b.ctx, testShop, second.DeliveryID)
		if d.NextRetryAt != nil {
			t.Fatalf("the last attempt has a next retry at %v", d.NextRetryAt)
		}
		if second.AttemptedAt.Before(first.AttemptedAt.Add(first.Duration + 2*time.Second - 5*time.Millisecond)) {
			t.Errorf("retried at %v, %v after the first attempt ended; want 2s", second.AttemptedAt, second.AttemptedAt.Sub(first.AttemptedAt.Add(first.Duration)))
		}
	})

	t.Run("NothingStartsAfterTheWebhookIsDisabled", func(t *testing.T) {
		t.Parallel()
		// A slow receiver: deliveries wait claimed behind the ones in
		// flight. Once the webhook is disabled, none of them may go out;
		// those in flight finish and are recorded.
		b := setup(t, dispatch.Config{})
		var arrived arrivals
		rc := newReceiver(t, func(http.ResponseWriter, *recorded) {
			arrived.note()
			time.Sleep(300 * time.Millisecond)
		})
		w := storetest.MustCreateWebhook(t, b.db, testShop, rc.srv.URL, time.Now(), "order.created")
		b.publish(t, 40)
		rc.next(t)
		f := false
		if _, err := b.db.UpdateWebhook(b.ctx, testShop, w.ID, webhooks.WebhookUpdate{IsActive: &f}); err != nil {
			t.Fatal(err)
		}
		disabled := time.Now()
		time.Sleep(time.Second)
		sent, late := arrived.since(disabled.Add(100 * time.Millisecond))
		if late > 0 {
			t.Errorf("%d of %d requests arrived after the webhook was disabled", late, sent)
		}
		// Every delivery is accounted for: those sent as attempts, the rest
		// cancelled.
		b.waitRecordedWithin(t, sent, 10*time.Second)
		all, total, err := b.db.FindDeliveries(b.ctx, webhooks.DeliveryFilter{ShopID: testShop, Limit: 100})
		if err != nil || total != 40 {
			t.Fatalf("%d deliveries listed (%v), want 40", total, err)
		}
		cancelled := 0
		for _, d := range all {
			if d.FailureReason == webhooks.FailureWebhookDisabled {
				cancelled++
			}
		}
		if cancelled != 40-sent {
			t.Errorf("%d cancelled, %d sent; want the %d not sent cancelled", cancelled, sent, 40-sent)
		}
	})

	t.Run("NothingStartsAfterA410", func(t *testing.T) {
		t.Parallel()
		b := setup(t, dispatch.Config{})
		// The first window of attempts (slow start) goes out at once and
		// arrives long before any of them is answered; a request that
		// arrives after the first 410 was answered was started after it.
		var answered atomic.Int64 // when the first 410 was answered, Unix ns
		var all, late atomic.Int32
		rc := newReceiver(t, func(w http.ResponseWriter, _ *recorded) {
			all.Add(1)
			if at := answered.Load(); at != 0 && time.Now().UnixNano() > at {
				late.Add(1)
			}
			time.Sleep(300 * time.Millisecond)
			answered.CompareAndSwap(0, time.Now().UnixNano())
			w.WriteHeader(http.StatusGone)
		})
		storetest.MustCreateWebhook(t, b.db, testShop, rc.srv.URL, time.Now(), "order.created")
		b.publish(t, 30)
		b.waitRecorded(t, 1)
		time.Sleep(time.Second)
		if n := late.Load(); n > 0 {
			t.Errorf("%d of %d requests arrived after the webhook had answered 410", n, all.Load())
		}
	})

	t.Run("GoneDisablesTheWebhook", func(t *testing.T) {
		t.Parallel()
		b := setup(t, dispatch.Config{})
		rc := newReceiver(t, func(w http.ResponseWriter, _ *recorded) { w.WriteHeader(http.StatusGone) })
		w := storetest.MustCreateWebhook(t, b.db, testShop, rc.srv.URL, time.Now(), "order.created")
		b.publish(t, 1)
		b.waitRecorded(t, 1)
		got, _ := b.db.FindWebhook(b.ctx, testShop, w.ID)
		if got.IsActive || got.DisabledReason != webhooks.DisabledReasonGone {
			t.Fatalf("after 410: active=%v reason=%q", got.IsActive, got.DisabledReason)
		}
		// The operator hears of it: deliveries to this webhook stop.
		var told bool
		for line := range strings.Lines(b.logs.String()) {
			var rec struct {
				Level     string `json:"level"`
				Msg       string `json:"msg"`
				WebhookID string `json:"webhook_id"`
			}
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Level == "INFO" &&
				strings.Contains(rec.Msg, "disabled") && rec.WebhookID == w.ID {
				told = true
			}
		}
		if !told {
			t.Fatalf("no info line says webhook %s was disabled:\n%s", w.ID, b.logs.String())
		}
	})

	t.Run("RotationSignsWithBothSecrets", func(t *testing.T) {
		t.Parallel()
		b := setup(t, dispatch.Config{})
		rc := newReceiver(t, nil)
		w := storetest.MustCreateWebhook(t, b.db, testShop, rc.srv.URL, time.Now(), "order.created")
		next := webhooks.NewSecret()
		if _, err := b.db.RotateSecret(b.ctx, testShop, w.ID, next, time.Hour); err != nil {
			t.Fatal(err)
		}
		b.publish(t, 1)
		req := rc.next(t)
		if n := len(strings.Fields(req.header.Get("webhook-signature"))); n != 2 {
			t.Fatalf("%d signatures, want 2 during the overlap", n)
		}
		for _, s := range []string{w.Secret, next} {
			sw, _ := standardwebhooks.NewWebhook(s)
			if err := sw.Verify(req.body, req.header); err != nil {
				t.Errorf("verify with one of the secrets: %v", err)
			}
		}
	})

	t.Run("TheOldSecretStopsSigningWhenTheOverlapEnds", func(t *testing.T) {
		t.Parallel()
		// A slow receiver: deliveries claimed during the overlap are sent
		// after it ends. Those may not carry the old secret's signature.
		b := setup(t, dispatch.Config{MaxInFlightPerWebhook: 2})
		var (
			mu    sync.Mutex
			after []int // signatures of the requests that came after the overlap
		)
		var ends time.Time
		rc := newReceiver(t, func(w http.ResponseWriter, r *recorded) {
			mu.Lock()
			// A margin for the store's own end (a moment after this one)
			// and for a request signed just before it to arrive.
			if time.Now().After(ends.Add(150 * time.Millisecond)) {
				after = append(after, len(strings.Fields(r.header.Get("webhook-signature"))))
			}
			mu.Unlock()
			time.Sleep(150 * time.Millisecond)
		})
		w := storetest.MustCreateWebhook(t, b.db, testShop, rc.srv.URL, time.Now(), "order.created")
		mu.Lock()
		ends = time.Now().Add(400 * time.Millisecond)
		mu.Unlock()
		if _, err := b.db.RotateSecret(b.ctx, testShop, w.ID, webhooks.NewSecret(), 400*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		b.publish(t, 24) // 2 at a time, 150 ms each: most are sent after the overlap
		b.waitRecordedWithin(t, 24, 20*time.Second)
		mu.Lock()
		defer mu.Unlock()
		if len(after) < 4 {
			t.Fatalf("only %d requests came after the overlap; the test needs more", len(after))
		}
		for i, n := range after {
			if n != 1 {
				t.Errorf("request %d after the overlap had %d signatures, want 1", i, n)
			}
		}
	})

	t.Run("NothingGoesToTheOldURLOrSecretAfterAChange", func(t *testing.T) {
		t.Parallel()
		// A slow receiver: deliveries wait claimed behind the ones in
		// flight, holding the URL and secrets of their claim. Once the URL
		// moves and the secret is rotated without overlap (a leak), none
		// may go out to the old URL or be signed with the old secret.
		b := setup(t, dispatch.Config{})
		var arrived arrivals
		old := newReceiver(t, func(http.ResponseWriter, *recorded) {
			arrived.note()
			time.Sleep(300 * time.Millisecond)
		})
		moved := newReceiver(t, nil)
		w := storetest.MustCreateWebhook(t, b.db, testShop, old.srv.URL, time.Now(), "order.created")
		b.publish(t, 40)
		old.next(t)
		next := webhooks.NewSecret()
		if _, err := b.db.RotateSecret(b.ctx, testShop, w.ID, next, 0); err != nil {
			t.Fatal(err)
		}
		url := moved.srv.URL
		if _, err := b.db.UpdateWebhook(b.ctx, testShop, w.ID, webhooks.WebhookUpdate{URL: &url}); err != nil {
			t.Fatal(err)
		}
		changed := time.Now()
		b.waitRecordedWithin(t, 40, 20*time.Second)
		sent, late := arrived.since(changed.Add(100 * time.Millisecond))
		if late > 0 {
			t.Errorf("%d of %d requests to the old URL arrived after it changed", late, sent)
		}
		verifier, err := standardwebhooks.NewWebhook(next)
		if err != nil {
			t.Fatal(err)
		}
		for range 40 - sent {
			req := moved.next(t)
			if n := len(strings.Fields(req.header.Get("webhook-signature"))); n != 1 {
				t.Errorf("%d signatures after a rotation without overlap, want 1", n)
			}
			if err := verifier.Verify(req.body, req.header); err != nil {
				t.Errorf("a delivery to the new URL does not verify with the new secret: %v", err)
			}
		}
	})

	t.Run("HealthyEndpointFlowsWhileAnotherHangs", func(t *testing.T) {
		t.Parallel()
		b := setup(t, dispatch.Config{Workers: 16, MaxInFlightPerWebhook: 3})
		release := make(chan struct{})
		var hanging, maxHanging atomic.Int32
		slow := newReceiver(t, func(w http.ResponseWriter, _ *recorded) {
			n := hanging.Add(1)
			for {
				m := maxHanging.Load()
				if n <= m || maxHanging.CompareAndSwap(m, n) {
					break
				}
			}
			<-release
			hanging.Add(-1)
		})
		t.Cleanup(func() { close(release) })
		fast := newReceiver(t, nil)
		storetest.MustCreateWebhook(t, b.db, testShop, slow.srv.URL, time.Now(), "order.created")
		fastHook := storetest.MustCreateWebhook(t, b.db, testShop, fast.srv.URL, time.Now(), "order.created")
		b.publish(t, 40)
		for range 40 {
			fast.next(t)
		}
		n := 0
		for n < 40 {
			r := <-b.recorded
			if r.WebhookID == fastHook.ID && r.Success {
				n++
			}
		}
		if m := maxHanging.Load(); m > 3 {
			t.Errorf("%d attempts in flight to the hanging endpoint, want at most 3", m)
		}
	})

	t.Run("HealthyEndpointFlowsBehindAnotherBacklog", func(t *testing.T) {
		t.Parallel()
		// A claim looks at 4 × ClaimBatch of the oldest due rows: the
		// hanging webhook's backlog is far longer, and the healthy one's
		// deliveries are queued behind all of it.
		b := setup(t, dispatch.Config{Workers: 16, MaxInFlightPerWebhook: 3, ClaimBatch: 8})
		release := make(chan struct{})
		slow := newReceiver(t, func(http.ResponseWriter, *recorded) { <-release })
		t.Cleanup(func() { close(release) })
		fast := newReceiver(t, nil)
		storetest.MustCreateWebhook(t, b.db, testShop, slow.srv.URL, time.Now(), "order.created")
		b.publish(t, 500)
		storetest.MustCreateWebhook(t, b.db, testShop, fast.srv.URL, time.Now(), "customer.created")
		in := make([]webhooks.PublishInput, 20)
		for i := range in {
			in[i] = webhooks.PublishInput{Event: "customer.created", Data: json.RawMessage(`{"customer_id":"c-1"}`)}
		}
		if _, err := b.db.Publish(b.ctx, testShop, in); err != nil {
			t.Fatal(err)
		}
		for range 20 {
			if r := fast.next(t); r.header.Get("X-Pancake-Event") != "customer.created" {
				t.Fatalf("fast endpoint got %s", r.header.Get("X-Pancake-Event"))
			}
		}
		_, queued, err := b.db.FindDeliveries(b.ctx, webhooks.DeliveryFilter{ShopID: testShop, Status: webhooks.StatusPending})
		if err != nil || queued < 500-3-3-8 {
			t.Fatalf("%d queued, %v; the hanging webhook's backlog should still be there", queued, err)
		}
	})

	t.Run("FastEndpointClaimedFurtherAheadWhenClaimsAreSlow", func(t *testing.T) {
		t.Parallel()
		// Each claim waits 40 ms, as it does behind a flood of publishes
		// in the writer. A fast endpoint at its bound sends far more than
		// one claim batch meanwhile: the dispatcher must claim further
		// ahead for it, never above 4 claim batches, and never send more
		// than the bound at once.
		const bound, batch, n = 4, 16, 800
		var sends sendCheck
		slow := sendWithSlowClaims(t, bound, batch, n, sends.handle)
		sends.check(t, bound)
		if l := slow.maxLimit.Load(); l <= batch+bound || l > 4*batch {
			t.Errorf("largest claim asked for %d deliveries; want more than %d (one batch and the bound) and at most %d", l, batch+bound, 4*batch)
		}
	})

	t.Run("FailingEndpointKeepsOnlyItsBoundClaimed", func(t *testing.T) {
		t.Parallel()
		// The same slow claims, but the endpoint fails every attempt at
		// once (as one that is down does): its deliveries only go back to
		// the queue, so the dispatcher must not claim further ahead for it
		// and take the writer from the publishes.
		const bound, batch, n = 4, 16, 400
		slow := sendWithSlowClaims(t, bound, batch, n, func(w http.ResponseWriter, _ *recorded) {
			w.WriteHeader(http.StatusInternalServerError)
		})
		if l := slow.maxLimit.Load(); l > batch {
			t.Errorf("largest claim asked for %d deliveries; want at most one batch (%d) for a failing endpoint", l, batch)
		}
	})

	t.Run("PublishedDeliveriesSkipTheClaim", func(t *testing.T) {
		t.Parallel()
		// A dispatcher with room takes what a publish queues straight from
		// its commit: no claim needs to find it.
		counting := &slowClaims{}
		b := setupWith(t, dispatch.Config{}, func(db *store.DB) dispatch.Store { counting.DB = db; return counting })
		rc := newReceiver(t, nil)
		storetest.MustCreateWebhook(t, b.db, testShop, rc.srv.URL, time.Now(), "order.created")
		sendOne := func() {
			t.Helper()
			res := b.publish(t, 1)
			if got := rc.next(t).header.Get("webhook-id"); got != res[0].EventID {
				t.Fatalf("delivered event %s; want %s", got, res[0].EventID)
			}
			if r := b.waitRecorded(t, 1); !r[0].Success {
				t.Fatalf("attempt recorded as failed: %+v", r[0])
			}
		}
		// A first delivery, published perhaps before the start's claim
		// has told the dispatcher that the queue is empty: by the time it
		// is recorded, a claim has (the start's, or the one that took it).
		sendOne()
		start, calls, claimed := time.Now(), counting.calls.Load(), counting.claimed.Load()
		for range 20 {
			sendOne()
		}
		if n := counting.claimed.Load() - claimed; n != 0 {
			t.Errorf("claims took %d of the 20 deliveries; want 0: each was handed over by its publish", n)
		}
		// Nor does a finished attempt make the engine look at the queue it
		// knows is empty: only the poll (every second) does, and the claim
		// that follows one that took the first delivery, if one did.
		if n, most := counting.calls.Load()-calls, int32(time.Since(start)/time.Second)+2; n > most {
			t.Errorf("%d claims during 20 attempts in %s; want at most %d (the polls, and one more)", n, time.Since(start).Round(time.Millisecond), most)
		}
	})

	t.Run("PublishedDeliveriesSkipTheClaimBesideAHangingEndpoint", func(t *testing.T) {
		t.Parallel()
		// An endpoint that hangs, at its bound with a backlog queued, and
		// still published to: its deliveries wait in the queue, but a
		// healthy endpoint's are still handed over by their publishes. One
		// such endpoint made every delivery of every shop go through the
		// queue and a claim (soak audit: CPU per attempt 1.36 → 2.9 ms).
		counting := &slowClaims{ofEvent: "customer.created"}
		b := setupWith(t, dispatch.Config{Workers: 16, MaxInFlightPerWebhook: 2, ClaimBatch: 8},
			func(db *store.DB) dispatch.Store { counting.DB = db; return counting })
		release := make(chan struct{})
		hang := newReceiver(t, func(http.ResponseWriter, *recorded) { <-release })
		t.Cleanup(func() { close(release) })
		fast := newReceiver(t, nil)
		storetest.MustCreateWebhook(t, b.db, testShop, hang.srv.URL, time.Now(), "order.created")
		storetest.MustCreateWebhook(t, b.db, testShop, fast.srv.URL, time.Now(), "customer.created")
		counting.waitFirstClaim(t)
		b.publish(t, 40) // order.created: 2 in flight, the rest claimed ahead or queued
		hang.next(t)
		customer := []webhooks.PublishInput{{Event: "customer.created", Data: json.RawMessage(`{"customer_id":"c-1"}`)}}
		sendOne := func() {
			t.Helper()
			res, err := b.db.Publish(b.ctx, testShop, customer)
			if err != nil {
				t.Fatal(err)
			}
			if got := fast.next(t).header.Get("webhook-id"); got != res[0].EventID {
				t.Fatalf("delivered event %s; want %s", got, res[0].EventID)
			}
		}
		// The first, perhaps before a claim has seen the queue as it is.
		sendOne()
		before, calls, start := counting.of.Load(), counting.calls.Load(), time.Now()
		for range 20 {
			b.publish(t, 1) // the hanging endpoint's queue keeps growing
			sendOne()
		}
		if n := counting.of.Load() - before; n != 0 {
			t.Errorf("claims took %d of the healthy endpoint's 20 deliveries; want 0: each was handed over by its publish", n)
		}
		// Nor do the hanging endpoint's publishes, or the healthy one's
		// ended attempts, make the engine read the queue: nothing in it
		// can be taken until a hanging attempt ends. Only the poll does.
		if n, most := counting.calls.Load()-calls, int32(time.Since(start)/time.Second)+2; n > most {
			t.Errorf("%d claims during 20 publishes of each in %s; want at most %d (the polls, and one more)", n, time.Since(start).Round(time.Millisecond), most)
		}
	})

	t.Run("HandOverAndClaimsSendEachDeliveryOnce", func(t *testing.T) {
		t.Parallel()
		// 8 publishers at once to an endpoint with a bound of 2: some
		// deliveries are handed over, the rest wait for claims; each is
		// sent once, within the bound, and recorded.
		const bound, publishers, each = 2, 8, 40
		counting := &slowClaims{}
		b := setupWith(t, dispatch.Config{Workers: 16, MaxInFlightPerWebhook: bound, ClaimBatch: 8},
			func(db *store.DB) dispatch.Store { counting.DB = db; return counting })
		var sends sendCheck
		rc := newReceiver(t, sends.handle)
		storetest.MustCreateWebhook(t, b.db, testShop, rc.srv.URL, time.Now(), "order.created")
		counting.waitFirstClaim(t)
		var wg sync.WaitGroup
		for range publishers {
			wg.Go(func() {
				for range each {
					b.publish(t, 1)
				}
			})
		}
		wg.Wait()
		const n = publishers * each
		for _, r := range b.waitRecordedWithin(t, n, time.Minute) {
			if !r.Success {
				t.Fatalf("attempt recorded as failed: %+v", r)
			}
		}
		sends.check(t, bound)
		if c := counting.claimed.Load(); c == 0 || c == n {
			t.Errorf("claims took %d of %d deliveries; want some (the endpoint is at its bound) but not all", c, n)
		}
		if _, q, err := b.db.FindDeliveries(b.ctx, webhooks.DeliveryFilter{ShopID: testShop, Status: webhooks.StatusPending}); err != nil || q != 0 {
			t.Errorf("%d deliveries still queued (%v); want 0", q, err)
		}
	})

	t.Run("PublishedDeliveriesDoNotPassQueuedOnes", func(t *testing.T) {
		t.Parallel()
		// Bound 1, claims slowed. e1 is in flight, e2 handed over behind
		// it, e3 finds no room and is queued. When e1 is answered, e2 goes
		// out and a claim for e3 begins; e4, published meanwhile, must
		// wait behind e3 even though there is room again.
		slow := &slowClaims{delay: 40 * time.Millisecond}
		b := setupWith(t, dispatch.Config{Workers: 4, MaxInFlightPerWebhook: 1, ClaimBatch: 4},
			func(db *store.DB) dispatch.Store { slow.DB = db; return slow })
		gate := make(chan struct{})
		rc := newReceiver(t, func(w http.ResponseWriter, _ *recorded) { <-gate })
		storetest.MustCreateWebhook(t, b.db, testShop, rc.srv.URL, time.Now(), "order.created")
		slow.waitFirstClaim(t)
		var ids []string
		publish := func() { ids = append(ids, b.publish(t, 1)[0].EventID) }
		publish() // e1
		rc.next(t)
		publish()                          // e2
		publish()                          // e3
		time.Sleep(300 * time.Millisecond) // e1's attempt is slow: the webhook keeps its bound ahead, no more
		gate <- struct{}{}                 // e1 answered
		rc.next(t)                         // e2 sent
		publish()                          // e4
		close(gate)
		b.waitRecordedWithin(t, 4, 30*time.Second)
		rc.mu.Lock()
		var got []string
		for _, r := range rc.requests {
			got = append(got, r.header.Get("webhook-id"))
		}
		rc.mu.Unlock()
		if !slices.Equal(got, ids) {
			t.Errorf("events arrived in the order %v; want %v (published order)", got, ids)
		}
	})

	t.Run("TestSendAndManualRetry", func(t *testing.T) {
		t.Parallel()
		b := setup(t, dispatch.Config{})
		var fail atomic.Bool
		fail.Store(true)
		rc := newReceiver(t, func(w http.ResponseWriter, _ *recorded) {
			if fail.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
				io.WriteString(w, "down for maintenance")
				return
			}
			w.WriteHeader(http.StatusOK)
		})
		w := storetest.MustCreateWebhook(t, b.db, testShop, rc.srv.URL, time.Now(), "order.created")
		d, err := b.disp.Test(b.ctx, w, "order.created", json.RawMessage(`{"order_id":"test-123"}`))
		if err != nil {
			t.Fatal(err)
		}
		req := rc.next(t)
		var env map[string]any
		json.Unmarshal(req.body, &env)
		if env["test"] != true || d.Status != webhooks.StatusFailed || d.Response.StatusCode != 503 || d.Response.Body != "down for maintenance" || d.FailureReason == "" {
			t.Fatalf("test send = %+v, envelope %v", d, env)
		}
		if _, n, _ := b.db.FindDeliveries(b.ctx, webhooks.DeliveryFilter{ShopID: testShop, Status: webhooks.StatusPending}); n != 0 {
			t.Fatalf("a test send was queued for retry")
		}
		fail.Store(false)
		r, err := b.disp.Retry(b.ctx, testShop, d.ID)
		if err != nil {
			t.Fatal(err)
		}
		again := rc.next(t)
		if r.Status != webhooks.StatusSuccess || r.Trigger != webhooks.TriggerManualRetry || r.RetryOf != d.ID || r.ID == d.ID {
			t.Fatalf("retry = %+v", r)
		}
		if again.header.Get("webhook-id") != req.header.Get("webhook-id") || string(again.body) != string(req.body) {
			t.Errorf("manual retry sent another event")
		}
		// Attempts at the event go on counting, whichever is retried.
		r2, err := b.disp.Retry(b.ctx, testShop, d.ID)
		if err != nil {
			t.Fatal(err)
		}
		rc.next(t)
		for id, want := range map[string]int{d.ID: 1, r.ID: 2, r2.ID: 3} {
			got, err := b.db.FindDelivery(b.ctx, testShop, id)
			if err != nil {
				t.Fatal(err)
			}
			if got.Attempt != want {
				t.Errorf("delivery %s is attempt %d, want %d", id, got.Attempt, want)
			}
		}
		_, err = b.disp.Retry(b.ctx, testShop, "dlv_01jzzzzzzzzzzzzzzzzzzzzzzz")
		if webhooks.ErrorCode(err) != webhooks.ENOTFOUND {
			t.Errorf("retry of unknown delivery: %v", err)
		}
		// A disabled webhook gets no new delivery, a manual retry included;
		// a test send still goes out, and once enabled retries do again.
		setActive := func(on bool) {
			t.Helper()
			if _, err := b.db.UpdateWebhook(b.ctx, testShop, w.ID, webhooks.WebhookUpdate{IsActive: &on}); err != nil {
				t.Fatal(err)
			}
		}
		setActive(false)
		_, err = b.disp.Retry(b.ctx, testShop, r.ID)
		if webhooks.ErrorCode(err) != webhooks.ECONFLICT || !strings.Contains(err.Error(), "disabled") {
			t.Errorf("retry to a disabled webhook: %v; want a conflict that says it is disabled", err)
		}
		off, err := b.db.FindWebhook(b.ctx, testShop, w.ID)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.disp.Test(b.ctx, off, "order.created", json.RawMessage(`{}`)); err != nil {
			t.Fatal(err)
		}
		if env := rc.next(t); env.header.Get("webhook-id") == req.header.Get("webhook-id") {
			t.Errorf("the refused retry reached the receiver instead of the test send")
		}
		setActive(true)
		if _, err := b.disp.Retry(b.ctx, testShop, r.ID); err != nil {
			t.Errorf("retry once enabled again: %v", err)
		}
		if again := rc.next(t); again.header.Get("webhook-id") != req.header.Get("webhook-id") {
			t.Errorf("retry once enabled again sent another event")
		}
		if err := b.db.DeleteWebhook(b.ctx, testShop, w.ID); err != nil {
			t.Fatal(err)
		}
		_, err = b.disp.Retry(b.ctx, testShop, r.ID)
		if webhooks.ErrorCode(err) != webhooks.ENOTFOUND {
			t.Errorf("retry after the webhook was deleted: %v", err)
		}
	})

	t.Run("AttemptEndsBeforeItsClaim", func(t *testing.T) {
		t.Parallel()
		// The lease is shorter than the receiver takes: the attempt is cut
		// before the claim runs out, so no other worker can take the
		// delivery while it is still being sent.
		b := setup(t, dispatch.Config{LeaseFor: 2 * time.Second, AttemptTimeout: 1900 * time.Millisecond})
		release := make(chan struct{})
		rc := newReceiver(t, func(w http.ResponseWriter, _ *recorded) { <-release })
		t.Cleanup(func() { close(release) })
		storetest.MustCreateWebhook(t, b.db, testShop, rc.srv.URL, time.Now(), "order.created")
		b.publish(t, 1)
		r := b.waitRecorded(t, 1)[0]
		if r.Success || !strings.HasPrefix(r.FailureReason, "timeout") || r.Duration > 1500*time.Millisecond {
			t.Fatalf("attempt = %+v; want a timeout well inside the 2s claim", r)
		}
	})

	t.Run("StopLetsInFlightAttemptsFinish", func(t *testing.T) {
		t.Parallel()
		b := setup(t, dispatch.Config{})
		release := make(chan struct{})
		rc := newReceiver(t, func(w http.ResponseWriter, _ *recorded) {
			<-release
			w.WriteHeader(http.StatusOK)
		})
		storetest.MustCreateWebhook(t, b.db, testShop, rc.srv.URL, time.Now(), "order.created")
		b.publish(t, 1)
		rc.next(t)
		stopped := make(chan struct{})
		go func() { b.disp.Stop(); close(stopped) }()
		close(release)
		select {
		case <-stopped:
		case <-time.After(10 * time.Second):
			t.Fatal("Stop did not return")
		}
		r := b.waitRecorded(t, 1)[0]
		if !r.Success {
			t.Fatalf("in-flight attempt recorded as %+v", r)
		}
	})
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]dispatch.Config{
		"NegativeWorkers":          {Workers: -1},
		"ZeroDelay":                {Schedule: []time.Duration{time.Second, 0}},
		"JitterOfOneOrMore":        {Jitter: 1},
		"LeaseNoLongerThanAttempt": {LeaseFor: 10 * time.Second, AttemptTimeout: 10 * time.Second},
		"WorkersOverflowThePool":   {Workers: math.MaxInt},               // a panic in make
		"AttemptOverflowsTheLease": {AttemptTimeout: 700000 * time.Hour}, // the default lease went negative
		"TooManyInFlight":          {MaxInFlightPerWebhook: dispatch.MaxWorkers + 1},
	} {
		// The config is refused before the missing store is noticed.
		if _, err := dispatch.NewDispatcher(nil, nil, nil, nil, nil, &cfg); err == nil || !strings.HasPrefix(err.Error(), "dispatch config:") {
			t.Errorf("%s: %v; want the config refused", name, err)
		}
	}
}

// Every attempt, queued or synchronous, is one line of the log at debug.
func TestEveryAttemptIsLoggedAtDebug(t *testing.T) {
	t.Parallel()
	b := setup(t, dispatch.Config{})
	rc := newReceiver(t, func(w http.ResponseWriter, r *recorded) {})
	w := storetest.MustCreateWebhook(t, b.db, testShop, rc.srv.URL, time.Now(), "order.created")
	b.publish(t, 1)
	queued := <-b.recorded
	test, err := b.disp.Test(b.ctx, w, "order.created", json.RawMessage(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	retry, err := b.disp.Retry(b.ctx, testShop, queued.DeliveryID)
	if err != nil {
		t.Fatal(err)
	}
	// A second retry of the same delivery is the event's third attempt at
	// the webhook: the line gives the number recorded, not orig.Attempt+1.
	again, err := b.disp.Retry(b.ctx, testShop, queued.DeliveryID)
	if err != nil {
		t.Fatal(err)
	}
	if again.Attempt != 3 {
		t.Fatalf("second manual retry recorded as attempt %d; want 3", again.Attempt)
	}
	lines := map[string]string{} // delivery id: trigger and attempt
	for line := range strings.Lines(b.logs.String()) {
		var rec struct {
			Msg        string `json:"msg"`
			DeliveryID string `json:"delivery_id"`
			Trigger    string `json:"trigger"`
			Attempt    int    `json:"attempt"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "delivery attempt" {
			lines[rec.DeliveryID] = fmt.Sprintf("%s #%d", rec.Trigger, rec.Attempt)
		}
	}
	want := map[string]string{queued.DeliveryID: "event #1", test.ID: "test #1", retry.ID: "manual_retry #2", again.ID: "manual_retry #3"}
	if !maps.Equal(lines, want) {
		t.Fatalf("attempt lines (delivery: trigger #attempt) %v; want %v\n%s", lines, want, b.logs.String())
	}
}

// Endpoints that earned their bound and then hang all at once must leave
// their shop's other endpoints a worker: 8 such at 32 each held all 256 of
// a shop's workers, and a healthy endpoint of that shop got nothing until
// their attempts timed out (audit). Here 2 at 8 each would hold all 16.
func TestEndpointsThatHangLeaveTheirShopAWorker(t *testing.T) {
	t.Parallel()
	b := setup(t, dispatch.Config{Workers: 16, MaxInFlightPerWebhook: 8, AttemptTimeout: 5 * time.Second, PollInterval: time.Hour})
	release := make(chan struct{})
	var hang atomic.Bool
	var hung atomic.Int32
	stuck := newReceiver(t, func(w http.ResponseWriter, _ *recorded) {
		if hang.Load() {
			hung.Add(1)
			<-release
		}
	})
	t.Cleanup(func() { close(release) }) // before the receiver waits for its handlers
	healthy := newReceiver(t, nil)
	for range 2 {
		storetest.MustCreateWebhook(t, b.db, testShop, stuck.srv.URL, time.Now(), "order.created")
	}
	storetest.MustCreateWebhook(t, b.db, testShop, healthy.srv.URL, time.Now(), "customer.created")
	b.publish(t, 20) // 40 successes: both windows grow to their bound of 8
	b.waitRecorded(t, 40)
	for len(stuck.arrived) > 0 {
		<-stuck.arrived
	}
	hang.Store(true)
	b.publish(t, 200) // far more than the dispatcher keeps claimed (4 × Workers)
	for deadline := time.Now().Add(5 * time.Second); hung.Load() < 14; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d attempts hung, want 14 or more", hung.Load())
		}
	}
	start := time.Now()
	if _, err := b.db.Publish(b.ctx, testShop, []webhooks.PublishInput{{Event: "customer.created", Data: json.RawMessage(`{}`)}}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-healthy.arrived:
		t.Logf("the healthy endpoint's delivery arrived in %v, %d attempts hung", time.Since(start), hung.Load())
	case <-time.After(2 * time.Second):
		t.Fatalf("the healthy endpoint got nothing within 2 s while %d attempts to its shop's other endpoints hung", hung.Load())
	}
}
