package store_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	webhooks "github.com/pancake-pos/pancake-webhooks"
	"github.com/pancake-pos/pancake-webhooks/store"
	"github.com/pancake-pos/pancake-webhooks/store/storetest"
)

// Writes that wait together share one transaction. One that fails must
// fail alone: the others commit, and nothing of the failed one stays.
func TestOneFailingWriteLeavesItsBatchCommitted(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		// One writer, so that the writes held behind it share a batch.
		db, err := store.Open(ctx, dsn, store.Options{Writers: 1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		if err := db.WriteForTest(ctx, func(tx *store.Tx) error {
			_, err := tx.ExecContext(ctx, `CREATE TABLE batch_probe (k INTEGER PRIMARY KEY)`)
			return err
		}); err != nil {
			t.Fatal(err)
		}

		// Five writes in one batch; the third fails.
		bad := errors.New("write 3 refuses")
		errs := make([]error, 6)
		inOneBatch(t, db, 5, func(i int) {
			k := i + 1
			errs[k] = db.WriteForTest(ctx, func(tx *store.Tx) error {
				if _, err := tx.ExecContext(ctx, `INSERT INTO batch_probe (k) VALUES ($1)`, k); err != nil {
					return err
				}
				if k == 3 {
					return bad
				}
				return nil
			})
		})

		for k := 1; k <= 5; k++ {
			if want := map[bool]error{true: bad}[k == 3]; !errors.Is(errs[k], want) || (want == nil && errs[k] != nil) {
				t.Errorf("write %d: %v; want %v", k, errs[k], want)
			}
		}
		var got []int
		if err := db.WriteForTest(ctx, func(tx *store.Tx) error {
			rows, err := tx.QueryContext(ctx, `SELECT k FROM batch_probe ORDER BY k`)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var k int
				if err := rows.Scan(&k); err != nil {
					return err
				}
				got = append(got, k)
			}
			return rows.Err()
		}); err != nil {
			t.Fatal(err)
		}
		if want := []int{1, 2, 4, 5}; !slices.Equal(got, want) {
			t.Errorf("rows %v; want %v", got, want)
		}
	})
}

// eachDB runs test on a fresh SQLite file and on a fresh PostgreSQL schema.
func eachDB(t *testing.T, test func(t *testing.T, dsn string)) {
	for name, dsn := range map[string]func(t *testing.T) string{
		"SQLite":   func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "t.db") },
		"Postgres": func(t *testing.T) string { return storetest.PostgresDSN(t) },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			test(t, dsn(t))
		})
	}
}

// inOneBatch holds db's writer (it must have one), starts write(i) for
// each i in [0, n) behind it, and lets them go once all n wait, so that
// they share a batch; it returns when all have returned.
func inOneBatch(t *testing.T, db *store.DB, n int, write func(i int)) {
	t.Helper()
	letGo := holdWriter(t, db)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { write(i) })
	}
	waitFor(t, db.WaitingWritesForTest, n)
	letGo()
	wg.Wait()
}

// holdWriter holds db's writer (it must have one) until the returned
// function is called (at the latest as the test ends, before Close).
func holdWriter(t *testing.T, db *store.DB) (letGo func()) {
	t.Helper()
	hold, held := make(chan struct{}), make(chan struct{})
	letGo = sync.OnceFunc(func() { close(hold) })
	t.Cleanup(letGo)
	go func() {
		_ = db.WriteForTest(context.Background(), func(*store.Tx) error { close(held); <-hold; return nil })
	}()
	<-held
	return letGo
}

// waitFor returns once waiting (a count of the writes that wait for a
// writer) reaches n.
func waitFor(t *testing.T, waiting func() int, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); waiting() < n; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d writes waiting; want %d", waiting(), n)
		}
	}
}

// queueInTurn runs each of writes in wg once the ones before it wait for
// the writer (waiting counts them), so that they are queued in turn.
func queueInTurn(t *testing.T, wg *sync.WaitGroup, waiting func() int, writes ...func()) {
	t.Helper()
	n := waiting()
	for _, w := range writes {
		wg.Go(w)
		n++
		waitFor(t, waiting, n)
	}
}

// TestAClaimHoldsOneCopyOfAnEventsEnvelope: the deliveries of one event
// claimed together share its envelope, so a fan-out of large events holds
// each once in memory, not once a webhook.
func TestAClaimHoldsOneCopyOfAnEventsEnvelope(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, dsn string) {
		db := openStore(t, dsn, store.Options{})
		defer db.Close()
		ctx := context.Background()
		now := time.Now()
		storetest.MustCreateShop(t, db, "fan", now)
		for i := range 5 {
			storetest.MustCreateWebhook(t, db, "fan", fmt.Sprintf("https://example.com/%d", i), now, "order.created")
		}
		data := json.RawMessage(`{"note":"` + strings.Repeat("x", 100_000) + `"}`)
		in := []webhooks.PublishInput{{Event: "order.created", Data: data}, {Event: "order.created", Data: data}}
		if _, err := db.Publish(ctx, "fan", in); err != nil {
			t.Fatal(err)
		}
		jobs, err := db.ClaimDeliveries(ctx, webhooks.Claim{Limit: 100, LeaseFor: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if len(jobs) != 10 {
			t.Fatalf("claimed %d, want 10", len(jobs))
		}
		copies := map[string]map[*byte]bool{} // event: the envelopes' first bytes
		for _, j := range jobs {
			if !bytes.Contains(j.Payload, data) {
				t.Fatalf("job %s: payload lacks the event's data", j.DeliveryID)
			}
			if copies[j.EventID] == nil {
				copies[j.EventID] = map[*byte]bool{}
			}
			copies[j.EventID][unsafe.SliceData(j.Payload)] = true
		}
		for ev, c := range copies {
			if len(c) != 1 {
				t.Errorf("event %s: %d copies of its envelope among its 5 deliveries; want 1", ev, len(c))
			}
		}
		if len(copies) != 2 {
			t.Errorf("%d events claimed, want 2", len(copies))
		}
	})
}
