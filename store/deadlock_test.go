package store_test

import (
	"context"
	"crypto/rand"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	webhooks "github.com/pancake-pos/pancake-webhooks"

	"github.com/pancake-pos/pancake-webhooks/store"
	"github.com/pancake-pos/pancake-webhooks/store/storetest"
)

// twoHooksClaimed opens a store on dsn (logging to logs), with one shop,
// two webhooks, and events published to both and claimed: it returns the
// jobs of the lower webhook id and of the higher, one an event each.
func twoHooksClaimed(t *testing.T, dsn string, logs *storetest.LogBuffer, events int, opts store.Options) (db *store.DB, low, high []*webhooks.Job) {
	t.Helper()
	opts.Logger = slog.New(slog.NewTextHandler(logs, nil))
	db = openStore(t, dsn, opts)
	t.Cleanup(func() { db.Close() })
	ctx := context.Background()
	const shop = "s"
	storetest.MustCreateShop(t, db, shop, time.Now())
	a := storetest.MustCreateWebhook(t, db, shop, "https://example.com/a", time.Now(), "order.created")
	b := storetest.MustCreateWebhook(t, db, shop, "https://example.com/b", time.Now(), "order.created")
	lowID := min(a.ID, b.ID)
	in := make([]webhooks.PublishInput, events)
	for i := range in {
		in[i].Event = "order.created"
	}
	if _, err := db.Publish(ctx, shop, in); err != nil {
		t.Fatal(err)
	}
	jobs, err := db.ClaimDeliveries(ctx, webhooks.Claim{Limit: 2 * events, LeaseFor: time.Hour})
	if err != nil || len(jobs) != 2*events {
		t.Fatalf("claimed %d (%v); want %d", len(jobs), err, 2*events)
	}
	for _, j := range jobs {
		if j.WebhookID == lowID {
			low = append(low, j)
		} else {
			high = append(high, j)
		}
	}
	return db, low, high
}

func ok(j *webhooks.Job) webhooks.AttemptResult {
	return webhooks.AttemptResult{DeliveryID: j.DeliveryID, WebhookID: j.WebhookID, Success: true, AttemptedAt: time.Now(),
		Duration: time.Millisecond, Response: webhooks.Response{StatusCode: 200}}
}

func wantSucceeded(t *testing.T, db *store.DB, n int) {
	t.Helper()
	_, total, err := db.FindDeliveries(context.Background(), webhooks.DeliveryFilter{ShopID: "s", Status: webhooks.StatusSuccess})
	if err != nil || total != n {
		t.Fatalf("%d deliveries succeeded (%v); want %d", total, err, n)
	}
}

// TestBatchesOfResultsInOppositeOrdersDoNotDeadlock: two replicas each
// commit a batch of two results, one a webhook, in opposite orders, and
// both are between the two when they meet (a write between them waits
// for the other's). Each result locked its webhook's row as it came, so
// the batches waited for each other until PostgreSQL aborted one
// ("deadlock detected" in a soak of two replicas, after the server's
// deadlock_timeout of holding both writers). The rows of a batch's
// webhooks are now locked first, in one order: one batch waits for the
// other before it holds anything.
func TestBatchesOfResultsInOppositeOrdersDoNotDeadlock(t *testing.T) {
	t.Parallel()
	dsn := storetest.PostgresDSN(t)
	var logs storetest.LogBuffer
	a, low, high := twoHooksClaimed(t, dsn, &logs, 2, store.Options{Writers: 1})
	b := openStore(t, dsn, store.Options{Writers: 1, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	t.Cleanup(func() { b.Close() })
	ctx := context.Background()

	meet := meetingPoint()
	errs := make([]error, 6)
	var wg sync.WaitGroup
	var letGo []func()
	for r, db := range []*store.DB{a, b} {
		letGo = append(letGo, holdWriter(t, db))
		// Replica a: low then high; b: high then low.
		first, second := ok(low[r]), ok(high[r])
		if r == 1 {
			first, second = second, first
		}
		queueInTurn(t, &wg, db.WaitingUrgentWritesForTest,
			func() { errs[3*r] = db.RecordAttempts(ctx, []webhooks.AttemptResult{first}) },
			func() { errs[3*r+1] = db.UrgentWriteForTest(ctx, func(*store.Tx) error { meet(r); return nil }) },
			func() { errs[3*r+2] = db.RecordAttempts(ctx, []webhooks.AttemptResult{second}) })
	}
	for _, f := range letGo {
		f()
	}
	wg.Wait()
	if err := cmpErrs(errs); err != nil {
		t.Fatal(err)
	}
	wantSucceeded(t, a, 4)
	if strings.Contains(logs.String(), "deadlock") {
		t.Fatalf("the batches deadlocked; logs:\n%s", logs.String())
	}
}

// TestAWriteAbortedByADeadlockRunsAgain: a write PostgreSQL aborts to
// break a deadlock, here with a transaction outside the store, is run
// again, and its caller is not told of it: the results are recorded.
func TestAWriteAbortedByADeadlockRunsAgain(t *testing.T) {
	t.Parallel()
	dsn := storetest.PostgresDSN(t)
	var logs storetest.LogBuffer
	db, low, high := twoHooksClaimed(t, dsn, &logs, 1, store.Options{})
	ctx := context.Background()
	raw := storetest.RawPostgres(t, dsn)
	conn, err := raw.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	var pid int
	// The store's side of the deadlock is the one PostgreSQL aborts: it
	// waits first, and this side checks for deadlocks only after a minute.
	if _, err := tx.ExecContext(ctx, `SET LOCAL deadlock_timeout = '60s'`); err != nil {
		t.Fatal(err)
	}
	if err := tx.QueryRowContext(ctx, `SELECT pg_backend_pid() FROM webhooks WHERE id = $1 FOR UPDATE`, high[0].WebhookID).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- db.RecordAttempts(ctx, []webhooks.AttemptResult{ok(low[0]), ok(high[0])}) }()
	// The results lock the lower webhook, then wait for the higher.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		var n int
		if err := raw.QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))`, pid).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the results never waited for the webhook locked here")
		}
	}
	if _, err := tx.ExecContext(ctx, `SELECT 1 FROM webhooks WHERE id = $1 FOR UPDATE`, low[0].WebhookID); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("record attempts: %v; want them recorded at the second try. Logs:\n%s", err, logs.String())
	}
	wantSucceeded(t, db, 2)
	if !strings.Contains(logs.String(), "deadlock detected") {
		t.Fatalf("no deadlock logged; logs:\n%s", logs.String())
	}
}

// TestACommittedWriteIsAnsweredBeforeAnAbortedOneRunsAgain: a publish
// and a write that a deadlock aborts share a batch. The publish committed
// with it, so it is answered and its deliveries handed over at once, not
// after the other write has run again: a change to the webhook that
// commits meanwhile, on another writer or replica, would otherwise come
// before the hand-over, and the delivery go out as the webhook was
// (code review: sent to the old URL after the change had returned).
func TestACommittedWriteIsAnsweredBeforeAnAbortedOneRunsAgain(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, dsn string) {
		db, h, _ := openWithHandoff(t, dsn, "s")
		roomFor(t, db, h, "s", "https://example.com/hook")
		ctx := context.Background()

		var runs atomic.Int32
		rerun, release := make(chan struct{}), make(chan struct{})
		free := sync.OnceFunc(func() { close(release) })
		t.Cleanup(free) // before Close, if the test fails first
		aborted := func(*store.Tx) error {
			switch runs.Add(1) {
			case 1, 2: // without savepoints, then in its savepoint
				return &pgconn.PgError{Code: "40P01", Message: "deadlock detected"}
			case 3: // run again on its own
				close(rerun)
				<-release
			}
			return nil
		}
		letGo := holdWriter(t, db)
		published, other := make(chan error, 1), make(chan error, 1)
		var wg sync.WaitGroup
		queueInTurn(t, &wg, db.WaitingWritesForTest,
			func() {
				_, err := db.Publish(ctx, "s", []webhooks.PublishInput{{Event: "order.created"}})
				published <- err
			},
			func() { other <- db.WriteForTest(ctx, aborted) })
		letGo()

		select {
		case <-rerun:
		case <-time.After(10 * time.Second):
			t.Fatal("the aborted write did not run again")
		}
		select {
		case err := <-published:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the publish was not answered while the aborted write ran again")
		}
		if _, taken, _ := h.state(); len(taken) != 1 {
			t.Fatalf("%d deliveries handed over; want the publish's 1, before the other write ended", len(taken))
		}
		free()
		if err := <-other; err != nil {
			t.Fatalf("the aborted write, run again: %v", err)
		}
		wg.Wait()
	})
}

// TestBatchesThatPublishAndStopInOneShopDoNotDeadlock: two replicas each
// commit a publish to a shop and a stop of one of its webhooks in one
// batch, and both are between the two when they meet. Each held the
// shop's lock shared (the publish) and waited to take it exclusively
// (the stop) until PostgreSQL aborted one (code review). A batch now
// takes a stop's exclusive lock first.
func TestBatchesThatPublishAndStopInOneShopDoNotDeadlock(t *testing.T) {
	t.Parallel()
	dsn := storetest.PostgresDSN(t)
	var logs storetest.LogBuffer
	opts := store.Options{Writers: 1, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	a, b := openStore(t, dsn, opts), openStore(t, dsn, opts)
	t.Cleanup(func() { a.Close(); b.Close() })
	ctx := context.Background()
	const shop = "s"
	storetest.MustCreateShop(t, a, shop, time.Now())
	hooks := []*webhooks.Webhook{
		storetest.MustCreateWebhook(t, a, shop, "https://example.com/1", time.Now(), "order.created"),
		storetest.MustCreateWebhook(t, a, shop, "https://example.com/2", time.Now(), "order.created"),
	}
	meet := meetingPoint()
	errs := make([]error, 4)
	off := false
	var wg sync.WaitGroup
	var letGo []func()
	for r, db := range []*store.DB{a, b} {
		letGo = append(letGo, holdWriter(t, db))
		queueInTurn(t, &wg, db.WaitingWritesForTest,
			func() { _, errs[2*r] = db.Publish(ctx, shop, []webhooks.PublishInput{{Event: "order.created"}}) },
			func() { _ = db.WriteForTest(ctx, func(*store.Tx) error { meet(r); return nil }) },
			func() {
				_, errs[2*r+1] = db.UpdateWebhook(ctx, shop, hooks[r].ID, webhooks.WebhookUpdate{IsActive: &off})
			})
	}
	for _, f := range letGo {
		f()
	}
	wg.Wait()
	if err := cmpErrs(errs); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), "deadlock") {
		t.Fatalf("the batches deadlocked; logs:\n%s", logs.String())
	}
}

// TestTheFiveDayRuleBesideAStopDoesNotDeadlock: a batch publishes to a
// shop (its lock shared) and then disables a webhook of it by the 5-day
// rule, while another replica stops that webhook (its row, then the
// shop's lock exclusive). The rule locked the row after the shop's lock,
// and the two waited for each other (code review). It now names the
// webhooks it locks, which the batch locks first.
func TestTheFiveDayRuleBesideAStopDoesNotDeadlock(t *testing.T) {
	t.Parallel()
	dsn := storetest.PostgresDSN(t)
	var logs storetest.LogBuffer
	opts := store.Options{Writers: 1, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	a := openStore(t, dsn, opts)
	// b's connections are named, to see them wait.
	name := "stop-" + strings.ToLower(rand.Text()[:10])
	b := openStore(t, dsn+"&application_name="+name, opts)
	t.Cleanup(func() { a.Close(); b.Close() })
	ctx := context.Background()
	const shop = "s"
	storetest.MustCreateShop(t, a, shop, time.Now())
	w := storetest.MustCreateWebhook(t, a, shop, "https://example.com/a", time.Now(), "order.created")
	now := time.Now()
	if err := a.WriteForTest(ctx, func(tx *store.Tx) error { // failing for 6 days, as an earlier build recorded it
		_, err := tx.ExecContext(ctx, `UPDATE webhooks SET failing_since = $1, last_failure_at = $2, consecutive_failures = 9 WHERE id = $3`,
			now.Add(-6*24*time.Hour).UnixMilli(), now.UnixMilli(), w.ID)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	raw := storetest.RawPostgres(t, dsn)

	letGo := holdWriter(t, a)
	inBarrier, goOn := make(chan struct{}), make(chan struct{})
	goOnce := sync.OnceFunc(func() { close(goOn) })
	t.Cleanup(goOnce)
	var (
		wg                    sync.WaitGroup
		pubErr, ruleErr, stop error
	)
	queueInTurn(t, &wg, a.WaitingWritesForTest,
		func() { _, pubErr = a.Publish(ctx, shop, []webhooks.PublishInput{{Event: "order.created"}}) },
		func() { _ = a.WriteForTest(ctx, func(*store.Tx) error { close(inBarrier); <-goOn; return nil }) },
		func() {
			_, ruleErr = a.DisableFailingWebhooks(ctx, time.Now().Add(-webhooks.AutoDisableAfter), webhooks.DisabledReasonFailing)
		})
	letGo()
	<-inBarrier
	off := false
	wg.Go(func() { _, stop = b.UpdateWebhook(ctx, shop, w.ID, webhooks.WebhookUpdate{IsActive: &off}) })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		var n int
		if err := raw.QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'`,
			name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the stop never waited for the batch")
		}
	}
	goOnce()
	wg.Wait()
	if pubErr != nil || ruleErr != nil || stop != nil {
		t.Fatalf("publish: %v; 5-day rule: %v; stop: %v", pubErr, ruleErr, stop)
	}
	if strings.Contains(logs.String(), "deadlock") {
		t.Fatalf("the 5-day rule and the stop deadlocked; logs:\n%s", logs.String())
	}
}

// meetingPoint returns meet: meet(r), for r 0 or 1, returns once meet(1-r)
// has been called too, or after 2 s: two batches, each with a write that
// meets the other's between two of theirs, are both there, unless one
// waits for the other (then it goes on alone).
func meetingPoint() (meet func(r int)) {
	reached := []chan struct{}{make(chan struct{}), make(chan struct{})}
	reach := []func(){sync.OnceFunc(func() { close(reached[0]) }), sync.OnceFunc(func() { close(reached[1]) })}
	return func(r int) {
		reach[r]()
		select {
		case <-reached[1-r]:
		case <-time.After(2 * time.Second):
		}
	}
}
