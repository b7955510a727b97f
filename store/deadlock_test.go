package store_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

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

	reached := []chan struct{}{make(chan struct{}), make(chan struct{})}
	reach := []func(){sync.OnceFunc(func() { close(reached[0]) }), sync.OnceFunc(func() { close(reached[1]) })}
	hold := make(chan struct{})
	release := sync.OnceFunc(func() { close(hold) })
	t.Cleanup(release)
	errs := make([]error, 6)
	var wg sync.WaitGroup
	for r, db := range []*store.DB{a, b} {
		held := make(chan struct{})
		go func() { _ = db.WriteForTest(ctx, func(*store.Tx) error { close(held); <-hold; return nil }) }()
		<-held
		// Replica a: low then high; b: high then low.
		first, second := ok(low[r]), ok(high[r])
		if r == 1 {
			first, second = second, first
		}
		writes := []func() error{
			func() error { return db.RecordAttempts(ctx, []webhooks.AttemptResult{first}) },
			func() error {
				return db.UrgentWriteForTest(ctx, func(*store.Tx) error {
					reach[r]()
					select { // the other batch is here too, or it waits for this one
					case <-reached[1-r]:
					case <-time.After(2 * time.Second):
					}
					return nil
				})
			},
			func() error { return db.RecordAttempts(ctx, []webhooks.AttemptResult{second}) },
		}
		for k, w := range writes {
			wg.Go(func() { errs[3*r+k] = w() })
			for deadline := time.Now().Add(10 * time.Second); db.WaitingUrgentWritesForTest() < k+1; time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("replica %d: %d urgent writes waiting; want %d", r, db.WaitingUrgentWritesForTest(), k+1)
				}
			}
		}
	}
	release()
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
