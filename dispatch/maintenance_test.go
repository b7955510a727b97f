package dispatch_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	webhooks "github.com/pancake-pos/pancake-webhooks"
	"github.com/pancake-pos/pancake-webhooks/dispatch"
	"github.com/pancake-pos/pancake-webhooks/store"
	"github.com/pancake-pos/pancake-webhooks/store/storetest"
)

func TestMaintainer(t *testing.T) {
	t.Parallel()

	type testBundle struct {
		db    *store.DB
		clock *storetest.Clock
		ctx   context.Context
	}
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		clock := storetest.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		db, err := store.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "m.db"), store.Options{Now: clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		storetest.MustCreateShop(t, db, testShop, clock.Now())
		return &testBundle{db: db, clock: clock, ctx: context.Background()}
	}
	attempt := func(t *testing.T, b *testBundle, ok bool) {
		t.Helper()
		jobs, err := b.db.ClaimDeliveries(b.ctx, webhooks.Claim{Limit: 100, LeaseFor: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		var rs []webhooks.AttemptResult
		for _, j := range jobs {
			rs = append(rs, webhooks.AttemptResult{DeliveryID: j.DeliveryID, WebhookID: j.WebhookID, Success: ok,
				AttemptedAt: b.clock.Now(), FailureReason: map[bool]string{true: "", false: "HTTP 500"}[ok]})
		}
		if err := b.db.RecordAttempts(b.ctx, rs); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("RetentionDeletesOnlyOldFinishedDeliveries", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		storetest.MustCreateWebhook(t, b.db, testShop, "https://a.example", b.clock.Now(), "order.created")
		in := []webhooks.PublishInput{{Event: "order.created"}, {Event: "order.created"}, {Event: "order.created"}}
		if _, err := b.db.Publish(b.ctx, testShop, in); err != nil {
			t.Fatal(err)
		}
		attempt(t, b, true)
		b.clock.Add(20 * 24 * time.Hour)
		if _, err := b.db.Publish(b.ctx, testShop, in[:1]); err != nil {
			t.Fatal(err)
		}
		attempt(t, b, true)
		b.clock.Add(11 * 24 * time.Hour)
		m, err := dispatch.NewMaintainer(nil, b.clock.Now, b.db, &dispatch.MaintenanceConfig{Retention: 30 * 24 * time.Hour, Batch: 2})
		if err != nil {
			t.Fatal(err)
		}
		m.RunOnce(b.ctx)
		ds, n, err := b.db.FindDeliveries(b.ctx, webhooks.DeliveryFilter{ShopID: testShop, Limit: 10})
		if err != nil || n != 1 || len(ds) != 1 {
			t.Fatalf("after retention: %d deliveries (%v); want only the 11-day-old one", n, err)
		}
	})

	// The sweep leaves a webhook that failed once and then had nothing to
	// send (audit); recording a failure 5 days into a spell disables it
	// (store's FailingForFiveDaysDisables).
	t.Run("LeavesAQuietWebhookThatFailedOnce", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		w := storetest.MustCreateWebhook(t, b.db, testShop, "https://a.example", b.clock.Now(), "order.created")
		if _, err := b.db.Publish(b.ctx, testShop, []webhooks.PublishInput{{Event: "order.created"}}); err != nil {
			t.Fatal(err)
		}
		attempt(t, b, false)
		m, err := dispatch.NewMaintainer(nil, b.clock.Now, b.db, nil)
		if err != nil {
			t.Fatal(err)
		}
		b.clock.Add(6 * 24 * time.Hour)
		m.RunOnce(b.ctx)
		got, _ := b.db.FindWebhook(b.ctx, testShop, w.ID)
		if !got.IsActive || got.Health.ConsecutiveFailures != 1 {
			t.Fatalf("6 days after one failure: active=%v reason=%q streak %d; want active", got.IsActive, got.DisabledReason, got.Health.ConsecutiveFailures)
		}
	})

	t.Run("OnlyTheLeaderWorks", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		storetest.MustCreateWebhook(t, b.db, testShop, "https://a.example", b.clock.Now(), "order.created")
		if _, err := b.db.Publish(b.ctx, testShop, []webhooks.PublishInput{{Event: "order.created"}}); err != nil {
			t.Fatal(err)
		}
		attempt(t, b, true)
		b.clock.Add(40 * 24 * time.Hour)
		m, _ := dispatch.NewMaintainer(nil, b.clock.Now, b.db, &dispatch.MaintenanceConfig{IsLeader: func(context.Context) bool { return false }})
		m.RunOnce(b.ctx)
		if _, n, _ := b.db.FindDeliveries(b.ctx, webhooks.DeliveryFilter{ShopID: testShop}); n != 1 {
			t.Fatalf("a follower ran retention: %d deliveries left", n)
		}
	})
}
