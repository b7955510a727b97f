package store_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pancake-pos/pancake-webhooks/store"
	"github.com/pancake-pos/pancake-webhooks/store/storetest"
)

// migratedPostgres returns the URL of a fresh PostgreSQL schema with the
// store's tables in it, and no store open on it.
func migratedPostgres(t *testing.T) string {
	t.Helper()
	dsn := storetest.PostgresDSN(t)
	db, err := store.Open(context.Background(), dsn, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	return dsn
}

// A backlog that grew after the last ANALYZE (statistics that say almost
// nothing is queued) must not turn a claim, or the dispatcher's look at
// the next due time, into a sort of the whole queue: each stays an
// ordered scan of deliveries_due that stops at its LIMIT.
func TestPostgresQueueReadsIgnoreStaleStatistics(t *testing.T) {
	ctx := context.Background()
	// No store until the end: a store's statistics keeper would analyze
	// the table this test keeps stale.
	dsn := migratedPostgres(t)
	raw := storetest.RawPostgres(t, dsn)
	const insert = `INSERT INTO deliveries (id, shop_id, webhook_id, event_id, event, status, trigger, attempt, created_at, scheduled_at)
		SELECT 'dlv_' || $1 || lpad(g::text, 24, '0'), 'shop', 'wh_' || (g % 10), 'evt_' || g, 'order.created', $2, 'event', 1,
			1700000000000 + g, CASE WHEN $2 = 'pending' THEN 1700000000000 + g END
		FROM generate_series(1, $3::int) g`
	if _, err := raw.ExecContext(ctx, insert, "a", "success", 1000); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.ExecContext(ctx, `ANALYZE deliveries`); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.ExecContext(ctx, insert, "b", "pending", 30000); err != nil {
		t.Fatal(err)
	}
	explain := func(settings, query string, args ...any) string {
		tx, err := raw.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		if settings != "" {
			if _, err := tx.ExecContext(ctx, settings); err != nil {
				t.Fatal(err)
			}
		}
		rows, err := tx.QueryContext(ctx, `EXPLAIN (COSTS OFF) `+query, args...)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var lines []string
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			lines = append(lines, line)
		}
		return strings.Join(lines, "\n")
	}
	now := time.Now().UnixMilli()
	window := func(settings string) string {
		plan := explain(settings, store.ClaimHeadSQLPostgres(), now+60000, now, 64, 256)
		start, end := strings.Index(plan, "CTE win"), strings.Index(plan, "CTE upd")
		if start < 0 || end < start {
			t.Fatalf("no CTE win before CTE upd in the plan:\n%s", plan)
		}
		return plan[start:end]
	}
	// Without the settings the planner sorts the whole queue: the case
	// this test is about is reproduced (if it were not, it would prove
	// nothing).
	if w := window(""); !strings.Contains(w, "Sort") {
		t.Fatalf("stale statistics did not mislead the planner; the test does not reproduce its case:\n%s", w)
	}
	if w := window(store.ClaimPlanPostgres); strings.Contains(w, "Sort") || !strings.Contains(w, "Index Scan using deliveries_due") {
		t.Fatalf("the claim's window is not an ordered scan of deliveries_due:\n%s", w)
	}

	// NextDue's query runs in a function that disables sorts for it (the
	// same mechanism): the plan of its text with that setting, and the
	// setting on the function.
	const nextDue = `SELECT scheduled_at FROM deliveries WHERE status = 'pending' AND leased_until IS NULL ORDER BY scheduled_at LIMIT 1`
	if p := explain("", nextDue); !strings.Contains(p, "Sort") {
		t.Fatalf("stale statistics did not mislead the planner for NextDue:\n%s", p)
	}
	if p := explain(store.ClaimPlanPostgres, nextDue); strings.Contains(p, "Sort") || !strings.Contains(p, "Index Scan using deliveries_due") {
		t.Fatalf("NextDue's query with sorts disabled is not an ordered scan of deliveries_due:\n%s", p)
	}
	var body string
	var config []byte
	if err := raw.QueryRowContext(ctx, `SELECT prosrc, array_to_string(proconfig, ',') FROM pg_proc
		WHERE proname = 'deliveries_next_due' AND pronamespace = current_schema()::regnamespace`).Scan(&body, &config); err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(body) != nextDue || !strings.Contains(string(config), "enable_sort=off") {
		t.Fatalf("deliveries_next_due runs %q with %q; want %q with enable_sort=off", body, config, nextDue)
	}
	db, err := store.Open(ctx, dsn, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	due, err := db.NextDue(ctx)
	if want := time.UnixMilli(1700000000001); err != nil || !due.Equal(want) {
		t.Fatalf("NextDue = %v, %v; want %v", due, err, want)
	}
}

// The store analyzes the deliveries table once it has outgrown its
// statistics, instead of waiting for autovacuum's next look.
func TestPostgresStatisticsFollowTheQueue(t *testing.T) {
	ctx := context.Background()
	dsn := storetest.PostgresDSN(t)
	db, err := store.Open(ctx, dsn, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	raw := storetest.RawPostgres(t, dsn)
	estimate := func() float64 {
		var n float64
		if err := raw.QueryRowContext(ctx, `SELECT reltuples FROM pg_class WHERE oid = 'deliveries'::regclass`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if _, err := db.RefreshStatisticsForTest(ctx); err != nil { // a new table: never analyzed
		t.Fatal(err)
	}
	if n := estimate(); n != 0 {
		t.Fatalf("after a look at the new, empty table, the planner estimates %v rows; want 0 (analyzed)", n)
	}
	if did, err := db.RefreshStatisticsForTest(ctx); err != nil || did {
		t.Fatalf("second look = %v, %v; want no analyze: nothing changed", did, err)
	}
	if _, err := raw.ExecContext(ctx, `INSERT INTO deliveries (id, shop_id, webhook_id, event_id, event, status, trigger, attempt, created_at, scheduled_at)
		SELECT 'dlv_' || lpad(g::text, 26, '0'), 'shop', 'wh_1', 'evt_' || g, 'order.created', 'pending', 'event', 1, g, g
		FROM generate_series(1, 30000) g`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.RefreshStatisticsForTest(ctx); err != nil {
		t.Fatal(err)
	}
	if n := estimate(); n < 25000 {
		t.Fatalf("after 30,000 rows were queued and the store looked, the planner estimates %v rows", n)
	}
	if did, err := db.RefreshStatisticsForTest(ctx); err != nil || did {
		t.Fatalf("look after the analyze = %v, %v; want no analyze", did, err)
	}
}

// A database user that may not analyze the deliveries table (neither it
// nor the database is its own) leaves the statistics to autovacuum: the
// keeper does not run an ANALYZE that PostgreSQL would skip with a warning
// at every look.
func TestPostgresStatisticsLeftToAutovacuumForANonOwner(t *testing.T) {
	ctx := context.Background()
	dsn := migratedPostgres(t) // owned by the test's user
	raw := storetest.RawPostgres(t, dsn)
	var schema string
	if err := raw.QueryRowContext(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		t.Fatal(err)
	}
	role := schema + "_app"
	for _, q := range []string{`CREATE ROLE ` + role + ` LOGIN`, `GRANT USAGE, CREATE ON SCHEMA ` + schema + ` TO ` + role,
		`GRANT ALL ON ALL TABLES IN SCHEMA ` + schema + ` TO ` + role} {
		if _, err := raw.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, q := range []string{`DROP OWNED BY ` + role, `DROP ROLE ` + role} {
			if _, err := raw.ExecContext(context.Background(), q); err != nil {
				t.Errorf("%s: %v", q, err)
			}
		}
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	db, err := store.Open(ctx, u.String(), store.Options{})
	if err != nil {
		t.Fatalf("open as %s: %v", role, err)
	}
	defer db.Close()
	if did, err := db.RefreshStatisticsForTest(ctx); did || err == nil {
		t.Fatalf("a look as a user that may not analyze = %v, %v; want no analyze, and an error saying why", did, err)
	}
	// The owner's look, on the same never-analyzed table, does analyze:
	// the refusal above is the user's, not the table's.
	owner, err := store.Open(ctx, dsn, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer owner.Close()
	if did, err := owner.RefreshStatisticsForTest(ctx); !did || err != nil {
		t.Fatalf("the owner's look = %v, %v; want an analyze", did, err)
	}
}
