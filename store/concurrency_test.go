package store_test

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	webhooks "github.com/pancake-pos/pancake-webhooks"

	"github.com/pancake-pos/pancake-webhooks/store"
	"github.com/pancake-pos/pancake-webhooks/store/storetest"
)

// Writes that run at once: on PostgreSQL, two writers in each process and
// any number of replicas run their transactions side by side, at READ
// COMMITTED; SQLite's one writer runs them in turn. Each test opens two
// stores on one database, as two replicas, and races them; the outcome
// must be what running them in turn gives.

// twoReplicas opens two stores on a fresh database with one shop.
func twoReplicas(t *testing.T, dsn string) (a, b *store.DB, shop string) {
	t.Helper()
	a, b = openStore(t, dsn, store.Options{}), openStore(t, dsn, store.Options{})
	t.Cleanup(func() { a.Close(); b.Close() })
	storetest.MustCreateShop(t, a, "s", time.Now())
	return a, b, "s"
}

// race runs fn(i) for i in [0, n) at once and returns when all have.
func race(n int, fn func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() { <-start; fn(i) })
	}
	close(start)
	wg.Wait()
}

func TestIdempotentPublishesAtOnceGetTheFirstAnswer(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, dsn string) {
		a, b, shop := twoReplicas(t, dsn)
		storetest.MustCreateWebhook(t, a, shop, "https://example.com/hook", time.Now(), "order.created")
		ctx := context.Background()
		for round := range 10 {
			key := fmt.Sprintf("order-%d", round)
			ids := make([]string, 8)
			errs := make([]error, 8)
			race(8, func(i int) {
				db := []*store.DB{a, b}[i%2]
				res, err := db.Publish(ctx, shop, []webhooks.PublishInput{{Event: "order.created", IdempotencyKey: key}})
				if errs[i] = err; err == nil {
					ids[i] = res[0].EventID
				}
			})
			for i, err := range errs {
				if err != nil {
					t.Fatalf("round %d, publish %d of the same key: %v", round, i, err)
				}
			}
			if ids[0] == "" || slices.ContainsFunc(ids, func(id string) bool { return id != ids[0] }) {
				t.Fatalf("round %d: event ids %v; want one", round, ids)
			}
		}
		_, total, err := a.FindDeliveries(ctx, webhooks.DeliveryFilter{ShopID: shop, Status: webhooks.StatusPending})
		if err != nil || total != 10 {
			t.Fatalf("%d deliveries queued (%v); want 10, one a key", total, err)
		}
	})
}

func TestWebhookChangesAtOnceAreAllKept(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, dsn string) {
		a, b, shop := twoReplicas(t, dsn)
		ctx := context.Background()
		for round := range 10 {
			w := storetest.MustCreateWebhook(t, a, shop, "https://example.com/hook", time.Now(), "order.created")
			desc, events, off := fmt.Sprintf("d%d", round), []webhooks.EventType{"order.created", "customer.created"}, false
			errs := make([]error, 3)
			race(3, func(i int) {
				upd := []webhooks.WebhookUpdate{{Description: &desc}, {Events: events}, {IsActive: &off}}[i]
				_, errs[i] = []*store.DB{a, b, a}[i].UpdateWebhook(ctx, shop, w.ID, upd)
			})
			if err := cmpErrs(errs); err != nil {
				t.Fatal(err)
			}
			got, err := a.FindWebhook(ctx, shop, w.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Description != desc || !slices.Equal(got.Events, events) || got.IsActive {
				t.Fatalf("round %d: description %q, events %v, active %v; want every change kept", round, got.Description, got.Events, got.IsActive)
			}

			// Two rotations at once: each secret handed out signs, the
			// later one as the current, the earlier as the previous.
			secrets := []string{webhooks.NewSecret(), webhooks.NewSecret()}
			race(2, func(i int) { _, errs[i] = []*store.DB{a, b}[i].RotateSecret(ctx, shop, w.ID, secrets[i], time.Hour) })
			if err := cmpErrs(errs[:2]); err != nil {
				t.Fatal(err)
			}
			if got, err = a.FindWebhook(ctx, shop, w.ID); err != nil {
				t.Fatal(err)
			}
			if kept := []string{got.Secret, got.PreviousSecret}; !slices.Contains(kept, secrets[0]) || !slices.Contains(kept, secrets[1]) {
				t.Fatalf("round %d: rotations at once kept %v of the new secrets %v", round, kept, secrets)
			}
		}
	})
}

// TestWebhookCreatesAtOnceKeepTheLimit: creates of one shop at once, on
// two replicas, each counted the shop's webhooks under the limit before
// any inserted; a shop limited to 1 got 4 on PostgreSQL (code review).
func TestWebhookCreatesAtOnceKeepTheLimit(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, dsn string) {
		a, b, _ := twoReplicas(t, dsn)
		ctx := context.Background()
		for round := range 10 {
			shop := fmt.Sprintf("limit-%d", round)
			storetest.MustCreateShop(t, a, shop, time.Now())
			const limit = 2
			errs := make([]error, 8)
			race(8, func(i int) {
				now := time.Now()
				w := &webhooks.Webhook{ID: webhooks.NewID(webhooks.PrefixWebhook, now), ShopID: shop, URL: "https://example.com/hook",
					Events: []webhooks.EventType{"order.created"}, IsActive: true, Secret: webhooks.NewSecret(), CreatedAt: now, UpdatedAt: now}
				errs[i] = []*store.DB{a, b}[i%2].CreateWebhook(ctx, w, limit)
			})
			created := 0
			for i, err := range errs {
				switch webhooks.ErrorCode(err) {
				case "":
					created++
				case webhooks.ECONFLICT:
				default:
					t.Fatalf("round %d, create %d: %v", round, i, err)
				}
			}
			list, err := a.ListWebhooks(ctx, shop)
			if err != nil {
				t.Fatal(err)
			}
			if created != limit || len(list) != limit {
				t.Fatalf("round %d: %d creates succeeded, %d webhooks stored; want the limit, %d", round, created, len(list), limit)
			}
		}
	})
}

func cmpErrs(errs []error) error {
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("change %d: %w", i, err)
		}
	}
	return nil
}

func TestManualRetriesAtOnceAreNumberedInTurn(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, dsn string) {
		a, b, shop := twoReplicas(t, dsn)
		ctx := context.Background()
		w := storetest.MustCreateWebhook(t, a, shop, "https://example.com/hook", time.Now(), "order.created")
		res, err := a.Publish(ctx, shop, []webhooks.PublishInput{{Event: "order.created"}})
		if err != nil {
			t.Fatal(err)
		}
		const rounds = 6
		for range rounds {
			errs := make([]error, 2)
			race(2, func(i int) {
				now := time.Now()
				d := &webhooks.Delivery{ID: webhooks.NewID(webhooks.PrefixDelivery, now), ShopID: shop, WebhookID: w.ID,
					EventID: res[0].EventID, Event: "order.created", Status: webhooks.StatusSuccess, Trigger: webhooks.TriggerManualRetry,
					CreatedAt: now, DurationMS: 3, Response: &webhooks.Response{StatusCode: 200}}
				errs[i] = []*store.DB{a, b}[i].RecordSyncAttempt(ctx, webhooks.SyncAttempt{Delivery: d})
			})
			if err := cmpErrs(errs); err != nil {
				t.Fatal(err)
			}
		}
		ds, _, err := a.FindDeliveries(ctx, webhooks.DeliveryFilter{ShopID: shop, WebhookID: w.ID, Status: webhooks.StatusSuccess, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		var attempts []int
		for _, d := range ds {
			attempts = append(attempts, d.Attempt)
		}
		slices.Sort(attempts)
		if len(slices.Compact(slices.Clone(attempts))) != 2*rounds {
			t.Fatalf("manual retries numbered %v; want %d different numbers", attempts, 2*rounds)
		}
	})
}

func TestClearsAtOnceSubtractWhatTheyDelete(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, dsn string) {
		a, b, shop := twoReplicas(t, dsn)
		ctx := context.Background()
		w := storetest.MustCreateWebhook(t, a, shop, "https://example.com/hook", time.Now(), "order.created")
		for round := 1; round <= 8; round++ {
			// 3 successes and 2 failures more, then four clears of the
			// failures at once.
			in := make([]webhooks.PublishInput, 5)
			for k := range in {
				in[k].Event = "order.created"
			}
			if _, err := a.Publish(ctx, shop, in); err != nil {
				t.Fatal(err)
			}
			jobs, err := a.ClaimDeliveries(ctx, webhooks.Claim{Limit: 10, LeaseFor: time.Minute})
			if err != nil || len(jobs) != 5 {
				t.Fatalf("claimed %d (%v); want 5", len(jobs), err)
			}
			results := make([]webhooks.AttemptResult, len(jobs))
			for k, j := range jobs {
				results[k] = webhooks.AttemptResult{DeliveryID: j.DeliveryID, WebhookID: j.WebhookID, AttemptedAt: time.Now(),
					Success: k < 3, Duration: time.Millisecond, Response: webhooks.Response{StatusCode: 200}}
				if k >= 3 {
					results[k].Response.StatusCode, results[k].FailureReason = 500, "HTTP 500"
				}
			}
			if err := a.RecordAttempts(ctx, results); err != nil {
				t.Fatal(err)
			}
			deleted := make([]int64, 4)
			errs := make([]error, 4)
			race(4, func(i int) {
				deleted[i], errs[i] = []*store.DB{a, b}[i%2].ClearHistory(ctx, shop, w.ID, time.Time{}, webhooks.StatusFailed)
			})
			if err := cmpErrs(errs); err != nil {
				t.Fatal(err)
			}
			if n := deleted[0] + deleted[1] + deleted[2] + deleted[3]; n != 2 {
				t.Fatalf("round %d: clears deleted %v; want 2 in all", round, deleted)
			}
			st, err := a.WebhookStats(ctx, shop, w.ID, time.Now().Add(-time.Hour), time.Now().Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if want := int64(3 * round); st.TotalDeliveries != want || st.SuccessCount != want || st.FailureCount != 0 {
				t.Fatalf("round %d: stats after the clears: %d attempts, %d succeeded, %d failed; want %d, %d, 0",
					round, st.TotalDeliveries, st.SuccessCount, st.FailureCount, want, want)
			}
		}
	})
}

// A publish that read a webhook before it was stopped or deleted may
// queue deliveries after the stop cancelled what was queued (PostgreSQL).
// Such rows, made here directly, are never sent: a claim cancels them, or
// deletes them with their webhook, and so does recording their attempt.
func TestRowsOfStoppedOrDeletedWebhooksAreNotSent(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, dsn string) {
		a, _, shop := twoReplicas(t, dsn)
		ctx := context.Background()
		stopped := storetest.MustCreateWebhook(t, a, shop, "https://example.com/stopped", time.Now(), "order.created")
		deleted := storetest.MustCreateWebhook(t, a, shop, "https://example.com/deleted", time.Now(), "order.created")
		live := storetest.MustCreateWebhook(t, a, shop, "https://example.com/live", time.Now(), "order.created")
		if _, err := a.Publish(ctx, shop, []webhooks.PublishInput{{Event: "order.created"}, {Event: "order.created"}}); err != nil {
			t.Fatal(err)
		}
		// The stop and the delete commit after the publish, without
		// touching its rows, as when they raced it.
		raw := func(query string, args ...any) {
			t.Helper()
			if err := a.WriteForTest(ctx, func(tx *store.Tx) error { _, err := tx.ExecContext(ctx, query, args...); return err }); err != nil {
				t.Fatal(err)
			}
		}
		raw(`UPDATE webhooks SET is_active = FALSE WHERE id = $1`, stopped.ID)
		raw(`DELETE FROM webhooks WHERE id = $1`, deleted.ID)

		jobs, err := a.ClaimDeliveries(ctx, webhooks.Claim{Limit: 10, LeaseFor: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range jobs {
			if j.WebhookID != live.ID {
				t.Errorf("claimed a delivery to %s; want only the live webhook's", j.URL)
			}
		}
		if len(jobs) != 2 {
			t.Fatalf("claimed %d; want the live webhook's 2", len(jobs))
		}
		ds, total, err := a.FindDeliveries(ctx, webhooks.DeliveryFilter{ShopID: shop, WebhookID: stopped.ID})
		if err != nil || total != 2 {
			t.Fatalf("stopped webhook: %d deliveries (%v); want its 2, cancelled", total, err)
		}
		for _, d := range ds {
			if d.Status != webhooks.StatusFailed || d.FailureReason != webhooks.FailureWebhookDisabled {
				t.Errorf("stopped webhook's delivery: %s %q; want failed %q", d.Status, d.FailureReason, webhooks.FailureWebhookDisabled)
			}
		}
		wantNone(t, a, shop, deleted.ID)
		if _, total, _ := a.FindDeliveries(ctx, webhooks.DeliveryFilter{ShopID: shop, Status: webhooks.StatusPending}); total != 2 {
			t.Fatalf("%d pending; want the live webhook's 2, leased", total)
		}

		// The live webhook is deleted while its attempts are in flight
		// and their results come after: nothing of it stays.
		raw(`DELETE FROM webhooks WHERE id = $1`, live.ID)
		results := make([]webhooks.AttemptResult, len(jobs))
		for i, j := range jobs {
			results[i] = webhooks.AttemptResult{DeliveryID: j.DeliveryID, WebhookID: j.WebhookID, Success: true, AttemptedAt: time.Now(),
				Response: webhooks.Response{StatusCode: 200}}
		}
		if err := a.RecordAttempts(ctx, results); err != nil {
			t.Fatal(err)
		}
		wantNone(t, a, shop, live.ID)
	})
}

// wantNone fails the test unless the webhook has no deliveries left,
// queued or finished.
func wantNone(t *testing.T, db *store.DB, shop, webhookID string) {
	t.Helper()
	for _, status := range []webhooks.DeliveryStatus{"", webhooks.StatusPending} {
		_, total, err := db.FindDeliveries(context.Background(), webhooks.DeliveryFilter{ShopID: shop, WebhookID: webhookID, Status: status})
		if err != nil || total != 0 {
			t.Fatalf("deleted webhook %s: %d deliveries %q left (%v); want none", webhookID, total, status, err)
		}
	}
}

// A stop racing a publish of the same shop: the publish has read the
// webhook as active and is about to hand its delivery to its engine when
// another replica stops the webhook. The stop waits for the publish and
// then cancels its delivery; it must not commit first and leave the
// publish to queue (and send) a delivery for a stopped webhook.
func TestAStopWaitsForAPublishThatReadTheWebhook(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, dsn string) {
		a, h, _ := openWithHandoff(t, dsn, "s")
		b := openStore(t, dsn, store.Options{})
		t.Cleanup(func() { b.Close() })
		ctx := context.Background()
		w := storetest.MustCreateWebhook(t, a, "s", "https://example.com/hook", time.Now(), "order.created")
		reserving, release := make(chan struct{}), make(chan struct{})
		var once sync.Once
		open := func() { once.Do(func() { close(release) }) }
		t.Cleanup(open)
		h.mu.Lock()
		h.room[w.ID] = true
		h.onReserve = func() { close(reserving); <-release }
		h.mu.Unlock()

		published := make(chan error, 1)
		go func() {
			_, err := a.Publish(ctx, "s", []webhooks.PublishInput{{Event: "order.created"}})
			published <- err
		}()
		<-reserving // the publish has read the webhook as active
		stopped := make(chan error, 1)
		go func() {
			off := false
			_, err := b.UpdateWebhook(ctx, "s", w.ID, webhooks.WebhookUpdate{IsActive: &off})
			stopped <- err
		}()
		select {
		case err := <-stopped:
			open()
			if err == nil {
				err = <-published
			}
			t.Fatalf("the stop committed while a publish that read the webhook was under way (publish: %v)", err)
		case <-time.After(300 * time.Millisecond): // waiting, as it should
		}
		open()
		if err := <-published; err != nil {
			t.Fatal(err)
		}
		if err := <-stopped; err != nil {
			t.Fatal(err)
		}
		if _, n, _ := b.FindDeliveries(ctx, webhooks.DeliveryFilter{ShopID: "s", Status: webhooks.StatusPending}); n != 0 {
			t.Fatalf("%d deliveries pending for the stopped webhook; want the published one cancelled", n)
		}
		ds, _, err := b.FindDeliveries(ctx, webhooks.DeliveryFilter{ShopID: "s"})
		if err != nil || len(ds) != 1 || ds[0].FailureReason != webhooks.FailureWebhookDisabled {
			t.Fatalf("deliveries %+v (%v); want the published one cancelled (%q)", ds, err, webhooks.FailureWebhookDisabled)
		}
	})
}

// TestResultsAtOnceOfManyWebhooksAllLand: two replicas record results of
// the same webhooks at once, one delivery a call, in opposite orders. A
// writer's transaction holds several such calls; on PostgreSQL each one
// locked its webhook's row as it came, so two transactions could lock
// the same rows in opposite orders (a soak saw "deadlock detected" in
// recording attempts between two replicas). A write a deadlock aborts
// runs again, so the log tells.
func TestResultsAtOnceOfManyWebhooksAllLand(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, dsn string) {
		var logs storetest.LogBuffer
		opts := store.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}
		a, b := openStore(t, dsn, opts), openStore(t, dsn, opts)
		t.Cleanup(func() { a.Close(); b.Close() })
		const shop = "s"
		storetest.MustCreateShop(t, a, shop, time.Now())
		ctx := context.Background()
		const hooks, events = 8, 30
		for range hooks {
			storetest.MustCreateWebhook(t, a, shop, "https://example.com/hook", time.Now(), "order.created")
		}
		in := make([]webhooks.PublishInput, events)
		for k := range in {
			in[k].Event = "order.created"
		}
		if _, err := a.Publish(ctx, shop, in); err != nil {
			t.Fatal(err)
		}
		jobs, err := a.ClaimDeliveries(ctx, webhooks.Claim{Limit: hooks * events, LeaseFor: time.Hour})
		if err != nil || len(jobs) != hooks*events {
			t.Fatalf("claimed %d (%v); want %d", len(jobs), err, hooks*events)
		}
		// Replica a records them by webhook id upwards, b downwards: each
		// takes every other delivery, 16 calls at a time.
		slices.SortFunc(jobs, func(x, y *webhooks.Job) int { return strings.Compare(x.WebhookID, y.WebhookID) })
		var mine [2][]*webhooks.Job
		for i, j := range jobs {
			mine[i%2] = append(mine[i%2], j)
		}
		slices.Reverse(mine[1])
		errs := make([]error, 32)
		race(32, func(g int) {
			db, todo := []*store.DB{a, b}[g%2], mine[g%2]
			for k := g / 2; k < len(todo) && errs[g] == nil; k += 16 {
				j := todo[k]
				errs[g] = db.RecordAttempts(ctx, []webhooks.AttemptResult{{DeliveryID: j.DeliveryID, WebhookID: j.WebhookID,
					Success: true, AttemptedAt: time.Now(), Duration: time.Millisecond, Response: webhooks.Response{StatusCode: 200}}})
			}
		})
		if err := cmpErrs(errs); err != nil {
			t.Fatal(err)
		}
		_, total, err := a.FindDeliveries(ctx, webhooks.DeliveryFilter{ShopID: shop, Status: webhooks.StatusSuccess})
		if err != nil || total != hooks*events {
			t.Fatalf("%d deliveries succeeded (%v); want all %d", total, err, hooks*events)
		}
		if strings.Contains(logs.String(), "deadlock") {
			t.Fatalf("the recorders deadlocked; logs:\n%s", logs.String())
		}
	})
}
