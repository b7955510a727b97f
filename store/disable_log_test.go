package store_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	webhooks "github.com/pancake-pos/pancake-webhooks"

	"github.com/pancake-pos/pancake-webhooks/store"
	"github.com/pancake-pos/pancake-webhooks/store/storetest"
)

// TestEachWebhookDisabledByARecordIsLoggedOnce: a recorded 410 Gone, a
// test send answered 410, five days of failures and the housekeeping each
// disable their webhook, and the operator reads which one and why, once
// (the 5-day rule and the test send logged nothing, the housekeeping a
// count; every 410 of a webhook logged a line).
func TestEachWebhookDisabledByARecordIsLoggedOnce(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, dsn string) {
		var logs storetest.LogBuffer
		clock := storetest.NewClock(time.Now())
		db := openStore(t, dsn, store.Options{Now: clock.Now, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		t.Cleanup(func() { db.Close() })
		ctx := context.Background()
		const shop = "s"
		storetest.MustCreateShop(t, db, shop, clock.Now())
		gone := storetest.MustCreateWebhook(t, db, shop, "https://example.com/gone", clock.Now(), "order.created")
		if _, err := db.Publish(ctx, shop, []webhooks.PublishInput{{Event: "order.created"}, {Event: "order.created"}}); err != nil {
			t.Fatal(err)
		}
		jobs, err := db.ClaimDeliveries(ctx, webhooks.Claim{Limit: 2, LeaseFor: time.Hour})
		if err != nil || len(jobs) != 2 {
			t.Fatalf("claimed %d (%v); want 2", len(jobs), err)
		}
		for _, j := range jobs { // two attempts in flight, both answered 410
			r := ok(j)
			r.Success, r.Response.StatusCode, r.FailureReason, r.Disable = false, 410, "HTTP 410", webhooks.DisabledReasonGone
			if err := db.RecordAttempts(ctx, []webhooks.AttemptResult{r}); err != nil {
				t.Fatal(err)
			}
		}

		tested := storetest.MustCreateWebhook(t, db, shop, "https://example.com/tested", clock.Now(), "customer.created")
		ev, err := webhooks.NewEvent(shop, "customer.created", nil, "", true, clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		err = db.RecordSyncAttempt(ctx, webhooks.SyncAttempt{Event: ev, Delivery: &webhooks.Delivery{
			ID: webhooks.NewID(webhooks.PrefixDelivery, clock.Now()), ShopID: shop, WebhookID: tested.ID, EventID: ev.ID,
			Event: ev.Type, Status: webhooks.StatusFailed, Trigger: webhooks.TriggerTest, Attempt: 1, CreatedAt: clock.Now(),
			Response: &webhooks.Response{StatusCode: 410}, FailureReason: "HTTP 410"}})
		if err != nil {
			t.Fatal(err)
		}

		failing := storetest.MustCreateWebhook(t, db, shop, "https://example.com/failing", clock.Now(), "order.updated")
		if _, err := db.Publish(ctx, shop, []webhooks.PublishInput{{Event: "order.updated"}}); err != nil {
			t.Fatal(err)
		}
		for k := 0; k < 7; k++ { // a failed attempt every 20 hours
			jobs, err := db.ClaimDeliveries(ctx, webhooks.Claim{Limit: 1, LeaseFor: time.Minute})
			if err != nil || len(jobs) != 1 {
				t.Fatalf("attempt %d: claimed %d (%v); want 1", k+1, len(jobs), err)
			}
			r := ok(jobs[0])
			next := clock.Now().Add(20 * time.Hour)
			r.Success, r.Response.StatusCode, r.FailureReason, r.NextAttemptAt = false, 500, "HTTP 500", &next
			r.AttemptedAt = clock.Now()
			if err := db.RecordAttempts(ctx, []webhooks.AttemptResult{r}); err != nil {
				t.Fatal(err)
			}
			clock.Add(20 * time.Hour)
		}

		// One failing for 5 days as an earlier build recorded it, which
		// did not disable it: the housekeeping does.
		old := storetest.MustCreateWebhook(t, db, shop, "https://example.com/old", clock.Now(), "order.updated")
		if err := db.WriteForTest(ctx, func(tx *store.Tx) error {
			_, err := tx.ExecContext(ctx, `UPDATE webhooks SET failing_since = $1, last_failure_at = $2, consecutive_failures = 9 WHERE id = $3`,
				clock.Now().Add(-6*24*time.Hour).UnixMilli(), clock.Now().UnixMilli(), old.ID)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if n, err := db.DisableFailingWebhooks(ctx, clock.Now().Add(-webhooks.AutoDisableAfter), webhooks.DisabledReasonFailing); err != nil || n != 1 {
			t.Fatalf("DisableFailingWebhooks = %d, %v; want 1", n, err)
		}

		text := logs.String()
		for _, want := range []struct {
			id, reason string
		}{{gone.ID, webhooks.DisabledReasonGone}, {tested.ID, webhooks.DisabledReasonGone}, {failing.ID, webhooks.DisabledReasonFailing},
			{old.ID, webhooks.DisabledReasonFailing}} {
			line := fmt.Sprintf(`msg="webhook disabled" webhook_id=%s shop_id=%s reason=%q`, want.id, shop, want.reason)
			if n := strings.Count(text, line); n != 1 {
				t.Errorf("%d lines %s; want 1. Logs:\n%s", n, line, text)
			}
		}
	})
}
