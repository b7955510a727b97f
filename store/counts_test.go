package store_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	webhooks "github.com/pancake-pos/pancake-webhooks"
	"github.com/pancake-pos/pancake-webhooks/store"
	"github.com/pancake-pos/pancake-webhooks/store/storetest"
)

// TestDeliveryTotals drives every write that makes, changes or removes
// finished or queued deliveries, over several days, and checks after each
// step that the counters (delivery_counts, pending_counts) match the rows
// and that every list total FindDeliveries reports, for a grid of filters
// and ranges (pending lists included), is the number of rows COUNT(*)
// finds.
func TestDeliveryTotals(t *testing.T) {
	t.Parallel()
	t.Run("SQLite", func(t *testing.T) {
		t.Parallel()
		file := filepath.Join(t.TempDir(), "totals.db")
		clock := storetest.NewClock(time.Date(2026, 11, 20, 22, 30, 0, 0, time.UTC))
		db, err := store.Open(context.Background(), "sqlite:"+file, store.Options{Now: clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		raw, err := sql.Open("sqlite", "file:"+file+"?_pragma=busy_timeout(10000)")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { raw.Close() })
		testDeliveryTotals(t, db, raw, clock, "c.status = 'success'")
	})
	t.Run("Postgres", func(t *testing.T) {
		t.Parallel()
		dsn := storetest.PostgresDSN(t)
		clock := storetest.NewClock(time.Date(2026, 11, 20, 22, 30, 0, 0, time.UTC))
		db, err := store.Open(context.Background(), dsn, store.Options{Now: clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		raw := storetest.RawPostgres(t, dsn)
		testDeliveryTotals(t, db, raw, clock, "CASE WHEN c.status = 'success' THEN 1 ELSE 0 END")
	})
}

func testDeliveryTotals(t *testing.T, db *store.DB, raw *sql.DB, clock *storetest.Clock, isSuccess string) {
	ctx := context.Background()
	shops := []string{"shop-a", "shop-b"}
	for _, s := range shops {
		storetest.MustCreateShop(t, db, s, clock.Now())
	}
	all := []string{"order.created", "order.updated", "customer.created"}
	w1 := storetest.MustCreateWebhook(t, db, "shop-a", "https://a.example/1", clock.Now(), all...)
	w2 := storetest.MustCreateWebhook(t, db, "shop-a", "https://a.example/2", clock.Now(), "order.created")
	w3 := storetest.MustCreateWebhook(t, db, "shop-a", "https://a.example/3", clock.Now(), all...)
	w4 := storetest.MustCreateWebhook(t, db, "shop-b", "https://b.example/1", clock.Now(), all...)
	hooks := map[string][]string{"shop-a": {w1.ID, w2.ID, w3.ID}, "shop-b": {w4.ID}}

	publish := func(shop, event string, n int) {
		in := make([]webhooks.PublishInput, n)
		for i := range in {
			in[i] = webhooks.PublishInput{Event: event}
		}
		if _, err := db.Publish(ctx, shop, in); err != nil {
			t.Fatal(err)
		}
	}
	// attempt claims what is due and records it: every third a failure
	// with a retry, every fifth a failure without, the rest successes.
	step := 0
	attempt := func() {
		jobs, err := db.ClaimDeliveries(ctx, webhooks.Claim{Limit: 1000, LeaseFor: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		var res []webhooks.AttemptResult
		for i, j := range jobs {
			step++
			at := clock.Now().Add(time.Duration(i) * 7 * time.Minute)
			r := webhooks.AttemptResult{DeliveryID: j.DeliveryID, WebhookID: j.WebhookID, AttemptedAt: at, Duration: time.Millisecond,
				Success: true, Response: webhooks.Response{StatusCode: 200}}
			switch {
			case step%3 == 0 && j.Attempt < 3:
				next := at.Add(time.Hour)
				r.Success, r.Response.StatusCode, r.FailureReason, r.NextAttemptAt = false, 500, "HTTP 500", &next
			case step%5 == 0:
				r.Success, r.Response.StatusCode, r.FailureReason = false, 500, "HTTP 500"
			}
			res = append(res, r)
		}
		if err := db.RecordAttempts(ctx, res); err != nil {
			t.Fatal(err)
		}
	}
	claimAll := func() []*webhooks.Job {
		t.Helper()
		jobs, err := db.ClaimDeliveries(ctx, webhooks.Claim{Limit: 1000, LeaseFor: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		return jobs
	}
	release := func(jobs []*webhooks.Job) {
		t.Helper()
		if err := db.ReleaseDeliveries(ctx, jobs); err != nil {
			t.Fatal(err)
		}
	}
	check := func(what string) {
		t.Helper()
		checkCounters(t, raw, isSuccess, what)
		checkPendingCounters(t, raw, what)
		checkPendingTotals(t, db, raw, what)
		day := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
		ranges := [][2]time.Time{{}, {day, {}}, {{}, day.AddDate(0, 0, 2)}, {day.AddDate(0, 0, 1), day.AddDate(0, 0, 3)},
			{day.Add(23 * time.Hour), day.AddDate(0, 0, 2).Add(90 * time.Minute)}, {day.Add(22 * time.Hour), day.Add(23 * time.Hour)}}
		for _, shop := range shops {
			for _, wh := range append([]string{""}, hooks[shop]...) {
				for _, st := range []webhooks.DeliveryStatus{"", webhooks.StatusSuccess, webhooks.StatusFailed, webhooks.StatusPending} {
					for _, ev := range []string{"", "order.created", "customer.created"} {
						for _, r := range ranges {
							f := webhooks.DeliveryFilter{ShopID: shop, WebhookID: wh, Status: st, Event: ev, From: r[0], To: r[1], Limit: 1}
							_, n, err := db.FindDeliveries(ctx, f)
							if err != nil {
								t.Fatalf("%s: %+v: %v", what, f, err)
							}
							if want := countRows(t, raw, f); n != want {
								t.Fatalf("%s: total of %+v = %d, COUNT(*) = %d", what, f, n, want)
							}
						}
					}
				}
			}
		}
	}

	publish("shop-a", "order.created", 5)
	publish("shop-a", "customer.created", 3)
	publish("shop-b", "order.updated", 4)
	check("queued")
	// Claims and releases write leases only: no row enters or leaves the
	// queue.
	release(claimAll())
	check("claimed and released")
	attempt()
	check("first attempts")
	clock.Add(90 * time.Minute) // past midnight: attempts land on the next day
	attempt()
	publish("shop-a", "order.updated", 4)
	attempt()
	check("retries over midnight")

	// A test send and a manual retry, recorded synchronously.
	ev, err := webhooks.NewEvent("shop-a", "customer.created", nil, "", true, clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	err = db.RecordSyncAttempt(ctx, webhooks.SyncAttempt{Event: ev, Delivery: &webhooks.Delivery{
		ID: webhooks.NewID(webhooks.PrefixDelivery, clock.Now()), ShopID: "shop-a", WebhookID: w3.ID, EventID: ev.ID,
		Event: ev.Type, Status: webhooks.StatusFailed, Trigger: webhooks.TriggerTest, Attempt: 1, CreatedAt: clock.Now(),
		Response: &webhooks.Response{StatusCode: 503}, FailureReason: "HTTP 503"}})
	if err != nil {
		t.Fatal(err)
	}
	check("sync attempt")

	// Queued rows cancelled by disabling; one of them was claimed, and its
	// attempt is recorded after the cancellation.
	clock.Add(25 * time.Hour)
	publish("shop-a", "order.created", 3)
	late, err := db.ClaimDeliveries(ctx, webhooks.Claim{Limit: 1, LeaseFor: time.Minute})
	if err != nil || len(late) != 1 {
		t.Fatalf("claim = %d, %v", len(late), err)
	}
	off := false
	for _, w := range []string{w1.ID, w2.ID, w3.ID} {
		if _, err := db.UpdateWebhook(ctx, "shop-a", w, webhooks.WebhookUpdate{IsActive: &off}); err != nil {
			t.Fatal(err)
		}
	}
	check("cancelled")
	if err := db.RecordAttempts(ctx, []webhooks.AttemptResult{{DeliveryID: late[0].DeliveryID, WebhookID: late[0].WebhookID,
		Success: true, AttemptedAt: clock.Now(), Response: webhooks.Response{StatusCode: 200}}}); err != nil {
		t.Fatal(err)
	}
	check("attempt after cancellation")

	on := true
	if _, err := db.UpdateWebhook(ctx, "shop-a", w1.ID, webhooks.WebhookUpdate{IsActive: &on}); err != nil {
		t.Fatal(err)
	}
	publish("shop-a", "order.created", 2)
	attempt()
	if _, err := db.ClearHistory(ctx, "shop-a", w1.ID, time.Time{}, webhooks.StatusFailed); err != nil {
		t.Fatal(err)
	}
	check("history cleared")
	if _, err := db.DeleteFinishedBefore(ctx, time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC), 3); err != nil {
		t.Fatal(err)
	}
	check("retention")
	if err := db.DeleteWebhook(ctx, "shop-a", w2.ID); err != nil {
		t.Fatal(err)
	}
	check("webhook deleted")

	// w4 answers 410 to one of its queued deliveries: the attempt disables
	// it and cancels the others, claimed ones included (released after).
	publish("shop-b", "order.updated", 3)
	jobs := claimAll()
	var gone []webhooks.AttemptResult
	var rest []*webhooks.Job
	for _, j := range jobs {
		if j.WebhookID == w4.ID && gone == nil {
			gone = append(gone, webhooks.AttemptResult{DeliveryID: j.DeliveryID, WebhookID: j.WebhookID, AttemptedAt: clock.Now(),
				Response: webhooks.Response{StatusCode: 410}, FailureReason: "HTTP 410", Disable: webhooks.DisabledReasonGone})
			continue
		}
		rest = append(rest, j)
	}
	if gone == nil {
		t.Fatalf("no delivery of %s claimed among %d", w4.ID, len(jobs))
	}
	if err := db.RecordAttempts(ctx, gone); err != nil {
		t.Fatal(err)
	}
	check("disabled by 410")
	release(rest)
	check("released after cancellation")

	// Re-enabled, w4 fails an attempt that queues a retry; the failing
	// webhooks sweep then disables it, cancelling the retry and the rest.
	if _, err := db.UpdateWebhook(ctx, "shop-b", w4.ID, webhooks.WebhookUpdate{IsActive: &on}); err != nil {
		t.Fatal(err)
	}
	publish("shop-b", "order.updated", 3)
	jobs, rest = claimAll(), nil
	var failed []webhooks.AttemptResult
	for _, j := range jobs {
		if j.WebhookID == w4.ID && failed == nil {
			next := clock.Now().Add(time.Hour)
			failed = append(failed, webhooks.AttemptResult{DeliveryID: j.DeliveryID, WebhookID: j.WebhookID, AttemptedAt: clock.Now(),
				Response: webhooks.Response{StatusCode: 500}, FailureReason: "HTTP 500", NextAttemptAt: &next})
			continue
		}
		rest = append(rest, j)
	}
	if failed == nil {
		t.Fatalf("no delivery of %s claimed among %d", w4.ID, len(jobs))
	}
	if err := db.RecordAttempts(ctx, failed); err != nil {
		t.Fatal(err)
	}
	release(rest)
	check("retry queued")
	// As a build before the failing spell's rule left it: failing for 5
	// days, and still active.
	if _, err := raw.Exec(`UPDATE webhooks SET failing_since = $1, last_failure_at = $2 WHERE id = $3`,
		clock.Now().Add(-6*24*time.Hour).UnixMilli(), clock.Now().Add(-time.Hour).UnixMilli(), w4.ID); err != nil {
		t.Fatal(err)
	}
	if n, err := db.DisableFailingWebhooks(ctx, clock.Now().Add(-webhooks.AutoDisableAfter), webhooks.DisabledReasonFailing); err != nil || n == 0 {
		t.Fatalf("DisableFailingWebhooks = %d, %v", n, err)
	}
	check("failing webhook disabled")

	// A webhook deleted with deliveries queued, one of them claimed.
	if _, err := db.UpdateWebhook(ctx, "shop-b", w4.ID, webhooks.WebhookUpdate{IsActive: &on}); err != nil {
		t.Fatal(err)
	}
	publish("shop-b", "order.created", 4)
	jobs = claimAll()
	check("queued before the delete")
	if err := db.DeleteWebhook(ctx, "shop-b", w4.ID); err != nil {
		t.Fatal(err)
	}
	check("webhook with queued deliveries deleted")
	release(jobs)
	check("released after the delete")
}

// checkPendingCounters compares pending_counts with the queued rows, and
// finds no counter at zero.
func checkPendingCounters(t *testing.T, raw *sql.DB, what string) {
	t.Helper()
	read := func(q string) []string {
		rows, err := raw.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var s, w, e string
			var n int64
			if err := rows.Scan(&s, &w, &e, &n); err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprintf("%s %s %s: %d", s, w, e, n))
		}
		slices.Sort(out)
		return out
	}
	have := read(`SELECT shop_id, webhook_id, event, pending FROM pending_counts`)
	want := read(`SELECT shop_id, webhook_id, event, COUNT(*) FROM deliveries WHERE status = 'pending' GROUP BY shop_id, webhook_id, event`)
	if !slices.Equal(have, want) {
		t.Fatalf("%s: pending_counts\n%s\nwant\n%s", what, strings.Join(have, "\n"), strings.Join(want, "\n"))
	}
}

// checkPendingTotals compares the pending list totals of every shop, alone
// and with each webhook (its own and the others'), with COUNT(*).
func checkPendingTotals(t *testing.T, db *store.DB, raw *sql.DB, what string) {
	t.Helper()
	var shops, hooks, events []string
	for _, q := range []struct {
		dst *[]string
		sql string
	}{{&shops, `SELECT id FROM shops`}, {&hooks, `SELECT id FROM webhooks`}, {&events, `SELECT DISTINCT event FROM deliveries`}} {
		rows, err := raw.Query(q.sql)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			*q.dst = append(*q.dst, id)
		}
		rows.Close()
	}
	for _, shop := range shops {
		for _, wh := range append([]string{""}, hooks...) {
			for _, ev := range append([]string{""}, events...) {
				f := webhooks.DeliveryFilter{ShopID: shop, WebhookID: wh, Event: ev, Status: webhooks.StatusPending, Limit: 2}
				page, n, err := db.FindDeliveries(context.Background(), f)
				if err != nil {
					t.Fatalf("%s: %+v: %v", what, f, err)
				}
				if want := countRows(t, raw, f); n != want || len(page) != min(want, 2) {
					t.Fatalf("%s: pending list %+v: total %d, %d on the page; COUNT(*) = %d", what, f, n, len(page), want)
				}
			}
		}
	}
}

// TestPendingTotalsCopy copies a database with queued, claimed and
// finished deliveries (SQLite to SQLite, and to and from PostgreSQL), the
// first time interrupted after one batch of deliveries and run again (the
// batch is written twice), and checks the target's queued counters.
func TestPendingTotalsCopy(t *testing.T) {
	t.Parallel()
	openSQLite := func(t *testing.T, clock *storetest.Clock) (*store.DB, *sql.DB) {
		file := filepath.Join(t.TempDir(), "pending.db")
		db, err := store.Open(context.Background(), "sqlite:"+file, store.Options{Now: clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		raw, err := sql.Open("sqlite", "file:"+file+"?_pragma=busy_timeout(10000)")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { raw.Close() })
		return db, raw
	}
	openPostgres := func(t *testing.T, clock *storetest.Clock) (*store.DB, *sql.DB) {
		dsn := storetest.PostgresDSN(t)
		db, err := store.Open(context.Background(), dsn, store.Options{Now: clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		raw := storetest.RawPostgres(t, dsn)
		return db, raw
	}
	type opener func(*testing.T, *storetest.Clock) (*store.DB, *sql.DB)
	for _, c := range []struct {
		name     string
		from, to opener
	}{{"SQLiteToSQLite", openSQLite, openSQLite}, {"SQLiteToPostgres", openSQLite, openPostgres}, {"PostgresToSQLite", openPostgres, openSQLite}} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			clock := storetest.NewClock(time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC))
			src, srcRaw := c.from(t, clock)
			for _, shop := range []string{"shop-a", "shop-b"} {
				storetest.MustCreateShop(t, src, shop, clock.Now())
				for i := range 2 {
					storetest.MustCreateWebhook(t, src, shop, fmt.Sprintf("https://%s.example/%d", shop, i), clock.Now(), "order.created")
				}
				in := make([]webhooks.PublishInput, 6)
				for i := range in {
					in[i] = webhooks.PublishInput{Event: "order.created"}
				}
				if _, err := src.Publish(ctx, shop, in); err != nil {
					t.Fatal(err)
				}
			}
			jobs, err := src.ClaimDeliveries(ctx, webhooks.Claim{Limit: 10, LeaseFor: time.Minute})
			if err != nil || len(jobs) == 0 {
				t.Fatalf("claim = %d, %v", len(jobs), err)
			}
			var res []webhooks.AttemptResult
			for i, j := range jobs[:len(jobs)/2] {
				next := clock.Now().Add(time.Hour)
				r := webhooks.AttemptResult{DeliveryID: j.DeliveryID, WebhookID: j.WebhookID, AttemptedAt: clock.Now(),
					Success: i%2 == 0, Response: webhooks.Response{StatusCode: 200}}
				if !r.Success {
					r.Response.StatusCode, r.FailureReason, r.NextAttemptAt = 500, "HTTP 500", &next
				}
				res = append(res, r)
			}
			if err := src.RecordAttempts(ctx, res); err != nil {
				t.Fatal(err)
			}
			checkPendingCounters(t, srcRaw, "source")
			checkPendingTotals(t, src, srcRaw, "source")

			dst, dstRaw := c.to(t, clock)
			cctx, cancel := context.WithCancel(ctx)
			_, err = store.Copy(cctx, src, dst, store.CopyOptions{BatchSize: 5, Progress: func(table string, done, _ int64) {
				if table == "deliveries" && done > 0 {
					cancel()
				}
			}})
			cancel()
			if err == nil {
				t.Fatal("the interrupted copy did not fail")
			}
			checkPendingCounters(t, dstRaw, "interrupted copy")
			if _, err := store.Copy(ctx, src, dst, store.CopyOptions{BatchSize: 5}); err != nil {
				t.Fatal(err)
			}
			checkPendingCounters(t, dstRaw, "copy")
			checkPendingTotals(t, dst, dstRaw, "copy")
		})
	}
}

// TestPendingCountTriggers checks that a write of leases only (what a
// claim and a release write) fires no counting trigger, and that a status
// change does (so the check can see one). Then rows moved by hand (no
// store write does this) back into the queue and between shops and
// webhooks are counted where they land.
func TestPendingCountTriggers(t *testing.T) {
	t.Parallel()
	setup := func(t *testing.T, dsn string) {
		ctx := context.Background()
		db, err := store.Open(ctx, dsn, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		now := time.Now()
		storetest.MustCreateShop(t, db, "shop-a", now)
		storetest.MustCreateWebhook(t, db, "shop-a", "https://a.example/1", now, "order.created")
		if _, err := db.Publish(ctx, "shop-a", []webhooks.PublishInput{{Event: "order.created"}, {Event: "order.created"}}); err != nil {
			t.Fatal(err)
		}
	}
	moves := []string{
		`UPDATE deliveries SET status = 'pending' WHERE status <> 'pending'`,
		`UPDATE deliveries SET webhook_id = 'wh_moved' WHERE id = (SELECT MIN(id) FROM deliveries)`,
		`UPDATE deliveries SET shop_id = 'shop-b' WHERE id = (SELECT MAX(id) FROM deliveries)`,
		`UPDATE deliveries SET shop_id = 'shop-c', webhook_id = 'wh_moved', status = 'failed' WHERE id = (SELECT MAX(id) FROM deliveries)`,
		`UPDATE deliveries SET shop_id = 'shop-a', status = 'pending' WHERE id = (SELECT MAX(id) FROM deliveries)`,
		`DELETE FROM deliveries WHERE webhook_id = 'wh_moved'`,
	}
	t.Run("SQLite", func(t *testing.T) {
		t.Parallel()
		file := filepath.Join(t.TempDir(), "claim.db")
		setup(t, "sqlite:"+file)
		raw, err := sql.Open("sqlite", "file:"+file+"?_pragma=busy_timeout(10000)")
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		conn, err := raw.Conn(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		// total_changes() counts the rows a trigger writes too.
		changes := func(stmt string) int64 {
			t.Helper()
			var before, after int64
			if err := conn.QueryRowContext(context.Background(), `SELECT total_changes()`).Scan(&before); err != nil {
				t.Fatal(err)
			}
			res, err := conn.ExecContext(context.Background(), stmt)
			if err != nil {
				t.Fatal(err)
			}
			n, _ := res.RowsAffected()
			if err := conn.QueryRowContext(context.Background(), `SELECT total_changes()`).Scan(&after); err != nil {
				t.Fatal(err)
			}
			return after - before - n
		}
		if n := changes(`UPDATE deliveries SET leased_until = 1 WHERE status = 'pending'`); n != 0 {
			t.Fatalf("a lease wrote %d counter rows", n)
		}
		if n := changes(`UPDATE deliveries SET leased_until = NULL WHERE status = 'pending'`); n != 0 {
			t.Fatalf("a release wrote %d counter rows", n)
		}
		if n := changes(`UPDATE deliveries SET status = 'success' WHERE id = (SELECT MIN(id) FROM deliveries)`); n == 0 {
			t.Fatal("a finished delivery wrote no counter row: the check sees nothing")
		}
		for _, m := range moves {
			if _, err := raw.Exec(m); err != nil {
				t.Fatal(err)
			}
			checkPendingCounters(t, raw, m)
		}
	})
	t.Run("Postgres", func(t *testing.T) {
		t.Parallel()
		dsn := storetest.PostgresDSN(t)
		setup(t, dsn)
		raw := storetest.RawPostgres(t, dsn)
		tx, err := raw.Begin()
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		// Changes wait in the change tables until the commit.
		staged := func(stmt string) int64 {
			t.Helper()
			if _, err := tx.Exec(stmt); err != nil {
				t.Fatal(err)
			}
			var n int64
			if err := tx.QueryRow(`SELECT (SELECT COUNT(*) FROM pending_count_changes) + (SELECT COUNT(*) FROM delivery_count_changes)
				+ (SELECT COUNT(*) FROM delivery_count_folds)`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}
		if n := staged(`UPDATE deliveries SET leased_until = 1 WHERE status = 'pending'`); n != 0 {
			t.Fatalf("a lease staged %d counter changes", n)
		}
		if n := staged(`UPDATE deliveries SET leased_until = NULL WHERE status = 'pending'`); n != 0 {
			t.Fatalf("a release staged %d counter changes", n)
		}
		if n := staged(`UPDATE deliveries SET status = 'success' WHERE id = (SELECT MIN(id) FROM deliveries)`); n == 0 {
			t.Fatal("a finished delivery staged no counter change: the check sees nothing")
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		checkPendingCounters(t, raw, "committed")
		for _, m := range moves {
			if _, err := raw.Exec(m); err != nil {
				t.Fatal(err)
			}
			checkPendingCounters(t, raw, m)
		}
	})
}

// checkCounters compares delivery_counts with the finished rows, and
// finds no counter at zero.
func checkCounters(t *testing.T, raw *sql.DB, isSuccess, what string) {
	t.Helper()
	read := func(q string) []string {
		rows, err := raw.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var s, w, e string
			var d, ok, bad int64
			if err := rows.Scan(&s, &w, &e, &d, &ok, &bad); err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprintf("%s %s %s %d: %d/%d", s, w, e, d, ok, bad))
		}
		slices.Sort(out)
		return out
	}
	have := read(`SELECT shop_id, webhook_id, event, day, success, failed FROM delivery_counts`)
	want := read(`SELECT c.shop_id, c.webhook_id, c.event, c.created_at - c.created_at % 86400000,
		SUM(` + isSuccess + `), SUM(1 - (` + isSuccess + `)) FROM deliveries c WHERE c.status <> 'pending'
		GROUP BY c.shop_id, c.webhook_id, c.event, c.created_at - c.created_at % 86400000`)
	if !slices.Equal(have, want) {
		t.Fatalf("%s: delivery_counts\n%s\nwant\n%s", what, strings.Join(have, "\n"), strings.Join(want, "\n"))
	}
}

func countRows(t *testing.T, raw *sql.DB, f webhooks.DeliveryFilter) int {
	t.Helper()
	where := []string{"shop_id = $1"}
	args := []any{f.ShopID}
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if f.WebhookID != "" {
		add("webhook_id = $%d", f.WebhookID)
	}
	if f.Status == "" {
		where = append(where, "status <> 'pending'")
	} else {
		add("status = $%d", string(f.Status))
	}
	if f.Event != "" {
		add("event = $%d", f.Event)
	}
	if !f.From.IsZero() {
		add("created_at >= $%d", f.From.UnixMilli())
	}
	if !f.To.IsZero() {
		add("created_at < $%d", f.To.UnixMilli())
	}
	var n int
	if err := raw.QueryRow(`SELECT COUNT(*) FROM deliveries WHERE `+strings.Join(where, " AND "), args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestDeliveryTotalsConcurrent records attempts from two stores on one
// PostgreSQL schema at once (two replicas, each with its writers), results
// of the same webhooks and events in opposite orders, and checks that no
// write fails (a deadlock on the counters would) and that the counters
// match the rows.
func TestDeliveryTotalsConcurrent(t *testing.T) {
	t.Parallel()
	dsn := storetest.PostgresDSN(t)
	ctx := context.Background()
	open := func() *store.DB {
		db, err := store.Open(ctx, dsn, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	a, b := open(), open()
	now := time.Now()
	storetest.MustCreateShop(t, a, "shop-a", now)
	events := []string{"order.created", "order.updated", "customer.created"}
	for i := range 4 {
		storetest.MustCreateWebhook(t, a, "shop-a", fmt.Sprintf("https://a.example/%d", i), now, events...)
	}
	for range 10 {
		in := make([]webhooks.PublishInput, 30)
		for i := range in {
			in[i] = webhooks.PublishInput{Event: events[i%len(events)]}
		}
		if _, err := a.Publish(ctx, "shop-a", in); err != nil {
			t.Fatal(err)
		}
	}
	errs := make(chan error, 16)
	for w, db := range []*store.DB{a, b, a, b} {
		go func() {
			for {
				jobs, err := db.ClaimDeliveries(ctx, webhooks.Claim{Limit: 40, LeaseFor: time.Minute})
				if err != nil || len(jobs) == 0 {
					errs <- err
					return
				}
				if w%2 == 1 {
					slices.Reverse(jobs)
				}
				res := make([]webhooks.AttemptResult, len(jobs))
				for i, j := range jobs {
					res[i] = webhooks.AttemptResult{DeliveryID: j.DeliveryID, WebhookID: j.WebhookID, Success: i%4 != 0,
						AttemptedAt: time.Now(), Response: webhooks.Response{StatusCode: 200}}
				}
				if err := db.RecordAttempts(ctx, res); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	raw := storetest.RawPostgres(t, dsn)
	checkCounters(t, raw, "CASE WHEN c.status = 'success' THEN 1 ELSE 0 END", "concurrent attempts")
	var left int
	if err := raw.QueryRow(`SELECT (SELECT COUNT(*) FROM delivery_count_changes) + (SELECT COUNT(*) FROM delivery_count_folds)`).Scan(&left); err != nil || left != 0 {
		t.Fatalf("%d change rows left after the commits (%v)", left, err)
	}
	_, n, err := a.FindDeliveries(ctx, webhooks.DeliveryFilter{ShopID: "shop-a", Limit: 1})
	if err != nil || n != 1200 {
		t.Fatalf("total = %d, %v; want 1200", n, err)
	}
}
