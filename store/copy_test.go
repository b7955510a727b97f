package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	webhooks "github.com/pancake-pos/pancake-webhooks"
	"github.com/pancake-pos/pancake-webhooks/store"
	"github.com/pancake-pos/pancake-webhooks/store/storetest"
)

type copyOpener func(t *testing.T, clock *storetest.Clock) *store.DB

func openCopySQLite(t *testing.T, clock *storetest.Clock) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "copy.db"), store.Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func openCopyPostgres(t *testing.T, clock *storetest.Clock) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), storetest.PostgresDSN(t), store.Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// copyTargets: the copy is generic; SQLite to SQLite runs without PostgreSQL.
var copyTargets = []struct {
	name string
	open copyOpener
	pg   bool
}{
	{"ToPostgres", openCopyPostgres, true},
	{"ToSQLite", openCopySQLite, false},
}

// badBody is a response body PostgreSQL cannot store as text.
const badBody = "ok\xff\x00!"

// copyFixture is what fillForCopy made.
type copyFixture struct {
	shops    []string
	keys     map[string]string // API key → shop
	webhooks []*webhooks.Webhook
	idem     webhooks.PublishResult // the event published with key "idem-1" by shop-a
	leased   []string               // pending deliveries claimed and not recorded
	events   int64
}

// fillForCopy fills db through its public API with everything a copy must
// carry: shops, keys, active and disabled webhooks with rotated secrets,
// events with idempotency keys, finished (success, failed with and without
// a retry, truncated bodies), pending and leased deliveries, test sends,
// and stats over two hours.
func fillForCopy(t *testing.T, db *store.DB, clock *storetest.Clock) *copyFixture {
	t.Helper()
	ctx := context.Background()
	now := clock.Now()
	f := &copyFixture{shops: []string{"shop-a", "shop-b"}, keys: map[string]string{}}
	for _, s := range f.shops {
		f.keys[storetest.MustCreateShop(t, db, s, now)] = s
	}
	key, k := webhooks.NewAPIKey("shop-a", now)
	if err := db.CreateAPIKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	f.keys[key] = "shop-a"

	wa1 := storetest.MustCreateWebhook(t, db, "shop-a", "https://a.example/1", now, "order.created")
	wa2 := storetest.MustCreateWebhook(t, db, "shop-a", "https://a.example/2", now, "order.created", "customer.created")
	if _, err := db.RotateSecret(ctx, "shop-a", wa2.ID, webhooks.NewSecret(), time.Hour); err != nil {
		t.Fatal(err)
	}
	wa3 := storetest.MustCreateWebhook(t, db, "shop-a", "https://a.example/3", now, "order.created")
	off, desc := false, "paused for the copy test ✓"
	if _, err := db.UpdateWebhook(ctx, "shop-a", wa3.ID, webhooks.WebhookUpdate{IsActive: &off, Description: &desc}); err != nil {
		t.Fatal(err)
	}
	wb1 := storetest.MustCreateWebhook(t, db, "shop-b", "https://b.example/1", now, "order.created")
	f.webhooks = []*webhooks.Webhook{wa1, wa2, wa3, wb1}

	publish := func(shop, event string, n int, idem string) []webhooks.PublishResult {
		in := make([]webhooks.PublishInput, n)
		for i := range in {
			in[i] = webhooks.PublishInput{Event: event, Data: json.RawMessage(fmt.Sprintf(`{"n":%d,"name":"Crêpe «%d» 🥞","bytes":"\u00e9\u0000"}`, i, i))}
		}
		if idem != "" {
			in[0].IdempotencyKey = idem
		}
		res, err := db.Publish(ctx, shop, in)
		if err != nil {
			t.Fatal(err)
		}
		f.events += int64(n)
		return res
	}
	f.idem = publish("shop-a", "order.created", 30, "idem-1")[0]
	publish("shop-a", "customer.created", 2, "")
	publish("shop-b", "order.created", 10, "idem-1") // same key, other shop

	jobs, err := db.ClaimDeliveries(ctx, webhooks.Claim{Limit: 13, LeaseFor: 24 * time.Hour}) // still leased at the copy
	if err != nil || len(jobs) != 13 {
		t.Fatalf("claim = %d, %v", len(jobs), err)
	}
	at := clock.Now()
	next := at.Add(10 * time.Minute)
	var results []webhooks.AttemptResult
	for i, j := range jobs[:10] {
		r := webhooks.AttemptResult{DeliveryID: j.DeliveryID, WebhookID: j.WebhookID, AttemptedAt: at.Add(time.Duration(i) * time.Millisecond),
			Duration: time.Duration(5+i) * time.Millisecond, RequestHeaders: map[string]string{"Webhook-Id": j.DeliveryID}}
		switch i % 3 {
		case 0:
			r.Success = true
			r.Response = webhooks.Response{StatusCode: 200, Headers: map[string]string{"Content-Type": "text/plain"}, Body: "fine", BodyTruncated: true}
		case 1:
			r.Response = webhooks.Response{StatusCode: 500, Body: "boom"}
			r.FailureReason = "HTTP 500"
			r.NextAttemptAt = &next
		case 2:
			r.Response = webhooks.Response{StatusCode: 502}
			r.FailureReason = "HTTP 502"
		}
		results = append(results, r)
	}
	if err := db.RecordAttempts(ctx, results); err != nil {
		t.Fatal(err)
	}
	// A body as versions before webhooks.StorableText kept it on SQLite.
	err = db.WriteForTest(ctx, func(tx *store.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE deliveries SET response_body = $1 WHERE id = $2`, badBody, jobs[0].DeliveryID)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range jobs[10:] {
		f.leased = append(f.leased, j.DeliveryID)
	}

	// A test send an hour later: its own event, a finished delivery, stats
	// in another hour.
	clock.Add(time.Hour)
	now = clock.Now()
	ev, err := webhooks.NewEvent("shop-a", "order.created", json.RawMessage(`{"test":true}`), "", true, now)
	if err != nil {
		t.Fatal(err)
	}
	err = db.RecordSyncAttempt(ctx, webhooks.SyncAttempt{Event: ev, Delivery: &webhooks.Delivery{
		ID: webhooks.NewID(webhooks.PrefixDelivery, now), ShopID: "shop-a", WebhookID: wa1.ID, EventID: ev.ID, Event: ev.Type,
		Status: webhooks.StatusSuccess, Trigger: webhooks.TriggerTest, Attempt: 1, CreatedAt: now, DurationMS: 7,
		Response: &webhooks.Response{StatusCode: 204, Headers: map[string]string{}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	f.events++
	return f
}

// allDeliveries lists the shop's finished and pending deliveries.
func allDeliveries(t *testing.T, db *store.DB, shop string) (finished, pending []*webhooks.Delivery) {
	t.Helper()
	ctx := context.Background()
	finished, n, err := db.FindDeliveries(ctx, webhooks.DeliveryFilter{ShopID: shop, Limit: 10000})
	if err != nil || n != len(finished) {
		t.Fatalf("finished deliveries of %s: %d of %d, %v", shop, len(finished), n, err)
	}
	pending, n, err = db.FindDeliveries(ctx, webhooks.DeliveryFilter{ShopID: shop, Status: webhooks.StatusPending, Limit: 10000})
	if err != nil || n != len(pending) {
		t.Fatalf("pending deliveries of %s: %d of %d, %v", shop, len(pending), n, err)
	}
	return finished, pending
}

func countDeliveries(t *testing.T, db *store.DB, f *copyFixture) int64 {
	t.Helper()
	var n int64
	for _, s := range f.shops {
		fin, pen := allDeliveries(t, db, s)
		n += int64(len(fin) + len(pen))
	}
	return n
}

func jsonOf(v any) string {
	b, _ := json.MarshalIndent(v, "", " ")
	return string(b)
}

// checkCopied compares src and dst through the public API.
func checkCopied(t *testing.T, src, dst *store.DB, clock *storetest.Clock, f *copyFixture, pg bool, rep *store.CopyReport) {
	t.Helper()
	ctx := context.Background()

	want := map[string]int64{"shops": 2, "api_keys": 3, "webhooks": 4, "events": f.events, "deliveries": countDeliveries(t, src, f)}
	for table, n := range want {
		if rep.Tables[table] != n {
			t.Errorf("report: %s = %d, want %d (%v)", table, rep.Tables[table], n, rep.Tables)
		}
	}
	if rep.Tables["webhook_stats"] == 0 {
		t.Errorf("report: no webhook_stats rows: %v", rep.Tables)
	}
	if got := countDeliveries(t, dst, f); got != want["deliveries"] {
		t.Errorf("target has %d deliveries, want %d", got, want["deliveries"])
	}
	if pg && rep.TextRepaired != 1 {
		t.Errorf("TextRepaired = %d, want 1 (the bad response body)", rep.TextRepaired)
	}
	if !pg && rep.TextRepaired != 0 {
		t.Errorf("TextRepaired = %d on SQLite, want 0", rep.TextRepaired)
	}

	for key, shop := range f.keys {
		if got, err := dst.Authenticate(ctx, webhooks.HashAPIKey(key)); err != nil || got != shop {
			t.Errorf("Authenticate on target = %q, %v; want %s", got, err, shop)
		}
	}
	for _, shop := range f.shops {
		ws, err := src.ListWebhooks(ctx, shop)
		if err != nil {
			t.Fatal(err)
		}
		wd, err := dst.ListWebhooks(ctx, shop)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(ws, wd) {
			t.Errorf("webhooks of %s differ:\nsource %s\ntarget %s", shop, jsonOf(ws), jsonOf(wd))
		}
		for _, w := range ws {
			from, to := clock.Now().Add(-48*time.Hour), clock.Now().Add(time.Hour)
			ss, err1 := src.WebhookStats(ctx, shop, w.ID, from, to)
			sd, err2 := dst.WebhookStats(ctx, shop, w.ID, from, to)
			if err1 != nil || err2 != nil || !reflect.DeepEqual(ss, sd) {
				t.Errorf("stats of %s differ: %v %v\nsource %s\ntarget %s", w.ID, err1, err2, jsonOf(ss), jsonOf(sd))
			}
		}

		fs, ps := allDeliveries(t, src, shop)
		fd, pd := allDeliveries(t, dst, shop)
		if len(ps) == 0 || (shop == "shop-a" && len(fs) == 0) {
			t.Fatalf("fixture of %s has %d finished and %d pending deliveries", shop, len(fs), len(ps))
		}
		for _, d := range fs {
			if pg && d.Response != nil && d.Response.Body == badBody {
				d.Response.Body = "ok\uFFFD\uFFFD!" // what PostgreSQL got
			}
		}
		if !reflect.DeepEqual(fs, fd) {
			t.Errorf("finished deliveries of %s differ:\nsource %s\ntarget %s", shop, jsonOf(fs), jsonOf(fd))
		}
		if !reflect.DeepEqual(ps, pd) {
			t.Errorf("pending deliveries of %s differ:\nsource %s\ntarget %s", shop, jsonOf(ps), jsonOf(pd))
		}
		// The envelopes (BLOB/BYTEA) byte for byte, and the booleans.
		truncated := 0
		for i := range fs {
			if string(fs[i].Payload) != string(fd[i].Payload) || len(fd[i].Payload) == 0 {
				t.Errorf("envelope of %s: %q, want %q", fd[i].ID, fd[i].Payload, fs[i].Payload)
			}
			if fd[i].Response != nil && fd[i].Response.BodyTruncated {
				truncated++
			}
		}
		if shop == "shop-a" && truncated == 0 {
			t.Errorf("no truncated response body came across")
		}
	}

	qs, err1 := src.QueueStats(ctx)
	qd, err2 := dst.QueueStats(ctx)
	// The leases are cleared (below): what the source has claimed is due
	// on the target, no older than the oldest due there.
	if err1 != nil || err2 != nil || qd.Due != qs.Due+qs.Claimed || qd.Claimed != 0 || qd.Scheduled != qs.Scheduled ||
		qd.OldestDueAge < qs.OldestDueAge || !reflect.DeepEqual(qs.WebhooksHealth, qd.WebhooksHealth) {
		t.Errorf("queue stats differ: %v %v\nsource %+v\ntarget %+v", err1, err2, qs, qd)
	}

	// The idempotency keys came across: publishing again answers the first event.
	res, err := dst.Publish(ctx, "shop-a", []webhooks.PublishInput{{Event: "order.created", IdempotencyKey: "idem-1"}})
	if err != nil || len(res) != 1 || res[0] != f.idem {
		t.Errorf("idempotent publish on target = %+v, %v; want %+v", res, err, f.idem)
	}
	// The leases were cleared: the work claimed on the source and never
	// recorded is claimable on the target at once.
	jobs, err := dst.ClaimDeliveries(ctx, webhooks.Claim{Limit: 10000, LeaseFor: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	var claimed []string
	for _, j := range jobs {
		claimed = append(claimed, j.DeliveryID)
		if len(j.Secrets) == 0 || len(j.Payload) == 0 {
			t.Errorf("job %s on target lacks secrets or payload: %+v", j.DeliveryID, j)
		}
	}
	for _, id := range f.leased {
		if !slices.Contains(claimed, id) {
			t.Errorf("delivery %s leased on the source is not claimable on the target", id)
		}
	}
}

func TestCopy(t *testing.T) {
	t.Parallel()
	for _, tc := range copyTargets {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clock := storetest.NewClock(time.Date(2026, 11, 26, 10, 30, 0, 0, time.UTC))
			src := openCopySQLite(t, clock)
			f := fillForCopy(t, src, clock)
			dst := tc.open(t, clock)

			started := map[string]bool{}
			var last = map[string][2]int64{}
			rep, err := store.Copy(context.Background(), src, dst, store.CopyOptions{BatchSize: 7, Progress: func(table string, done, total int64) {
				if done == 0 {
					started[table] = true
				}
				if done > total || done < last[table][0] {
					t.Errorf("progress %s: %d of %d after %v", table, done, total, last[table])
				}
				last[table] = [2]int64{done, total}
			}})
			if err != nil {
				t.Fatalf("Copy: %v", err)
			}
			if rep.Resumed || !strings.HasPrefix(rep.Source, "sqlite:") {
				t.Errorf("report = %+v", rep)
			}
			for _, table := range store.CopyTables() {
				if !started[table] || last[table][0] != last[table][1] || last[table][1] != rep.Tables[table] {
					t.Errorf("progress of %s: started %v, last %v, report %d", table, started[table], last[table], rep.Tables[table])
				}
			}
			checkCopied(t, src, dst, clock, f, tc.pg, rep)

			// A finished copy is not copied over again.
			_, err = store.Copy(context.Background(), src, dst, store.CopyOptions{})
			if !errors.Is(err, store.ErrCopyRefused) || !strings.Contains(err.Error(), "finished copy") {
				t.Errorf("second copy: %v, want refused as finished", err)
			}
		})
	}
}

func TestCopyRefusesTargets(t *testing.T) {
	t.Parallel()
	for _, tc := range copyTargets {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			clock := storetest.NewClock(time.Date(2026, 11, 26, 10, 30, 0, 0, time.UTC))
			src := openCopySQLite(t, clock)
			storetest.MustCreateShop(t, src, "shop-a", clock.Now())

			// Not empty, never copied into.
			dst := tc.open(t, clock)
			storetest.MustCreateShop(t, dst, "shop-z", clock.Now())
			_, err := store.Copy(ctx, src, dst, store.CopyOptions{})
			if !errors.Is(err, store.ErrCopyRefused) || !strings.Contains(err.Error(), "not empty (table shops has rows)") {
				t.Fatalf("copy into a non-empty target: %v", err)
			}
			if _, err := store.Copy(ctx, dst, dst, store.CopyOptions{}); !errors.Is(err, store.ErrCopyRefused) || !strings.Contains(err.Error(), "same database") {
				t.Fatalf("copy onto itself: %v", err)
			}
			// A refusal leaves no copy marker behind: the target is refused
			// again for the same reason, not taken for a copy to resume.
			if _, err := store.Copy(ctx, src, dst, store.CopyOptions{}); !errors.Is(err, store.ErrCopyRefused) || !strings.Contains(err.Error(), "not empty") {
				t.Fatalf("second copy into a non-empty target: %v", err)
			}

			// An unfinished copy of another source.
			other := openCopySQLite(t, clock)
			for i := range 5 {
				storetest.MustCreateShop(t, other, fmt.Sprintf("other-%d", i), clock.Now())
			}
			dst2 := tc.open(t, clock)
			cctx, cancel := context.WithCancel(ctx)
			_, err = store.Copy(cctx, other, dst2, store.CopyOptions{BatchSize: 2, Progress: func(table string, done, _ int64) {
				if table == "shops" && done > 0 {
					cancel()
				}
			}})
			cancel()
			if err == nil {
				t.Fatal("interrupted copy succeeded")
			}
			_, err = store.Copy(ctx, src, dst2, store.CopyOptions{})
			if !errors.Is(err, store.ErrCopyRefused) || !strings.Contains(err.Error(), "unfinished copy of") {
				t.Fatalf("copy onto another source's unfinished copy: %v", err)
			}
			// Its own source may finish it.
			rep, err := store.Copy(ctx, other, dst2, store.CopyOptions{})
			if err != nil || !rep.Resumed || rep.Tables["shops"] != 5 || rep.Tables["api_keys"] != 5 {
				t.Fatalf("resume = %+v, %v", rep, err)
			}
		})
	}
}

func TestCopyResumesAfterInterruption(t *testing.T) {
	t.Parallel()
	for _, tc := range copyTargets {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clock := storetest.NewClock(time.Date(2026, 11, 26, 10, 30, 0, 0, time.UTC))
			src := openCopySQLite(t, clock)
			f := fillForCopy(t, src, clock)
			dst := tc.open(t, clock)

			// Interrupt after the second batch of deliveries (the first holds
			// the finished ones: the oldest were claimed).
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var copied int64
			_, err := store.Copy(ctx, src, dst, store.CopyOptions{BatchSize: 10, Progress: func(table string, done, _ int64) {
				if table == "deliveries" && done >= 20 {
					copied = done
					cancel()
				}
			}})
			if err == nil {
				t.Fatal("interrupted copy succeeded")
			}
			if copied != 20 {
				t.Fatalf("interrupted after %d deliveries, want 20", copied)
			}
			if n := countDeliveries(t, dst, f); n != 20 {
				t.Fatalf("target holds %d deliveries after the interruption, want 20 (two batches)", n)
			}

			// The source changes before the re-run (a server ran on it
			// meanwhile): rows already copied are brought up to date.
			ctx = context.Background()
			desc := "changed between the runs"
			if _, err := src.UpdateWebhook(ctx, "shop-a", f.webhooks[0].ID, webhooks.WebhookUpdate{Description: &desc}); err != nil {
				t.Fatal(err)
			}
			finished := ""
			for _, s := range f.shops {
				_, pending := allDeliveries(t, dst, s)
				for _, d := range pending {
					if finished == "" && !slices.Contains(f.leased, d.ID) {
						finished = d.ID
						err := src.RecordAttempts(ctx, []webhooks.AttemptResult{{DeliveryID: d.ID, WebhookID: d.WebhookID, Success: true,
							AttemptedAt: clock.Now(), Duration: time.Millisecond, Response: webhooks.Response{StatusCode: 201}}})
						if err != nil {
							t.Fatal(err)
						}
					}
				}
			}
			if finished == "" {
				t.Fatal("no pending delivery among those copied before the interruption")
			}

			rep, err := store.Copy(ctx, src, dst, store.CopyOptions{BatchSize: 10})
			if err != nil {
				t.Fatalf("re-run: %v", err)
			}
			if d, err := dst.FindDelivery(ctx, "shop-a", finished); err != nil || d.Status != webhooks.StatusSuccess {
				if d, err = dst.FindDelivery(ctx, "shop-b", finished); err != nil || d.Status != webhooks.StatusSuccess {
					t.Errorf("delivery finished on the source between the runs: %+v, %v", d, err)
				}
			}
			if !rep.Resumed {
				t.Errorf("re-run not reported as resumed: %+v", rep)
			}
			checkCopied(t, src, dst, clock, f, tc.pg, rep)
		})
	}
}

func TestCopyCountCheck(t *testing.T) {
	t.Parallel()
	for _, tc := range copyTargets {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clock := storetest.NewClock(time.Date(2026, 11, 26, 10, 30, 0, 0, time.UTC))
			src := openCopySQLite(t, clock)
			storetest.MustCreateShop(t, src, "shop-a", clock.Now())
			w := storetest.MustCreateWebhook(t, src, "shop-a", "https://a.example/1", clock.Now(), "order.created")
			storetest.MustCreateWebhook(t, src, "shop-a", "https://a.example/2", clock.Now(), "order.created")
			dst := tc.open(t, clock)

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			_, err := store.Copy(ctx, src, dst, store.CopyOptions{BatchSize: 1, Progress: func(table string, done, _ int64) {
				if table == "webhooks" && done == 2 {
					cancel()
				}
			}})
			if err == nil {
				t.Fatal("interrupted copy succeeded")
			}
			// A row already copied goes from the source: the re-run cannot
			// remove it from the target, and the count check says so.
			if err := src.DeleteWebhook(context.Background(), "shop-a", w.ID); err != nil {
				t.Fatal(err)
			}
			_, err = store.Copy(context.Background(), src, dst, store.CopyOptions{})
			if err == nil || !strings.Contains(err.Error(), "count check failed (webhooks: source 1 rows, target 2)") {
				t.Fatalf("re-run after a deletion in the source: %v", err)
			}
		})
	}
}
