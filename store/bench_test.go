package store_test

// Benchmarks of the API's reads on a large delivery table (BenchmarkReads)
// and of the write path on a backlog (BenchmarkQueue: publish, claim and
// record).
//
// BenchmarkReads fills a database once with a made-up history (see
// benchShape) and times every call, reporting p50 and p99 in ms and the
// count the first call returned (a list's total):
//
//	PANCAKE_BENCH_ROWS       delivery rows to fill (default 200000)
//	PANCAKE_BENCH_DB         SQLite file to keep the fill in and reuse across
//	                         runs (default: a temporary file, filled each run)
//	PANCAKE_BENCH_PG_SCHEMA  with PANCAKE_TEST_POSTGRES_URL: a schema to keep the
//	                         PostgreSQL fill in and reuse (default: a fresh one,
//	                         dropped at the end)
//
// e.g., 10 million rows (the SQLite fill takes about 12 minutes and 8 GB,
// PostgreSQL's about 3 minutes):
//
//	PANCAKE_BENCH_ROWS=10000000 PANCAKE_BENCH_DB=/tmp/pancake-10m.db \
//	  go test ./store/ -run '^$' -bench 'Reads/SQLite' -benchtime 100x
//	PANCAKE_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test?sslmode=disable \
//	  PANCAKE_BENCH_PG_SCHEMA=bench_10m PANCAKE_BENCH_ROWS=10000000 \
//	  go test ./store/ -run '^$' -bench 'Reads/Postgres' -benchtime 100x
//
// A reused fill is brought to the indexes, triggers, functions and counter
// tables of the current 0001 migration (dropped and built again where they
// differ, delivery_counts and pending_counts recomputed from the rows), so
// schema changes are measured on the same rows. Remove the file (or drop
// the schema) to refill; a different PANCAKE_BENCH_ROWS refills too.

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	webhooks "github.com/pancake-pos/pancake-webhooks"
	"github.com/pancake-pos/pancake-webhooks/store"
	"github.com/pancake-pos/pancake-webhooks/store/storetest"
)

// benchMeta describes a fill; it is kept next to a reused database.
type benchMeta struct {
	Rows     int                 `json:"rows"`
	Now      time.Time           `json:"now"`
	Big      string              `json:"big"`
	Shops    []string            `json:"shops"`
	Webhooks map[string][]string `json:"webhooks"` // shop → webhook ids
	Sample   []string            `json:"sample"`   // delivery ids of the big shop
	Events   int                 `json:"events"`
	Pending  int                 `json:"pending"`
}

func benchRows(b *testing.B) int {
	n := 200_000
	if s := os.Getenv("PANCAKE_BENCH_ROWS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1000 {
			b.Fatalf("PANCAKE_BENCH_ROWS=%q: want a number ≥ 1000", s)
		}
		n = v
	}
	return n
}

func BenchmarkReads(b *testing.B) {
	b.Run("SQLite", func(b *testing.B) {
		db, m := openBenchSQLite(b)
		benchReads(b, db, m)
	})
	b.Run("Postgres", func(b *testing.B) {
		db, m := openBenchPostgres(b)
		benchReads(b, db, m)
	})
}

// benchReads times the reads the API makes for list, pending, stats and
// health, each call on its own, on the big shop.
func benchReads(b *testing.B, db *store.DB, m *benchMeta) {
	ctx := context.Background()
	whs := m.Webhooks[m.Big]
	day := m.Now.UTC().Truncate(24 * time.Hour)
	last7From, last7To := day.AddDate(0, 0, -6), day.AddDate(0, 0, 1)
	midFrom, midTo := day.AddDate(0, 0, -15), day.AddDate(0, 0, -14)
	evs := webhooks.EventTypeNames()
	list := func(f func(i int) webhooks.DeliveryFilter) func(i int) (int, error) {
		return func(i int) (int, error) {
			flt := f(i)
			flt.ShopID, flt.Limit = m.Big, 20
			_, n, err := db.FindDeliveries(ctx, flt)
			return n, err
		}
	}
	cases := []struct {
		name string
		fn   func(i int) (int, error)
	}{
		{"List/All", list(func(int) webhooks.DeliveryFilter { return webhooks.DeliveryFilter{} })},
		{"List/Webhook", list(func(i int) webhooks.DeliveryFilter { return webhooks.DeliveryFilter{WebhookID: whs[i%len(whs)]} })},
		{"List/Failed", list(func(int) webhooks.DeliveryFilter { return webhooks.DeliveryFilter{Status: webhooks.StatusFailed} })},
		{"List/Success", list(func(int) webhooks.DeliveryFilter { return webhooks.DeliveryFilter{Status: webhooks.StatusSuccess} })},
		{"List/Event", list(func(i int) webhooks.DeliveryFilter { return webhooks.DeliveryFilter{Event: evs[i%len(evs)]} })},
		{"List/Last7Days", list(func(int) webhooks.DeliveryFilter { return webhooks.DeliveryFilter{From: last7From, To: last7To} })},
		{"List/OneDay", list(func(int) webhooks.DeliveryFilter { return webhooks.DeliveryFilter{From: midFrom, To: midTo} })},
		{"List/WebhookFailed", list(func(i int) webhooks.DeliveryFilter {
			return webhooks.DeliveryFilter{WebhookID: whs[i%len(whs)], Status: webhooks.StatusFailed}
		})},
		{"List/EventFailed7Days", list(func(i int) webhooks.DeliveryFilter {
			return webhooks.DeliveryFilter{Event: evs[i%len(evs)], Status: webhooks.StatusFailed, From: last7From, To: last7To}
		})},
		{"List/Combined", list(func(i int) webhooks.DeliveryFilter {
			// The first five webhooks of the big shop take every event.
			return webhooks.DeliveryFilter{WebhookID: whs[i%5], Status: webhooks.StatusFailed, Event: evs[i%len(evs)],
				From: last7From, To: last7To}
		})},
		{"List/Page50", list(func(int) webhooks.DeliveryFilter { return webhooks.DeliveryFilter{Offset: 49 * 20} })},
		{"Pending/Shop", list(func(int) webhooks.DeliveryFilter { return webhooks.DeliveryFilter{Status: webhooks.StatusPending} })},
		{"Pending/Webhook", list(func(i int) webhooks.DeliveryFilter {
			return webhooks.DeliveryFilter{Status: webhooks.StatusPending, WebhookID: whs[i%len(whs)]}
		})},
		{"Get", func(i int) (int, error) {
			_, err := db.FindDelivery(ctx, m.Big, m.Sample[i%len(m.Sample)])
			return 1, err
		}},
		{"Stats7Days", func(i int) (int, error) {
			st, err := db.WebhookStats(ctx, m.Big, whs[i%len(whs)], last7From, last7To)
			if err != nil {
				return 0, err
			}
			return int(st.TotalDeliveries), nil
		}},
		{"Health/FindWebhook", func(i int) (int, error) {
			w, err := db.FindWebhook(ctx, m.Big, whs[i%len(whs)])
			if err != nil {
				return 0, err
			}
			return int(w.Health.Attempts24h), nil
		}},
		{"Health/ListWebhooks", func(int) (int, error) {
			ws, err := db.ListWebhooks(ctx, m.Big)
			return len(ws), err
		}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) { timeEach(b, c.fn) })
	}
}

// timeEach times every call and reports p50, p99 and the first call's
// count (the total a list reports, or what the read counted).
func timeEach(b *testing.B, fn func(i int) (int, error)) {
	b.ReportAllocs()
	ds := make([]time.Duration, 0, b.N)
	var first int
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		n, err := fn(i)
		ds = append(ds, time.Since(t0))
		if err != nil {
			b.Fatal(err)
		}
		if i == 0 {
			first = n
		}
	}
	b.StopTimer()
	slices.Sort(ds)
	pct := func(p float64) float64 {
		return float64(ds[min(len(ds)-1, int(p*float64(len(ds))))].Microseconds()) / 1000
	}
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	b.ReportMetric(float64(first), "count")
}

// --- The fill ---------------------------------------------------------------

// benchShape is the made-up history: one big shop with 50 webhooks (5 take
// every event, 45 take two to four), four small shops with 3 webhooks
// taking everything; 13 event types, order events the most common; 30
// days; about 90% success, 9% failed, and about 1% pending (the newest
// rows, queued in the last day).
type benchShape struct {
	now     time.Time
	shops   []string
	share   []float64             // of events per shop
	planned map[string][][]string // shop → each webhook's events
	whs     map[string][]string   // shop → webhook ids, once created
	types   []string
	weight  []float64
}

func newBenchShape(now time.Time) *benchShape {
	r := rand.New(rand.NewPCG(1, 2))
	s := &benchShape{now: now, whs: map[string][]string{}}
	s.types = webhooks.EventTypeNames()
	s.weight = []float64{25, 20, 15, 3, 3, 3, 10, 2, 3, 1, 10, 3, 2}
	s.shops = []string{"big", "small-1", "small-2", "small-3", "small-4"}
	s.share = []float64{0.7, 0.075, 0.075, 0.075, 0.075}
	return s.withRand(r)
}

func (s *benchShape) withRand(r *rand.Rand) *benchShape {
	// Subscriptions are decided here; webhook ids are given when created.
	s.planned = map[string][][]string{}
	for _, shop := range s.shops {
		n := 3
		if shop == "big" {
			n = 50
		}
		for i := range n {
			evs := s.types
			if shop == "big" && i >= 5 {
				k := 2 + r.IntN(3)
				perm := r.Perm(len(s.types))[:k]
				slices.Sort(perm)
				evs = nil
				for _, p := range perm {
					evs = append(evs, s.types[p])
				}
			}
			s.planned[shop] = append(s.planned[shop], evs)
		}
	}
	return s
}

// fanout is the mean number of deliveries per event.
func (s *benchShape) fanout() float64 {
	var tw float64
	for _, w := range s.weight {
		tw += w
	}
	var f float64
	for i, shop := range s.shops {
		for j, typ := range s.types {
			n := 0
			for _, evs := range s.planned[shop] {
				if slices.Contains(evs, typ) {
					n++
				}
			}
			f += s.share[i] * s.weight[j] / tw * float64(n)
		}
	}
	return f
}

// rowSink takes generated rows.
type rowSink interface {
	event(vals []any) error
	delivery(vals []any) error
	stat(vals []any) error
	flush() error
}

const (
	benchEventCols    = 7
	benchDeliveryCols = 19
	benchStatCols     = 7
)

var (
	benchEventInsert    = `INSERT INTO events (id, shop_id, type, idempotency_key, envelope, deliveries, created_at) VALUES `
	benchDeliveryInsert = `INSERT INTO deliveries (id, shop_id, webhook_id, event_id, event, status, trigger, attempt, created_at,
		scheduled_at, leased_until, response_status, response_headers, response_body, response_truncated, request_headers,
		failure_reason, duration_ms, next_retry_at) VALUES `
	benchStatInsert       = `INSERT INTO webhook_stats (webhook_id, hour, event, total, success, failed, duration_ms_sum) VALUES `
	benchDeliveryColNames = []string{"id", "shop_id", "webhook_id", "event_id", "event", "status", "trigger", "attempt", "created_at",
		"scheduled_at", "leased_until", "response_status", "response_headers", "response_body", "response_truncated", "request_headers",
		"failure_reason", "duration_ms", "next_retry_at"}
	benchEventColNames = []string{"id", "shop_id", "type", "idempotency_key", "envelope", "deliveries", "created_at"}
	benchStatColNames  = []string{"webhook_id", "hour", "event", "total", "success", "failed", "duration_ms_sum"}
)

// generate emits about rows deliveries (and their events and stats) in
// time order, ending at s.now, and returns the meta data.
func (s *benchShape) generate(rows int, sink rowSink) (*benchMeta, error) {
	r := rand.New(rand.NewPCG(3, 4))
	m := &benchMeta{Rows: rows, Now: s.now, Big: "big", Shops: s.shops, Webhooks: s.whs}
	nEvents := int(float64(rows)/s.fanout()) + 1
	start := s.now.Add(-30 * 24 * time.Hour)
	step := float64(30*24*time.Hour) / float64(nEvents)
	var cum []float64
	var tw float64
	for _, w := range s.weight {
		tw += w
		cum = append(cum, tw)
	}
	pad := strings.Repeat("x", 700)
	type statKey struct {
		wh, event string
		hour      int64
	}
	type statSum struct{ total, ok, failed, dur int64 }
	stats := map[statKey]*statSum{}
	msOf := func(t time.Time) int64 { return t.UnixMilli() }
	pendingFrom := s.now.Add(-24 * time.Hour)
	made := 0
	for i := 0; made < rows; i++ {
		at := start.Add(time.Duration(float64(i) * step)).UTC()
		if at.After(s.now) {
			at = s.now
		}
		x := r.Float64()
		si := 0
		for acc := s.share[0]; x > acc && si < len(s.shops)-1; {
			si++
			acc += s.share[si]
		}
		shop := s.shops[si]
		y := r.Float64() * tw
		ti, _ := slices.BinarySearch(cum, y)
		typ := s.types[min(ti, len(s.types)-1)]
		var targets []string
		for j, evs := range s.planned[shop] {
			if slices.Contains(evs, typ) {
				targets = append(targets, s.whs[shop][j])
			}
		}
		evID := webhooks.NewID(webhooks.PrefixEvent, at)
		env := fmt.Sprintf(`{"id":%q,"event":%q,"shop_id":%q,"created_at":%q,"data":{"order_id":"ord_%d","total":"%d.50","note":%q}}`,
			evID, typ, shop, webhooks.FormatTime(at), i, i%1000, pad)
		if err := sink.event([]any{evID, shop, typ, nil, []byte(env), int64(len(targets)), msOf(at)}); err != nil {
			return nil, err
		}
		m.Events++
		for _, wh := range targets {
			id := webhooks.NewID(webhooks.PrefixDelivery, at)
			if shop == m.Big && len(m.Sample) < 1000 && r.IntN(rows/1000+1) == 0 {
				m.Sample = append(m.Sample, id)
			}
			made++
			if at.After(pendingFrom) && r.IntN(100) < 30 {
				due := at.Add(time.Duration(r.IntN(7200)) * time.Second)
				err := sink.delivery([]any{id, shop, wh, evID, typ, "pending", "event", int64(1), msOf(at),
					msOf(due), nil, int64(0), "", "", false, "", "", int64(0), nil})
				if err != nil {
					return nil, err
				}
				m.Pending++
				continue
			}
			dur := int64(20 + r.IntN(400))
			done := at.Add(time.Duration(dur+int64(r.IntN(2000))) * time.Millisecond)
			ok := r.IntN(100) < 91
			status, code, body, reason := "success", int64(200), `{"ok":true}`, ""
			var next any
			if !ok {
				status, code, body, reason = "failed", 503, "upstream unavailable", "HTTP 503"
				if r.IntN(2) == 0 {
					next = msOf(done.Add(5 * time.Minute))
				}
			}
			reqHdrs := fmt.Sprintf(`{"content-type":"application/json","webhook-id":%q,"webhook-timestamp":"%d","webhook-signature":"v1,%s"}`,
				id, at.Unix(), "q1X9oJ0pJ3n3FQ3rA0Yk8vWq0u6Qm6cX1G3m4d5e6f7=")
			err := sink.delivery([]any{id, shop, wh, evID, typ, status, "event", int64(1), msOf(done),
				nil, nil, code, `{"content-type":"application/json"}`, body, false, reqHdrs, reason, dur, next})
			if err != nil {
				return nil, err
			}
			k := statKey{wh, typ, msOf(done.Truncate(time.Hour))}
			st := stats[k]
			if st == nil {
				st = &statSum{}
				stats[k] = st
			}
			st.total++
			st.dur += dur
			if ok {
				st.ok++
			} else {
				st.failed++
			}
		}
	}
	for k, st := range stats {
		if err := sink.stat([]any{k.wh, k.hour, k.event, st.total, st.ok, st.failed, st.dur}); err != nil {
			return nil, err
		}
	}
	return m, sink.flush()
}

// createBenchShops makes the shops and webhooks through the store.
func (s *benchShape) createShops(b *testing.B, db *store.DB) {
	for _, shop := range s.shops {
		storetest.MustCreateShop(b, db, shop, s.now.Add(-31*24*time.Hour))
		for j, evs := range s.planned[shop] {
			w := storetest.MustCreateWebhook(b, db, shop, fmt.Sprintf("https://%s.example/hook/%d", shop, j),
				s.now.Add(-31*24*time.Hour), evs...)
			s.whs[shop] = append(s.whs[shop], w.ID)
		}
	}
}

// --- SQLite -----------------------------------------------------------------

func openBenchSQLite(b *testing.B) (*store.DB, *benchMeta) {
	rows := benchRows(b)
	path := os.Getenv("PANCAKE_BENCH_DB")
	if path == "" {
		path = filepath.Join(b.TempDir(), "bench.db")
	}
	m, err := readBenchMeta(path + ".json")
	if err != nil || m.Rows != rows {
		for _, p := range []string{path, path + "-wal", path + "-shm", path + ".json"} {
			os.Remove(p)
		}
		t0 := time.Now()
		m = fillSQLite(b, path, rows)
		b.Logf("filled %s with %d deliveries (%d events, %d pending) in %s", path, rows, m.Events, m.Pending, time.Since(t0).Round(time.Second))
		if err := writeBenchMeta(path+".json", m); err != nil {
			b.Fatal(err)
		}
	}
	raw, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		b.Fatal(err)
	}
	if err := syncBenchObjects(b, raw, "sqlite"); err != nil {
		b.Fatal(err)
	}
	raw.Close()
	db, err := store.Open(context.Background(), "sqlite:"+path, store.Options{Now: func() time.Time { return m.Now }})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db, m
}

func fillSQLite(b *testing.B, path string, rows int) *benchMeta {
	ctx := context.Background()
	shape := newBenchShape(time.Now().UTC().Truncate(time.Millisecond))
	db, err := store.Open(ctx, "sqlite:"+path, store.Options{Now: func() time.Time { return shape.now }})
	if err != nil {
		b.Fatal(err)
	}
	shape.createShops(b, db)
	db.Close()

	raw, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		b.Fatal(err)
	}
	defer raw.Close()
	raw.SetMaxOpenConns(1)
	for _, p := range []string{"PRAGMA journal_mode=DELETE", "PRAGMA journal_mode=OFF", "PRAGMA synchronous=OFF", "PRAGMA cache_size=-262144"} {
		if _, err := raw.Exec(p); err != nil {
			b.Fatal(p, err)
		}
	}
	if err := recordBenchObjects(raw, "sqlite", true); err != nil {
		b.Fatal(err)
	}
	sink := &sqliteSink{b: b, db: raw}
	sink.begin()
	m, err := shape.generate(rows, sink)
	if err != nil {
		b.Fatal(err)
	}
	if err := sink.tx.Commit(); err != nil {
		b.Fatal(err)
	}
	if err := fillBenchCounts(raw); err != nil {
		b.Fatal(err)
	}
	if err := fillBenchPendingCounts(raw); err != nil {
		b.Fatal(err)
	}
	if err := syncBenchObjects(b, raw, "sqlite"); err != nil {
		b.Fatal(err)
	}
	if _, err := raw.Exec("PRAGMA journal_mode=WAL"); err != nil {
		b.Fatal(err)
	}
	return m
}

// sqliteSink inserts many rows per statement, many statements per
// transaction.
type sqliteSink struct {
	b                   *testing.B
	db                  *sql.DB
	tx                  *sql.Tx
	ev, dl, st          []any
	evStmt, dlStmt, stS *sql.Stmt
	inTx                int
}

const sqliteRowsPerInsert = 40

func (s *sqliteSink) begin() {
	var err error
	if s.tx, err = s.db.Begin(); err != nil {
		s.b.Fatal(err)
	}
	s.evStmt, s.dlStmt, s.stS = nil, nil, nil
}

func (s *sqliteSink) add(buf *[]any, stmt **sql.Stmt, prefix string, cols int, vals []any) error {
	*buf = append(*buf, vals...)
	if len(*buf) < cols*sqliteRowsPerInsert {
		return nil
	}
	if *stmt == nil {
		var err error
		if *stmt, err = s.tx.Prepare(prefix + valuesList(cols, sqliteRowsPerInsert)); err != nil {
			return err
		}
	}
	if _, err := (*stmt).Exec(*buf...); err != nil {
		return err
	}
	*buf = (*buf)[:0]
	s.inTx += sqliteRowsPerInsert
	if s.inTx >= 200_000 {
		s.inTx = 0
		if err := s.tx.Commit(); err != nil {
			return err
		}
		s.begin()
	}
	return nil
}

func (s *sqliteSink) event(v []any) error {
	return s.add(&s.ev, &s.evStmt, benchEventInsert, benchEventCols, v)
}
func (s *sqliteSink) delivery(v []any) error {
	return s.add(&s.dl, &s.dlStmt, benchDeliveryInsert, benchDeliveryCols, v)
}
func (s *sqliteSink) stat(v []any) error {
	return s.add(&s.st, &s.stS, benchStatInsert, benchStatCols, v)
}

func (s *sqliteSink) flush() error {
	for _, p := range []struct {
		buf    []any
		prefix string
		cols   int
	}{{s.ev, benchEventInsert, benchEventCols}, {s.dl, benchDeliveryInsert, benchDeliveryCols}, {s.st, benchStatInsert, benchStatCols}} {
		if n := len(p.buf) / p.cols; n > 0 {
			if _, err := s.tx.Exec(p.prefix+valuesList(p.cols, n), p.buf...); err != nil {
				return err
			}
		}
	}
	return nil
}

func valuesList(cols, rows int) string {
	var sb strings.Builder
	n := 0
	for r := range rows {
		if r > 0 {
			sb.WriteString(", ")
		}
		sb.WriteByte('(')
		for c := range cols {
			if c > 0 {
				sb.WriteString(", ")
			}
			n++
			fmt.Fprintf(&sb, "$%d", n)
		}
		sb.WriteByte(')')
	}
	return sb.String()
}

// --- PostgreSQL -------------------------------------------------------------

func openBenchPostgres(b *testing.B) (*store.DB, *benchMeta) {
	ctx := context.Background()
	rows := benchRows(b)
	var dsn string
	schema := os.Getenv("PANCAKE_BENCH_PG_SCHEMA")
	if schema == "" {
		dsn = storetest.PostgresDSN(b)
	} else {
		base := os.Getenv("PANCAKE_TEST_POSTGRES_URL")
		if base == "" {
			b.Skip("PostgreSQL benchmarks skipped: set PANCAKE_TEST_POSTGRES_URL")
		}
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			b.Fatal(err)
		}
		_, err = conn.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{schema}.Sanitize())
		conn.Close(ctx)
		if err != nil {
			b.Fatal(err)
		}
		sep := "?"
		if strings.Contains(base, "?") {
			sep = "&"
		}
		dsn = base + sep + "search_path=" + schema
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	var metaJSON string
	var m *benchMeta
	if err := conn.QueryRow(ctx, `SELECT meta FROM bench_meta`).Scan(&metaJSON); err == nil {
		m = &benchMeta{}
		if json.Unmarshal([]byte(metaJSON), m) != nil || m.Rows != rows {
			m = nil
		}
	}
	if m == nil {
		var tables []string
		r, err := conn.Query(ctx, `SELECT tablename FROM pg_tables WHERE schemaname = current_schema()`)
		if err != nil {
			b.Fatal(err)
		}
		for r.Next() {
			var t string
			_ = r.Scan(&t)
			tables = append(tables, t)
		}
		r.Close()
		for _, t := range tables {
			if _, err := conn.Exec(ctx, `DROP TABLE `+pgx.Identifier{t}.Sanitize()+` CASCADE`); err != nil {
				b.Fatal(err)
			}
		}
		t0 := time.Now()
		m = fillPostgres(b, dsn, conn, rows)
		b.Logf("filled PostgreSQL with %d deliveries (%d events, %d pending) in %s", rows, m.Events, m.Pending, time.Since(t0).Round(time.Second))
	}
	sdb, err := sql.Open("pgx", dsn)
	if err != nil {
		b.Fatal(err)
	}
	err = syncBenchObjects(b, sdb, "postgres")
	sdb.Close()
	if err != nil {
		b.Fatal(err)
	}
	db, err := store.Open(ctx, dsn, store.Options{Now: func() time.Time { return m.Now }})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db, m
}

func fillPostgres(b *testing.B, dsn string, conn *pgx.Conn, rows int) *benchMeta {
	ctx := context.Background()
	shape := newBenchShape(time.Now().UTC().Truncate(time.Millisecond))
	db, err := store.Open(ctx, dsn, store.Options{Now: func() time.Time { return shape.now }})
	if err != nil {
		b.Fatal(err)
	}
	shape.createShops(b, db)
	db.Close()
	sdb, err := sql.Open("pgx", dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer sdb.Close()
	if err := recordBenchObjects(sdb, "postgres", true); err != nil {
		b.Fatal(err)
	}
	sink := &pgSink{ctx: ctx, conn: conn}
	m, err := shape.generate(rows, sink)
	if err != nil {
		b.Fatal(err)
	}
	if err := fillBenchCounts(sdb); err != nil {
		b.Fatal(err)
	}
	if err := fillBenchPendingCounts(sdb); err != nil {
		b.Fatal(err)
	}
	if err := syncBenchObjects(b, sdb, "postgres"); err != nil {
		b.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `VACUUM ANALYZE`); err != nil {
		b.Fatal(err)
	}
	js, _ := json.Marshal(m)
	if _, err := conn.Exec(ctx, `CREATE TABLE bench_meta (meta TEXT NOT NULL)`); err != nil {
		b.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO bench_meta (meta) VALUES ($1)`, string(js)); err != nil {
		b.Fatal(err)
	}
	return m
}

// pgSink copies rows in chunks.
type pgSink struct {
	ctx        context.Context
	conn       *pgx.Conn
	ev, dl, st [][]any
}

func (s *pgSink) put(buf *[][]any, table string, cols []string, v []any, force bool) error {
	if v != nil {
		*buf = append(*buf, slices.Clone(v))
	}
	if len(*buf) == 0 || (!force && len(*buf) < 50_000) {
		return nil
	}
	_, err := s.conn.CopyFrom(s.ctx, pgx.Identifier{table}, cols, pgx.CopyFromRows(*buf))
	*buf = (*buf)[:0]
	return err
}

func (s *pgSink) event(v []any) error {
	return s.put(&s.ev, "events", benchEventColNames, v, false)
}
func (s *pgSink) delivery(v []any) error {
	return s.put(&s.dl, "deliveries", benchDeliveryColNames, v, false)
}
func (s *pgSink) stat(v []any) error {
	return s.put(&s.st, "webhook_stats", benchStatColNames, v, false)
}
func (s *pgSink) flush() error {
	return cmp.Or(s.put(&s.ev, "events", benchEventColNames, nil, true),
		s.put(&s.dl, "deliveries", benchDeliveryColNames, nil, true),
		s.put(&s.st, "webhook_stats", benchStatColNames, nil, true))
}

// --- Schema objects of a reused fill -----------------------------------------

// benchObject is one CREATE statement of the 0001 migration.
type benchObject struct {
	kind, name, table, stmt string // kind: INDEX, TABLE, TRIGGER or FUNCTION; table: what an index or trigger is on
}

var (
	createObjectRE = regexp.MustCompile(`(?is)^CREATE\s+(?:UNIQUE\s+|UNLOGGED\s+|CONSTRAINT\s+)?(INDEX|TABLE|TRIGGER|FUNCTION)\s+(\w+)`)
	onTableRE      = regexp.MustCompile(`(?is)\sON\s+(\w+)`)
)

// migrationObjects reads the CREATE statements of the dialect's 0001
// migration, in order.
func migrationObjects(dialect string) ([]benchObject, error) {
	text, err := os.ReadFile(filepath.Join("migrations", dialect, "0001_init.sql"))
	if err != nil {
		return nil, err
	}
	var out []benchObject
	var cur []string
	for _, line := range strings.Split(string(text), "\n") {
		trimmed := strings.TrimSpace(line)
		if len(cur) == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "--")) {
			continue
		}
		cur = append(cur, line)
		stmt := strings.Join(cur, "\n")
		done := strings.HasSuffix(trimmed, ";") && strings.Count(stmt, "$$")%2 == 0
		if done && dialect == "sqlite" && regexp.MustCompile(`(?i)^CREATE\s+TRIGGER`).MatchString(stmt) {
			done = strings.EqualFold(trimmed, "END;")
		}
		if !done {
			continue
		}
		cur = nil
		stmt = strings.TrimSuffix(strings.TrimSpace(stmt), ";")
		m := createObjectRE.FindStringSubmatch(stmt)
		if m == nil {
			continue
		}
		o := benchObject{kind: strings.ToUpper(m[1]), name: m[2], stmt: stmt}
		if o.kind == "INDEX" || o.kind == "TRIGGER" {
			o.table = onTableRE.FindStringSubmatch(stmt)[1]
		}
		out = append(out, o)
	}
	return out, nil
}

// benchCounterTables are rebuilt from the rows when their definition
// changes; other tables must not change under a reused fill.
var benchCounterTables = []string{"delivery_counts", "delivery_count_changes", "delivery_count_folds", "pending_counts", "pending_count_changes"}

func benchObjectExists(db *sql.DB, dialect string, o benchObject) (bool, error) {
	var n int
	var err error
	switch {
	case dialect == "sqlite":
		err = db.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE type = $1 AND name = $2`, strings.ToLower(o.kind), o.name).Scan(&n)
	case o.kind == "TRIGGER":
		err = db.QueryRow(`SELECT COUNT(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
			WHERE t.tgname = $1 AND c.relnamespace = current_schema()::regnamespace`, o.name).Scan(&n)
	case o.kind == "FUNCTION":
		err = db.QueryRow(`SELECT COUNT(*) FROM pg_proc WHERE proname = $1 AND pronamespace = current_schema()::regnamespace`, o.name).Scan(&n)
	default:
		err = db.QueryRow(`SELECT COUNT(*) FROM pg_class WHERE relname = $1 AND relnamespace = current_schema()::regnamespace`, o.name).Scan(&n)
	}
	return n > 0, err
}

func dropBenchObject(db *sql.DB, dialect string, o benchObject) error {
	stmt := "DROP " + o.kind + " IF EXISTS " + o.name
	if dialect == "postgres" {
		if o.kind == "TRIGGER" {
			stmt += " ON " + o.table
		}
		stmt += " CASCADE"
	}
	_, err := db.Exec(stmt)
	return err
}

// recordBenchObjects notes the migration's objects as built; with
// forFill it first drops the indexes and triggers on deliveries (a fill
// builds the indexes after the rows, and the counters in one pass).
func recordBenchObjects(db *sql.DB, dialect string, forFill bool) error {
	objs, err := migrationObjects(dialect)
	if err != nil {
		return err
	}
	if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS bench_indexes (name TEXT PRIMARY KEY, stmt TEXT NOT NULL)`); err != nil {
		return err
	}
	for _, o := range objs {
		if forFill && o.table == "deliveries" {
			if err := dropBenchObject(db, dialect, o); err != nil {
				return err
			}
			continue
		}
		if _, err := db.Exec(`INSERT INTO bench_indexes (name, stmt) VALUES ($1, $2)`, o.name, o.stmt); err != nil {
			return err
		}
	}
	return nil
}

// syncBenchObjects brings a fill to the current migration: it drops what
// the migration no longer has, and (re)builds the indexes, triggers,
// functions and counter tables that are missing or defined differently,
// filling a rebuilt delivery_counts or pending_counts from the rows.
func syncBenchObjects(b *testing.B, db *sql.DB, dialect string) error {
	objs, err := migrationObjects(dialect)
	if err != nil {
		return err
	}
	have := map[string]string{}
	rows, err := db.Query(`SELECT name, stmt FROM bench_indexes`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var n, s string
		if err := rows.Scan(&n, &s); err != nil {
			rows.Close()
			return err
		}
		have[n] = s
	}
	rows.Close()
	want := map[string]bool{}
	for _, o := range objs {
		want[o.name] = true
	}
	for name, stmt := range have {
		if want[name] {
			continue
		}
		m := createObjectRE.FindStringSubmatch(stmt)
		o := benchObject{kind: strings.ToUpper(m[1]), name: name}
		if t := onTableRE.FindStringSubmatch(stmt); t != nil {
			o.table = t[1]
		}
		b.Logf("dropping %s %s", o.kind, name)
		if err := dropBenchObject(db, dialect, o); err != nil {
			return err
		}
		if _, err := db.Exec(`DELETE FROM bench_indexes WHERE name = $1`, name); err != nil {
			return err
		}
	}
	for _, o := range objs {
		exists, err := benchObjectExists(db, dialect, o)
		if err != nil {
			return err
		}
		counter := o.kind == "TABLE" && slices.Contains(benchCounterTables, o.name)
		if o.kind == "TABLE" && !counter {
			if !exists {
				return fmt.Errorf("table %s is new in the migration: refill (remove the database)", o.name)
			}
			continue
		}
		if exists && (have[o.name] == o.stmt || o.kind == "TABLE" && have[o.name] == "") {
			if o.kind == "TABLE" && have[o.name] == "" {
				// Built by the migration with the fill; note it.
				if _, err := db.Exec(`INSERT INTO bench_indexes (name, stmt) VALUES ($1, $2)`, o.name, o.stmt); err != nil {
					return err
				}
			}
			continue
		}
		t0 := time.Now()
		if exists {
			if err := dropBenchObject(db, dialect, o); err != nil {
				return err
			}
		}
		if _, err := db.Exec(o.stmt); err != nil {
			return fmt.Errorf("%s: %w", o.stmt, err)
		}
		if o.name == "delivery_counts" {
			if err := fillBenchCounts(db); err != nil {
				return err
			}
		}
		if o.name == "pending_counts" {
			if err := fillBenchPendingCounts(db); err != nil {
				return err
			}
		}
		if _, err := db.Exec(`DELETE FROM bench_indexes WHERE name = $1`, o.name); err != nil {
			return err
		}
		if _, err := db.Exec(`INSERT INTO bench_indexes (name, stmt) VALUES ($1, $2)`, o.name, o.stmt); err != nil {
			return err
		}
		b.Logf("built %s %s in %s", o.kind, o.name, time.Since(t0).Round(time.Millisecond))
	}
	return nil
}

// fillBenchCounts computes delivery_counts from the rows.
func fillBenchCounts(db *sql.DB) error {
	if _, err := db.Exec(`DELETE FROM delivery_counts`); err != nil {
		return err
	}
	_, err := db.Exec(`INSERT INTO delivery_counts (shop_id, webhook_id, event, day, success, failed)
		SELECT shop_id, webhook_id, event, created_at - created_at % 86400000,
			SUM(CASE WHEN status = 'success' THEN 1 ELSE 0 END), SUM(CASE WHEN status = 'success' THEN 0 ELSE 1 END)
		FROM deliveries WHERE status <> 'pending' GROUP BY shop_id, webhook_id, event, created_at - created_at % 86400000`)
	return err
}

// fillBenchPendingCounts computes pending_counts from the rows.
func fillBenchPendingCounts(db *sql.DB) error {
	if _, err := db.Exec(`DELETE FROM pending_counts`); err != nil {
		return err
	}
	_, err := db.Exec(`INSERT INTO pending_counts (shop_id, webhook_id, event, pending)
		SELECT shop_id, webhook_id, event, COUNT(*) FROM deliveries WHERE status = 'pending' GROUP BY shop_id, webhook_id, event`)
	return err
}

func readBenchMeta(path string) (*benchMeta, error) {
	js, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m := &benchMeta{}
	return m, json.Unmarshal(js, m)
}

func writeBenchMeta(path string, m *benchMeta) error {
	js, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return os.WriteFile(path, js, 0o644)
}

// --- Write path: publish, claim and record on a backlog ----------------------

// BenchmarkQueue measures the write path on a database with a backlog of
// queued deliveries (PANCAKE_BENCH_BACKLOG, default 50000) behind a shop
// with 10 webhooks: publishing batches of 100 events (1,000 deliveries),
// and claiming 64 due deliveries then recording them (90% success), each
// commit durable. Per-delivery costs are reported as µs/dlv.
func BenchmarkQueue(b *testing.B) {
	b.Run("SQLite", func(b *testing.B) {
		db, err := store.Open(context.Background(), "sqlite:"+filepath.Join(b.TempDir(), "queue.db"), store.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { db.Close() })
		benchQueue(b, db)
	})
	b.Run("Postgres", func(b *testing.B) {
		db, err := store.Open(context.Background(), storetest.PostgresDSN(b), store.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { db.Close() })
		benchQueue(b, db)
	})
}

func benchQueue(b *testing.B, db *store.DB) {
	ctx := context.Background()
	backlog := 50_000
	if s := os.Getenv("PANCAKE_BENCH_BACKLOG"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1000 {
			b.Fatalf("PANCAKE_BENCH_BACKLOG=%q: want a number ≥ 1000", s)
		}
		backlog = v
	}
	now := time.Now()
	storetest.MustCreateShop(b, db, "q", now)
	for i := range 10 {
		storetest.MustCreateWebhook(b, db, "q", fmt.Sprintf("https://q.example/%d", i), now, "order.created", "order.updated")
	}
	data := json.RawMessage(`{"order_id":"ord_1","note":"` + strings.Repeat("x", 960) + `"}`)
	batch := make([]webhooks.PublishInput, 100)
	for i := range batch {
		batch[i] = webhooks.PublishInput{Event: "order.created", Data: data}
	}
	publish := func(deliveries int) {
		for n := 0; n < deliveries; n += 1000 {
			if _, err := db.Publish(ctx, "q", batch); err != nil {
				b.Fatal(err)
			}
		}
	}
	publish(backlog)
	queued := backlog

	b.Run("Publish100x10", func(b *testing.B) {
		b.ReportAllocs()
		cpu0 := cpuTime()
		for b.Loop() {
			if _, err := db.Publish(ctx, "q", batch); err != nil {
				b.Fatal(err)
			}
		}
		queued += b.N * 1000
		b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*1000), "µs/dlv")
		b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N*1000), "cpu-µs/dlv")
	})

	b.Run("ClaimRecord64", func(b *testing.B) {
		b.ReportAllocs()
		var claim, record time.Duration
		n := 0
		cpu0 := cpuTime()
		for i := 0; i < b.N; i++ {
			if queued < 64 {
				b.StopTimer()
				publish(backlog)
				queued += backlog
				b.StartTimer()
			}
			t0 := time.Now()
			jobs, err := db.ClaimDeliveries(ctx, webhooks.Claim{Limit: 64, LeaseFor: time.Minute})
			if err != nil {
				b.Fatal(err)
			}
			t1 := time.Now()
			res := make([]webhooks.AttemptResult, len(jobs))
			for k, j := range jobs {
				res[k] = webhooks.AttemptResult{DeliveryID: j.DeliveryID, WebhookID: j.WebhookID, Success: k%10 != 0,
					AttemptedAt: t1, Duration: 12 * time.Millisecond, Response: webhooks.Response{StatusCode: 200, Headers: map[string]string{"content-type": "text/plain"}, Body: "ok"},
					RequestHeaders: map[string]string{"webhook-id": j.DeliveryID}}
				if k%10 == 0 {
					res[k].Response.StatusCode, res[k].FailureReason = 500, "HTTP 500"
				}
			}
			if err := db.RecordAttempts(ctx, res); err != nil {
				b.Fatal(err)
			}
			claim += t1.Sub(t0)
			record += time.Since(t1)
			n += len(jobs)
			queued -= len(jobs)
		}
		if n > 0 {
			b.ReportMetric(float64(claim.Microseconds())/float64(n), "claim-µs/dlv")
			b.ReportMetric(float64(record.Microseconds())/float64(n), "record-µs/dlv")
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(n), "cpu-µs/dlv")
		}
	})
}

// cpuTime is the CPU time (user and system) this process has used: with
// SQLite, the database's work too. It is steadier than wall time on a
// shared machine.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// --- Reads with a large queue -------------------------------------------------

// BenchmarkPendingReads times the pending list (a page and its exact
// total) with a large queue: PANCAKE_BENCH_PENDING queued deliveries
// (default 100000), nine in ten for the 10 webhooks of one shop, the rest
// for a small shop's 2, due over the next day. Concurrent8 then reads with
// 8 goroutines at once (8 connections of the pool), each round:
// pending pages far into the queue, the queue gauges (which walk the whole
// queue index) and the history list asked for status=pending and an event
// (which counts the queued rows one by one), so that every connection's
// page cache fills, and reports the process's RSS as the rounds start
// (rss-before-MiB: after the framework's first run of one round, unless
// -benchtime 1x) and after them (rss-MiB; rss-file-MiB of it mapped
// file pages), its peak (hwm-MiB, which includes the fill when it ran in
// the process) and what the Go runtime holds (go-MiB): SQLite's memory
// is most of the rest. Reuse a fill to measure memory.
//
// The fill inserts rows with the migration's triggers in place, so it
// suits any version of the schema. PANCAKE_BENCH_PENDING_DB (a SQLite
// file) and PANCAKE_BENCH_PENDING_PG_SCHEMA keep a fill for reuse: one
// per version of the schema compared. For 1M queued:
//
//	PANCAKE_BENCH_PENDING=1000000 PANCAKE_BENCH_PENDING_DB=/tmp/pending-1m.db \
//	  go test ./store/ -run '^$' -bench 'PendingReads/SQLite/Pending' -benchtime 100x
//	PANCAKE_BENCH_PENDING=1000000 PANCAKE_BENCH_PENDING_DB=/tmp/pending-1m.db \
//	  go test ./store/ -run '^$' -bench 'PendingReads/SQLite/Concurrent8' -benchtime 2x
func BenchmarkPendingReads(b *testing.B) {
	b.Run("SQLite", func(b *testing.B) {
		path := os.Getenv("PANCAKE_BENCH_PENDING_DB")
		if path == "" {
			path = filepath.Join(b.TempDir(), "pending.db")
		}
		benchPendingReads(b, "sqlite:"+path, "sqlite", func() (*sql.DB, error) {
			return sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
		})
	})
	b.Run("Postgres", func(b *testing.B) {
		dsn := benchPendingPostgresDSN(b)
		benchPendingReads(b, dsn, "postgres", func() (*sql.DB, error) { return sql.Open("pgx", dsn) })
	})
}

func benchPendingPostgresDSN(b *testing.B) string {
	schema := os.Getenv("PANCAKE_BENCH_PENDING_PG_SCHEMA")
	if schema == "" {
		return storetest.PostgresDSN(b)
	}
	base := os.Getenv("PANCAKE_TEST_POSTGRES_URL")
	if base == "" {
		b.Skip("PostgreSQL benchmarks skipped: set PANCAKE_TEST_POSTGRES_URL")
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		b.Fatal(err)
	}
	_, err = conn.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{schema}.Sanitize())
	conn.Close(ctx)
	if err != nil {
		b.Fatal(err)
	}
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + "search_path=" + schema
}

func benchPendingReads(b *testing.B, dsn, dialect string, openRaw func() (*sql.DB, error)) {
	ctx := context.Background()
	want := 100_000
	if s := os.Getenv("PANCAKE_BENCH_PENDING"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1000 {
			b.Fatalf("PANCAKE_BENCH_PENDING=%q: want a number ≥ 1000", s)
		}
		want = v
	}
	db, err := store.Open(ctx, dsn, store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	raw, err := openRaw()
	if err != nil {
		b.Fatal(err)
	}
	defer raw.Close()
	var have int
	if err := raw.QueryRow(`SELECT COUNT(*) FROM deliveries WHERE status = 'pending'`).Scan(&have); err != nil {
		b.Fatal(err)
	}
	if have != want {
		var shops int
		if err := raw.QueryRow(`SELECT COUNT(*) FROM shops`).Scan(&shops); err != nil || shops != 0 {
			b.Fatalf("the database holds %d queued deliveries, not %d: remove it (or drop the schema) to refill (%v)", have, want, err)
		}
		t0 := time.Now()
		fillPending(b, db, raw, dialect, want)
		b.Logf("queued %d deliveries in %s", want, time.Since(t0).Round(time.Second))
	}
	db.Close()
	// Reopened: the fill's writes are not in the pool's caches.
	if db, err = store.Open(ctx, dsn, store.Options{}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	var whs []string
	rows, err := raw.Query(`SELECT id FROM webhooks WHERE shop_id = 'big' ORDER BY id`)
	if err != nil {
		b.Fatal(err)
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			b.Fatal(err)
		}
		whs = append(whs, id)
	}
	rows.Close()
	list := func(f func(i int) webhooks.DeliveryFilter) func(i int) (int, error) {
		return func(i int) (int, error) {
			flt := f(i)
			flt.ShopID, flt.Status, flt.Limit = "big", webhooks.StatusPending, 20
			_, n, err := db.FindDeliveries(ctx, flt)
			return n, err
		}
	}
	cases := []struct {
		name string
		fn   func(i int) (int, error)
	}{
		{"Pending/Shop", list(func(int) webhooks.DeliveryFilter { return webhooks.DeliveryFilter{} })},
		{"Pending/Webhook", list(func(i int) webhooks.DeliveryFilter { return webhooks.DeliveryFilter{WebhookID: whs[i%len(whs)]} })},
		{"Pending/ShopPage50", list(func(int) webhooks.DeliveryFilter { return webhooks.DeliveryFilter{Offset: 49 * 20} })},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) { timeEach(b, c.fn) })
	}
	b.Run("Concurrent8", func(b *testing.B) {
		// Each goroutine makes b.N rounds of: a pending page up to 2,000
		// pages deep, the queue gauges, and every 4th round a count of
		// one event's queued rows, row by row.
		evs := webhooks.EventTypeNames()
		before := procMemMiB()["VmRSS"]
		errs := make(chan error, 8)
		ds := make(chan time.Duration, 8*b.N*3)
		b.ResetTimer()
		for g := range 8 {
			go func() {
				r := rand.New(rand.NewPCG(uint64(g), 5))
				for i := range b.N {
					t0 := time.Now()
					_, _, err := db.FindDeliveries(ctx, webhooks.DeliveryFilter{ShopID: "big", Status: webhooks.StatusPending,
						Limit: 20, Offset: 20 * r.IntN(2000)})
					ds <- time.Since(t0)
					if err == nil {
						t0 = time.Now()
						_, err = db.QueueStats(ctx)
						ds <- time.Since(t0)
					}
					if err == nil && (i+g)%4 == 0 {
						t0 = time.Now()
						_, _, err = db.FindDeliveries(ctx, webhooks.DeliveryFilter{ShopID: "big", Status: webhooks.StatusPending,
							Event: evs[r.IntN(3)], Limit: 20})
						ds <- time.Since(t0)
					}
					if err != nil {
						errs <- err
						return
					}
				}
				errs <- nil
			}()
		}
		for range 8 {
			if err := <-errs; err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		close(ds)
		var all []time.Duration
		for d := range ds {
			all = append(all, d)
		}
		slices.Sort(all)
		pct := func(p float64) float64 {
			return float64(all[min(len(all)-1, int(p*float64(len(all))))].Microseconds()) / 1000
		}
		b.ReportMetric(pct(0.50), "p50-ms")
		b.ReportMetric(pct(0.99), "p99-ms")
		mem := procMemMiB()
		b.ReportMetric(before, "rss-before-MiB")
		b.ReportMetric(mem["VmRSS"], "rss-MiB")
		b.ReportMetric(mem["RssFile"], "rss-file-MiB")
		b.ReportMetric(mem["VmHWM"], "hwm-MiB")
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		b.ReportMetric(float64(ms.Sys-ms.HeapReleased)/(1<<20), "go-MiB")
	})
}

// fillPending creates the shops and webhooks through the store, then
// inserts n queued deliveries and their events with SQL.
func fillPending(b *testing.B, db *store.DB, raw *sql.DB, dialect string, n int) {
	now := time.Now().UTC().Truncate(time.Millisecond)
	evs := webhooks.EventTypeNames()
	hooks := map[string][]string{}
	for _, shop := range []string{"big", "small"} {
		storetest.MustCreateShop(b, db, shop, now.Add(-time.Hour))
		k := 10
		if shop == "small" {
			k = 2
		}
		for j := range k {
			w := storetest.MustCreateWebhook(b, db, shop, fmt.Sprintf("https://%s.example/%d", shop, j), now.Add(-time.Hour), evs...)
			hooks[shop] = append(hooks[shop], w.ID)
		}
	}
	r := rand.New(rand.NewPCG(7, 8))
	var evRows, dlRows [][]any
	flush := func() {
		if dialect == "postgres" {
			ctx := context.Background()
			conn, err := raw.Conn(ctx)
			if err != nil {
				b.Fatal(err)
			}
			err = conn.Raw(func(dc any) error {
				pc := dc.(interface{ Conn() *pgx.Conn }).Conn()
				if _, err := pc.CopyFrom(ctx, pgx.Identifier{"events"}, []string{"id", "shop_id", "type", "envelope", "deliveries", "created_at"},
					pgx.CopyFromRows(evRows)); err != nil {
					return err
				}
				_, err := pc.CopyFrom(ctx, pgx.Identifier{"deliveries"}, []string{"id", "shop_id", "webhook_id", "event_id", "event", "status",
					"trigger", "attempt", "retry_of", "created_at", "scheduled_at"}, pgx.CopyFromRows(dlRows))
				return err
			})
			conn.Close()
			if err != nil {
				b.Fatal(err)
			}
		} else {
			tx, err := raw.Begin()
			if err != nil {
				b.Fatal(err)
			}
			for _, t := range []struct {
				prefix string
				cols   int
				rows   [][]any
			}{
				{`INSERT INTO events (id, shop_id, type, envelope, deliveries, created_at) VALUES `, 6, evRows},
				{`INSERT INTO deliveries (id, shop_id, webhook_id, event_id, event, status, trigger, attempt, retry_of, created_at,
					scheduled_at) VALUES `, 11, dlRows},
			} {
				for len(t.rows) > 0 {
					k := min(len(t.rows), 40)
					var args []any
					for _, row := range t.rows[:k] {
						args = append(args, row...)
					}
					if _, err := tx.Exec(t.prefix+valuesList(t.cols, k), args...); err != nil {
						b.Fatal(err)
					}
					t.rows = t.rows[k:]
				}
			}
			if err := tx.Commit(); err != nil {
				b.Fatal(err)
			}
		}
		evRows, dlRows = evRows[:0], dlRows[:0]
	}
	start := now.Add(-time.Hour)
	for made, i := 0, 0; made < n; i++ {
		shop := "big"
		if i%10 == 9 {
			shop = "small"
		}
		at := start.Add(time.Duration(i) * time.Millisecond)
		typ := evs[r.IntN(3)]
		evID := webhooks.NewID(webhooks.PrefixEvent, at)
		env := fmt.Sprintf(`{"id":%q,"event":%q,"shop_id":%q,"data":{"order_id":"ord_%d","note":%q}}`, evID, typ, shop, i,
			strings.Repeat("x", 200))
		targets := hooks[shop][:min(len(hooks[shop]), n-made)]
		evRows = append(evRows, []any{evID, shop, typ, []byte(env), int64(len(targets)), at.UnixMilli()})
		for _, wh := range targets {
			due := now.Add(time.Duration(r.IntN(86_400_000)) * time.Millisecond)
			dlRows = append(dlRows, []any{webhooks.NewID(webhooks.PrefixDelivery, at), shop, wh, evID, typ, "pending", "event",
				int64(1), "", at.UnixMilli(), due.UnixMilli()})
			made++
		}
		if len(dlRows) >= 50_000 {
			flush()
		}
	}
	flush()
	if dialect == "postgres" {
		if _, err := raw.Exec(`VACUUM ANALYZE`); err != nil {
			b.Fatal(err)
		}
	}
}

// procMemMiB reads the process's memory figures (VmRSS, VmHWM: the peak,
// RssFile: mapped file pages) in MiB.
func procMemMiB() map[string]float64 {
	out := map[string]float64{}
	text, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(text), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 {
			kb, _ := strconv.ParseFloat(f[1], 64)
			out[strings.TrimSuffix(f[0], ":")] = kb / 1024
		}
	}
	return out
}
