package store_test

// BenchmarkClaimBehindBacklog times the dispatcher's claim when the oldest
// due work belongs to a webhook at its in-flight bound (excluded) with a
// large backlog, and another webhook has a few deliveries due behind it:
// the claim must find those without reading the backlog. Backlog size:
// PANCAKE_BENCH_BACKLOG (default 100000).
//
//	go test ./store/ -run '^$' -bench ClaimBehindBacklog -benchtime 200x

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	webhooks "github.com/pancake-pos/pancake-webhooks"
	"github.com/pancake-pos/pancake-webhooks/store"
	"github.com/pancake-pos/pancake-webhooks/store/storetest"
)

func BenchmarkClaimBehindBacklog(b *testing.B) {
	b.Run("SQLite", func(b *testing.B) {
		db, err := store.Open(context.Background(), "sqlite:"+filepath.Join(b.TempDir(), "claim.db"), store.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { db.Close() })
		benchClaimBehindBacklog(b, db)
	})
	b.Run("Postgres", func(b *testing.B) {
		db, err := store.Open(context.Background(), storetest.PostgresDSN(b), store.Options{})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { db.Close() })
		benchClaimBehindBacklog(b, db)
	})
}

func benchClaimBehindBacklog(b *testing.B, db *store.DB) {
	ctx := context.Background()
	backlog := 100_000
	if s := os.Getenv("PANCAKE_BENCH_BACKLOG"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 100 {
			b.Fatalf("PANCAKE_BENCH_BACKLOG=%q: want a number ≥ 100", s)
		}
		backlog = v
	}
	now := time.Now()
	storetest.MustCreateShop(b, db, "q", now)
	big := storetest.MustCreateWebhook(b, db, "q", "https://q.example/big", now, "order.created")
	storetest.MustCreateWebhook(b, db, "q", "https://q.example/small", now, "customer.created")
	batch := func(event string, n int) []webhooks.PublishInput {
		in := make([]webhooks.PublishInput, n)
		for i := range in {
			in[i] = webhooks.PublishInput{Event: event, Data: json.RawMessage(`{"n":1}`)}
		}
		return in
	}
	orders := batch("order.created", 500)
	for n := 0; n < backlog; n += len(orders) {
		if _, err := db.Publish(ctx, "q", orders); err != nil {
			b.Fatal(err)
		}
	}
	customers := batch("customer.created", 10)
	claim := webhooks.Claim{Limit: 64, LeaseFor: time.Hour, Exclude: []string{big.ID}, PerWebhook: 10}
	var claimTime time.Duration
	for b.Loop() {
		b.StopTimer()
		if _, err := db.Publish(ctx, "q", customers); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		t0 := time.Now()
		jobs, err := db.ClaimDeliveries(ctx, claim)
		claimTime += time.Since(t0)
		if err != nil || len(jobs) != len(customers) {
			b.Fatalf("claimed %d, %v; want %d", len(jobs), err, len(customers))
		}
		b.StopTimer()
		res := make([]webhooks.AttemptResult, len(jobs))
		for i, j := range jobs {
			res[i] = webhooks.AttemptResult{DeliveryID: j.DeliveryID, WebhookID: j.WebhookID, Success: true,
				AttemptedAt: time.Now(), Response: webhooks.Response{StatusCode: 204}}
		}
		if err := db.RecordAttempts(ctx, res); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(claimTime.Microseconds())/float64(b.N), "µs/claim")
}
