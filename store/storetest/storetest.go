// Package storetest is the conformance suite of the store: one set of tests
// that every database the store supports must pass.
package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	webhooks "github.com/pancake-pos/pancake-webhooks"
	"github.com/pancake-pos/pancake-webhooks/store"
)

// Clock is a settable clock for tests.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock at t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Add moves the clock forward.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// OpenFunc opens a fresh, empty store using clock.
type OpenFunc func(t *testing.T, clock *Clock) *store.DB

type testBundle struct {
	db    *store.DB
	clock *Clock
	shop  string
	ctx   context.Context
}

// Run runs the conformance suite against the stores open makes.
func Run(t *testing.T, open OpenFunc) {
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		clock := NewClock(time.Date(2026, 11, 26, 10, 30, 0, 0, time.UTC))
		db := open(t, clock)
		b := &testBundle{db: db, clock: clock, shop: "shop-a", ctx: context.Background()}
		MustCreateShop(t, db, b.shop, clock.Now())
		return b
	}

	t.Run("Shops", func(t *testing.T) { t.Parallel(); testShops(t, setup) })
	t.Run("Webhooks", func(t *testing.T) { t.Parallel(); testWebhooks(t, setup) })
	t.Run("Publish", func(t *testing.T) { t.Parallel(); testPublish(t, setup) })
	t.Run("Queue", func(t *testing.T) { t.Parallel(); testQueue(t, setup) })
	t.Run("Deliveries", func(t *testing.T) { t.Parallel(); testDeliveries(t, setup) })
	t.Run("Maintenance", func(t *testing.T) { t.Parallel(); testMaintenance(t, setup) })
}

// MustCreateShop creates a shop and returns its API key.
func MustCreateShop(tb testing.TB, db *store.DB, id string, now time.Time) string {
	tb.Helper()
	key, k := webhooks.NewAPIKey(id, now)
	if err := db.CreateShop(context.Background(), &webhooks.Shop{ID: id, CreatedAt: now}, k); err != nil {
		tb.Fatalf("CreateShop(%s): %v", id, err)
	}
	return key
}

// MustCreateWebhook creates an active webhook of shop for events.
func MustCreateWebhook(tb testing.TB, db *store.DB, shop, url string, now time.Time, events ...string) *webhooks.Webhook {
	tb.Helper()
	w := &webhooks.Webhook{
		ID: webhooks.NewID(webhooks.PrefixWebhook, now), ShopID: shop, URL: url, Events: events, IsActive: true,
		Secret: webhooks.NewSecret(), CreatedAt: now, UpdatedAt: now,
	}
	if err := db.CreateWebhook(context.Background(), w, 100); err != nil {
		tb.Fatalf("CreateWebhook: %v", err)
	}
	return w
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := webhooks.ErrorCode(err); got != code {
		t.Fatalf("error code = %q (%v), want %q", got, err, code)
	}
}

func mustPublish(t *testing.T, b *testBundle, event string, n int) []webhooks.PublishResult {
	t.Helper()
	in := make([]webhooks.PublishInput, n)
	for i := range in {
		in[i] = webhooks.PublishInput{Event: event, Data: json.RawMessage(fmt.Sprintf(`{"n":%d}`, i))}
	}
	res, err := b.db.Publish(b.ctx, b.shop, in)
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	return res
}

func testShops(t *testing.T, setup func(*testing.T) *testBundle) {
	t.Run("AuthenticateByKeyHash", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		key := MustCreateShop(t, b.db, "shop-b", b.clock.Now())
		shop, err := b.db.Authenticate(b.ctx, webhooks.HashAPIKey(key))
		if err != nil || shop != "shop-b" {
			t.Fatalf("Authenticate = %q, %v; want shop-b", shop, err)
		}
		_, err = b.db.Authenticate(b.ctx, webhooks.HashAPIKey("pk_wrong"))
		wantCode(t, err, webhooks.EUNAUTHORIZED)
	})
	t.Run("DuplicateShopConflicts", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, k := webhooks.NewAPIKey(b.shop, b.clock.Now())
		wantCode(t, b.db.CreateShop(b.ctx, &webhooks.Shop{ID: b.shop}, k), webhooks.ECONFLICT)
	})
	t.Run("RevokedKeyStopsWorking", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		key, k := webhooks.NewAPIKey(b.shop, b.clock.Now())
		if err := b.db.CreateAPIKey(b.ctx, k); err != nil {
			t.Fatal(err)
		}
		if _, err := b.db.Authenticate(b.ctx, webhooks.HashAPIKey(key)); err != nil {
			t.Fatalf("new key: %v", err)
		}
		if err := b.db.RevokeAPIKey(b.ctx, b.shop, k.ID); err != nil {
			t.Fatal(err)
		}
		_, err := b.db.Authenticate(b.ctx, webhooks.HashAPIKey(key))
		wantCode(t, err, webhooks.EUNAUTHORIZED)
		wantCode(t, b.db.RevokeAPIKey(b.ctx, b.shop, k.ID), webhooks.ENOTFOUND)
		_, k2 := webhooks.NewAPIKey("nope", b.clock.Now())
		wantCode(t, b.db.CreateAPIKey(b.ctx, k2), webhooks.ENOTFOUND)
	})
}

// hearIDs returns a hook that notes the ids it is called with, and the
// function that returns them, once each, in the order first heard (on
// PostgreSQL a store hears its own announcements twice).
func hearIDs() (hear func(string), heard func() []string) {
	var mu sync.Mutex
	var got []string
	hear = func(id string) {
		mu.Lock()
		defer mu.Unlock()
		if !slices.Contains(got, id) {
			got = append(got, id)
		}
	}
	heard = func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
	return hear, heard
}

func testWebhooks(t *testing.T, setup func(*testing.T) *testBundle) {
	t.Run("StoppingAWebhookIsAnnounced", func(t *testing.T) {
		t.Parallel()
		// The dispatcher forgets what it claimed of a webhook disabled or
		// deleted: the store tells it, after the commit, and only then. On
		// PostgreSQL it hears its own stops twice (itself, and NOTIFY).
		b := setup(t)
		hear, heard := hearIDs()
		b.db.OnWebhookStopped(hear)
		w1 := MustCreateWebhook(t, b.db, b.shop, "https://a.example/1", b.clock.Now(), "order.created")
		w2 := MustCreateWebhook(t, b.db, b.shop, "https://a.example/2", b.clock.Now(), "order.created")
		f, tr := false, true
		desc := "renamed"
		update := func(upd webhooks.WebhookUpdate) {
			t.Helper()
			if _, err := b.db.UpdateWebhook(b.ctx, b.shop, w1.ID, upd); err != nil {
				t.Fatal(err)
			}
		}
		update(webhooks.WebhookUpdate{Description: &desc})
		update(webhooks.WebhookUpdate{IsActive: &tr})
		if ids := heard(); len(ids) != 0 {
			t.Fatalf("announced %v for updates that stop nothing", ids)
		}
		update(webhooks.WebhookUpdate{IsActive: &f})
		update(webhooks.WebhookUpdate{IsActive: &f}) // already inactive: nothing to stop
		if err := b.db.DeleteWebhook(b.ctx, b.shop, w2.ID); err != nil {
			t.Fatal(err)
		}
		if err := b.db.DeleteWebhook(b.ctx, b.shop, w2.ID); webhooks.ErrorCode(err) != webhooks.ENOTFOUND {
			t.Fatalf("delete twice: %v", err)
		}
		if want, ids := []string{w1.ID, w2.ID}, heard(); !slices.Equal(ids, want) {
			t.Errorf("stopped webhooks announced: %v; want %v (the disable, the delete)", ids, want)
		}
	})
	t.Run("ChangingTheURLOrSecretIsAnnounced", func(t *testing.T) {
		t.Parallel()
		// The dispatcher gives back what it claimed of a webhook whose URL
		// or secret changed: the store tells it after the commit, and only
		// for those changes. On PostgreSQL it hears its own twice.
		b := setup(t)
		hear, heard := hearIDs()
		b.db.OnWebhookChanged(hear)
		w1 := MustCreateWebhook(t, b.db, b.shop, "https://a.example/1", b.clock.Now(), "order.created")
		w2 := MustCreateWebhook(t, b.db, b.shop, "https://a.example/2", b.clock.Now(), "order.created")
		desc, same, moved := "renamed", w1.URL, "https://b.example/1"
		for _, upd := range []webhooks.WebhookUpdate{{Description: &desc}, {URL: &same}, {Events: []webhooks.EventType{"order.updated"}}} {
			if _, err := b.db.UpdateWebhook(b.ctx, b.shop, w1.ID, upd); err != nil {
				t.Fatal(err)
			}
		}
		if ids := heard(); len(ids) != 0 {
			t.Fatalf("announced %v for updates that change neither URL nor secret", ids)
		}
		if _, err := b.db.UpdateWebhook(b.ctx, b.shop, w1.ID, webhooks.WebhookUpdate{URL: &moved}); err != nil {
			t.Fatal(err)
		}
		if _, err := b.db.RotateSecret(b.ctx, b.shop, w2.ID, webhooks.NewSecret(), time.Hour); err != nil {
			t.Fatal(err)
		}
		if want, ids := []string{w1.ID, w2.ID}, heard(); !slices.Equal(ids, want) {
			t.Errorf("changed webhooks announced: %v; want %v (the URL, the rotation)", ids, want)
		}
	})
	t.Run("CreateFindListUpdateDelete", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		w1 := MustCreateWebhook(t, b.db, b.shop, "https://a.example/1", b.clock.Now(), "order.created")
		b.clock.Add(time.Millisecond)
		w2 := MustCreateWebhook(t, b.db, b.shop, "https://a.example/2", b.clock.Now(), "order.updated", "order.created")
		list, err := b.db.ListWebhooks(b.ctx, b.shop)
		if err != nil || len(list) != 2 || list[0].ID != w1.ID || list[1].ID != w2.ID {
			t.Fatalf("ListWebhooks = %v, %v; want [w1 w2] oldest first", list, err)
		}
		got, err := b.db.FindWebhook(b.ctx, b.shop, w2.ID)
		if err != nil || got.URL != w2.URL || got.Secret != w2.Secret || len(got.Events) != 2 || !got.IsActive {
			t.Fatalf("FindWebhook = %+v, %v", got, err)
		}
		if hs := got.HealthStatus(); hs.Status != webhooks.HealthHealthy || hs.SuccessRate != 100 {
			t.Fatalf("new webhook health = %+v, want healthy 100", hs)
		}
		_, err = b.db.FindWebhook(b.ctx, "other-shop", w2.ID)
		wantCode(t, err, webhooks.ENOTFOUND)

		desc := "orders"
		b.clock.Add(time.Second)
		up, err := b.db.UpdateWebhook(b.ctx, b.shop, w1.ID, webhooks.WebhookUpdate{Description: &desc})
		if err != nil || up.Description != desc || up.URL != w1.URL || !up.UpdatedAt.Equal(b.clock.Now()) {
			t.Fatalf("UpdateWebhook = %+v, %v", up, err)
		}
		_, err = b.db.UpdateWebhook(b.ctx, "other-shop", w1.ID, webhooks.WebhookUpdate{Description: &desc})
		wantCode(t, err, webhooks.ENOTFOUND)

		if err := b.db.DeleteWebhook(b.ctx, b.shop, w1.ID); err != nil {
			t.Fatal(err)
		}
		wantCode(t, b.db.DeleteWebhook(b.ctx, b.shop, w1.ID), webhooks.ENOTFOUND)
		list, _ = b.db.ListWebhooks(b.ctx, b.shop)
		if len(list) != 1 {
			t.Fatalf("after delete: %d webhooks, want 1", len(list))
		}
	})
	t.Run("LimitPerShopConflicts", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for range 2 {
			w := &webhooks.Webhook{ID: webhooks.NewID(webhooks.PrefixWebhook, b.clock.Now()), ShopID: b.shop, URL: "https://x.example",
				Events: []string{"order.created"}, IsActive: true, Secret: webhooks.NewSecret()}
			if err := b.db.CreateWebhook(b.ctx, w, 2); err != nil {
				t.Fatal(err)
			}
		}
		w := &webhooks.Webhook{ID: webhooks.NewID(webhooks.PrefixWebhook, b.clock.Now()), ShopID: b.shop, URL: "https://x.example",
			Events: []string{"order.created"}, Secret: webhooks.NewSecret()}
		wantCode(t, b.db.CreateWebhook(b.ctx, w, 2), webhooks.ECONFLICT)
	})
	t.Run("RotateSecretKeepsPreviousForOverlap", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		w := MustCreateWebhook(t, b.db, b.shop, "https://a.example", b.clock.Now(), "order.created")
		next := webhooks.NewSecret()
		got, err := b.db.RotateSecret(b.ctx, b.shop, w.ID, next, time.Hour)
		if err != nil || got.Secret != next || got.PreviousSecret != w.Secret {
			t.Fatalf("RotateSecret = %+v, %v", got, err)
		}
		if s := got.SigningSecrets(b.clock.Now()); len(s) != 2 {
			t.Fatalf("during overlap: %d secrets, want 2", len(s))
		}
		if s := got.SigningSecrets(b.clock.Now().Add(2 * time.Hour)); len(s) != 1 || s[0] != next {
			t.Fatalf("after overlap: %v, want only the new secret", s)
		}
	})
}

func testPublish(t *testing.T, setup func(*testing.T) *testBundle) {
	t.Run("QueuesOneDeliveryPerSubscribedActiveWebhook", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		MustCreateWebhook(t, b.db, b.shop, "https://a.example/1", b.clock.Now(), "order.created")
		MustCreateWebhook(t, b.db, b.shop, "https://a.example/2", b.clock.Now(), "order.created", "order.updated")
		MustCreateWebhook(t, b.db, b.shop, "https://a.example/3", b.clock.Now(), "customer.created")
		off := MustCreateWebhook(t, b.db, b.shop, "https://a.example/4", b.clock.Now(), "order.created")
		f := false
		if _, err := b.db.UpdateWebhook(b.ctx, b.shop, off.ID, webhooks.WebhookUpdate{IsActive: &f}); err != nil {
			t.Fatal(err)
		}
		res := mustPublish(t, b, "order.created", 3)
		for _, r := range res {
			if r.Deliveries != 2 || !webhooks.ValidID(webhooks.PrefixEvent, r.EventID) {
				t.Fatalf("publish result %+v, want 2 deliveries and an evt_ id", r)
			}
		}
		ds, total, err := b.db.FindDeliveries(b.ctx, webhooks.DeliveryFilter{ShopID: b.shop, Status: webhooks.StatusPending, Limit: 100})
		if err != nil || total != 6 || len(ds) != 6 {
			t.Fatalf("pending = %d (%d), %v; want 6", len(ds), total, err)
		}
		var env webhooks.Envelope
		if err := json.Unmarshal(ds[0].Payload, &env); err != nil || env.ShopID != b.shop || env.Event != "order.created" {
			t.Fatalf("payload %s: %v", ds[0].Payload, err)
		}
		if res := mustPublish(t, b, "product.deleted", 1); res[0].Deliveries != 0 {
			t.Fatalf("unsubscribed event queued %d deliveries", res[0].Deliveries)
		}
	})
	t.Run("IdempotencyKeyGivesFirstAnswerFor24Hours", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		MustCreateWebhook(t, b.db, b.shop, "https://a.example/1", b.clock.Now(), "order.created")
		in := []webhooks.PublishInput{{Event: "order.created", Data: json.RawMessage(`{}`), IdempotencyKey: "k1"}}
		first, err := b.db.Publish(b.ctx, b.shop, in)
		if err != nil {
			t.Fatal(err)
		}
		b.clock.Add(23 * time.Hour)
		again, err := b.db.Publish(b.ctx, b.shop, in)
		if err != nil || again[0] != first[0] {
			t.Fatalf("replay = %+v, %v; want %+v", again, err, first)
		}
		_, total, _ := b.db.FindDeliveries(b.ctx, webhooks.DeliveryFilter{ShopID: b.shop, Status: webhooks.StatusPending})
		if total != 1 {
			t.Fatalf("replay queued more: %d pending, want 1", total)
		}
		// Same key in the same batch: one event.
		dup, err := b.db.Publish(b.ctx, b.shop, []webhooks.PublishInput{in[0], in[0]})
		if err != nil || dup[0] != first[0] || dup[1] != first[0] {
			t.Fatalf("batch replay = %+v, %v", dup, err)
		}
		b.clock.Add(2 * time.Hour)
		later, err := b.db.Publish(b.ctx, b.shop, in)
		if err != nil || later[0].EventID == first[0].EventID {
			t.Fatalf("after 24h = %+v, %v; want a new event", later, err)
		}
		// Keys are per shop.
		MustCreateShop(t, b.db, "shop-b", b.clock.Now())
		other, err := b.db.Publish(b.ctx, "shop-b", in)
		if err != nil || other[0].EventID == later[0].EventID {
			t.Fatalf("other shop = %+v, %v", other, err)
		}
	})
	t.Run("ConcurrentPublishesAllCommit", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		MustCreateWebhook(t, b.db, b.shop, "https://a.example/1", b.clock.Now(), "order.created")
		var wg sync.WaitGroup
		errs := make(chan error, 40)
		for range 40 {
			wg.Go(func() {
				_, err := b.db.Publish(b.ctx, b.shop, []webhooks.PublishInput{{Event: "order.created"}})
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		_, total, _ := b.db.FindDeliveries(b.ctx, webhooks.DeliveryFilter{ShopID: b.shop, Status: webhooks.StatusPending})
		if total != 40 {
			t.Fatalf("%d pending, want 40", total)
		}
	})
}

func success(j *webhooks.Job, at time.Time) webhooks.AttemptResult {
	return webhooks.AttemptResult{DeliveryID: j.DeliveryID, WebhookID: j.WebhookID, Success: true, AttemptedAt: at,
		Duration: 12 * time.Millisecond, Response: webhooks.Response{StatusCode: 200, Headers: map[string]string{"X": "y"}, Body: "ok"}}
}

func failure(j *webhooks.Job, at time.Time, next *time.Time) webhooks.AttemptResult {
	return webhooks.AttemptResult{DeliveryID: j.DeliveryID, WebhookID: j.WebhookID, AttemptedAt: at, Duration: 30 * time.Millisecond,
		Response: webhooks.Response{StatusCode: 500}, FailureReason: "HTTP 500", NextAttemptAt: next}
}

// publishAndClaim creates a webhook for order.created, publishes n such
// events and claims their n deliveries.
func publishAndClaim(t *testing.T, b *testBundle, n int) (*webhooks.Webhook, []*webhooks.Job) {
	t.Helper()
	w := MustCreateWebhook(t, b.db, b.shop, "https://a.example/1", b.clock.Now(), "order.created")
	mustPublish(t, b, "order.created", n)
	jobs, err := b.db.ClaimDeliveries(b.ctx, webhooks.Claim{Limit: n + 10, LeaseFor: time.Minute})
	if err != nil || len(jobs) != n {
		t.Fatalf("claim = %d, %v; want %d", len(jobs), err, n)
	}
	return w, jobs
}

func testQueue(t *testing.T, setup func(*testing.T) *testBundle) {
	// A lease is renewed only while it is still the job's own: not once
	// the delivery is finished, nor once it ran out and was taken again.
	t.Run("RenewLease", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		_, jobs := publishAndClaim(t, b, 3)
		until := b.clock.Now().Add(time.Hour)
		if held, err := b.db.RenewLease(b.ctx, jobs[0], until); err != nil || !held || !jobs[0].LeasedUntil.Equal(until) {
			t.Fatalf("renew a held lease: %v, %v, until %v; want it renewed to %v", held, err, jobs[0].LeasedUntil, until)
		}
		// The other two run out; the renewed one stays taken.
		b.clock.Add(2 * time.Minute)
		again, err := b.db.ClaimDeliveries(b.ctx, webhooks.Claim{Limit: 10, LeaseFor: time.Minute})
		if err != nil || len(again) != 2 {
			t.Fatalf("claim after the leases ran out = %d, %v; want the 2 not renewed", len(again), err)
		}
		for _, j := range again {
			if j.DeliveryID == jobs[0].DeliveryID {
				t.Fatalf("the renewed delivery was claimed again")
			}
		}
		if held, err := b.db.RenewLease(b.ctx, jobs[1], until); err != nil || held {
			t.Errorf("renew a lease taken again by another claim: %v, %v; want false", held, err)
		}
		if err := b.db.RecordAttempts(b.ctx, []webhooks.AttemptResult{success(again[0], b.clock.Now())}); err != nil {
			t.Fatal(err)
		}
		if held, err := b.db.RenewLease(b.ctx, again[0], until); err != nil || held {
			t.Errorf("renew the lease of a finished delivery: %v, %v; want false", held, err)
		}
	})
	t.Run("ClaimLeasesAndRecordFinishes", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		w, jobs := publishAndClaim(t, b, 3)
		j := jobs[0]
		if j.URL != w.URL || len(j.Secrets) != 1 || j.Secrets[0] != w.Secret || j.Attempt != 1 || len(j.Payload) == 0 {
			t.Fatalf("job = %+v", j)
		}
		if again, _ := b.db.ClaimDeliveries(b.ctx, webhooks.Claim{Limit: 10, LeaseFor: time.Minute}); len(again) != 0 {
			t.Fatalf("leased rows claimed again: %d", len(again))
		}
		now := b.clock.Now()
		next := now.Add(5 * time.Second)
		err := b.db.RecordAttempts(b.ctx, []webhooks.AttemptResult{success(jobs[0], now), failure(jobs[1], now, &next), failure(jobs[2], now, nil)})
		if err != nil {
			t.Fatal(err)
		}
		d, err := b.db.FindDelivery(b.ctx, b.shop, jobs[0].DeliveryID)
		if err != nil || d.Status != webhooks.StatusSuccess || d.Response.StatusCode != 200 || d.DurationMS != 12 || d.Response.Headers["X"] != "y" {
			t.Fatalf("success row = %+v, %v", d, err)
		}
		d, _ = b.db.FindDelivery(b.ctx, b.shop, jobs[1].DeliveryID)
		if d.Status != webhooks.StatusFailed || d.NextRetryAt == nil || !d.NextRetryAt.Equal(next) || d.FailureReason != "HTTP 500" {
			t.Fatalf("failed row = %+v", d)
		}
		d, _ = b.db.FindDelivery(b.ctx, b.shop, jobs[2].DeliveryID)
		if d.NextRetryAt != nil {
			t.Fatalf("last attempt has next_retry_at %v", d.NextRetryAt)
		}
		pending, total, _ := b.db.FindDeliveries(b.ctx, webhooks.DeliveryFilter{ShopID: b.shop, Status: webhooks.StatusPending})
		if total != 1 || pending[0].Attempt != 2 || pending[0].Trigger != webhooks.TriggerRetry || pending[0].RetryOf != jobs[1].DeliveryID || !pending[0].ScheduledAt.Equal(next) {
			t.Fatalf("retry row = %+v (%d)", pending, total)
		}
		if none, _ := b.db.ClaimDeliveries(b.ctx, webhooks.Claim{Limit: 10, LeaseFor: time.Minute}); len(none) != 0 {
			t.Fatalf("retry claimed before due")
		}
		if due, _ := b.db.NextDue(b.ctx); !due.Equal(next) {
			t.Fatalf("NextDue = %v, want %v", due, next)
		}
		b.clock.Add(5 * time.Second)
		if jobs, _ := b.db.ClaimDeliveries(b.ctx, webhooks.Claim{Limit: 10, LeaseFor: time.Minute}); len(jobs) != 1 || jobs[0].Attempt != 2 {
			t.Fatalf("due retry not claimed: %v", jobs)
		}
		got, _ := b.db.FindWebhook(b.ctx, b.shop, w.ID)
		hs := got.HealthStatus()
		if got.LastTriggeredAt == nil || hs.ConsecutiveFailures != 2 || hs.SuccessRate != 33.33 || hs.Status != webhooks.HealthError {
			t.Fatalf("health = %+v, last triggered %v", hs, got.LastTriggeredAt)
		}
		// A second record of the same attempt (expired lease) changes nothing.
		if err := b.db.RecordAttempts(b.ctx, []webhooks.AttemptResult{success(jobs[1], now)}); err != nil {
			t.Fatal(err)
		}
		d, _ = b.db.FindDelivery(b.ctx, b.shop, jobs[1].DeliveryID)
		if d.Status != webhooks.StatusFailed {
			t.Fatalf("finished row overwritten: %+v", d)
		}
	})
	t.Run("RecordManyAttemptsAtOnce", func(t *testing.T) {
		// More results than one statement takes on SQLite (64), in
		// statements of several sizes, with a second result for one
		// delivery (the first one counts) and one for a delivery that an
		// earlier record finished (it changes nothing).
		t.Parallel()
		b := setup(t)
		w, jobs := publishAndClaim(t, b, 91)
		now := b.clock.Now()
		if err := b.db.RecordAttempts(b.ctx, []webhooks.AttemptResult{success(jobs[90], now)}); err != nil {
			t.Fatal(err)
		}
		results := make([]webhooks.AttemptResult, 0, 92)
		for i, j := range jobs[:90] {
			r := success(j, now)
			if i%3 == 0 {
				r = failure(j, now, nil)
			}
			r.Duration = time.Duration(i+1) * time.Millisecond
			results = append(results, r)
			if i == 3 { // in the same statement
				results = append(results, success(j, now))
			}
		}
		results = append(results, failure(jobs[90], now, nil))
		if err := b.db.RecordAttempts(b.ctx, results); err != nil {
			t.Fatal(err)
		}
		for i, j := range jobs {
			d, err := b.db.FindDelivery(b.ctx, b.shop, j.DeliveryID)
			if err != nil {
				t.Fatal(err)
			}
			want, dur := webhooks.StatusSuccess, int64(i+1)
			switch {
			case i == 90:
				dur = 12 // the earlier record's
			case i%3 == 0:
				want = webhooks.StatusFailed
			}
			if d.Status != want || d.DurationMS != dur {
				t.Errorf("delivery %d: %s in %d ms; want %s in %d ms", i, d.Status, d.DurationMS, want, dur)
			}
		}
		st, err := b.db.WebhookStats(b.ctx, b.shop, w.ID, now.Add(-time.Hour), now.Add(time.Hour))
		if err != nil || st.TotalDeliveries != 91 || st.SuccessCount != 61 {
			t.Fatalf("stats = %d deliveries, %d successful, %v; want 91, 61", st.TotalDeliveries, st.SuccessCount, err)
		}
	})
	t.Run("RecordAttemptsOfManyWebhooksAtOnce", func(t *testing.T) {
		// 21 webhooks' attempts in one call (on SQLite, statements of 16,
		// 4 and 1 webhooks), after a first attempt of each: a success
		// then failures keeps the streak after the success; failures only
		// add to the streak, keep when it began and the last success; a
		// failure then successes ends it; successes only keep the last
		// failure.
		t.Parallel()
		b := setup(t)
		var whs []*webhooks.Webhook
		for i := range 21 {
			whs = append(whs, MustCreateWebhook(t, b.db, b.shop, fmt.Sprintf("https://a.example/%d", i), b.clock.Now(), "order.created"))
		}
		mustPublish(t, b, "order.created", 4)
		jobs, err := b.db.ClaimDeliveries(b.ctx, webhooks.Claim{Limit: 100, LeaseFor: time.Minute})
		if err != nil || len(jobs) != 84 {
			t.Fatalf("claim = %d, %v; want 84", len(jobs), err)
		}
		byWebhook := map[string][]*webhooks.Job{}
		for _, j := range jobs {
			byWebhook[j.WebhookID] = append(byWebhook[j.WebhookID], j)
		}
		t0 := b.clock.Now().Truncate(time.Second)
		at := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }
		var first, rest []webhooks.AttemptResult
		for k, w := range whs {
			js := byWebhook[w.ID]
			if k%6 == 1 {
				first = append(first, success(js[0], at(0)))
			} else {
				first = append(first, failure(js[0], at(0), nil))
			}
			pattern := [3]bool{true, false, false} // success, failure, failure
			switch k % 3 {
			case 1:
				pattern = [3]bool{}
			case 2:
				pattern = [3]bool{false, true, true}
			}
			if k%6 == 5 {
				pattern = [3]bool{true, true, true}
			}
			for n, ok := range pattern {
				r := failure(js[n+1], at(n+1), nil)
				r.FailureReason = fmt.Sprintf("HTTP 50%d", n+1)
				if ok {
					r = success(js[n+1], at(n+1))
				}
				rest = append(rest, r)
			}
		}
		if err := b.db.RecordAttempts(b.ctx, first); err != nil {
			t.Fatal(err)
		}
		if err := b.db.RecordAttempts(b.ctx, rest); err != nil {
			t.Fatal(err)
		}
		ptr := func(t time.Time) *time.Time { return &t }
		for k, w := range whs {
			want := []webhooks.Health{
				{ConsecutiveFailures: 2, FailingSince: ptr(at(2)), LastSuccessAt: ptr(at(1)), LastFailureAt: ptr(at(3)), LastFailureReason: "HTTP 503"},
				{ConsecutiveFailures: 4, FailingSince: ptr(at(0)), LastFailureAt: ptr(at(3)), LastFailureReason: "HTTP 503"},
				{ConsecutiveFailures: 0, LastSuccessAt: ptr(at(3)), LastFailureAt: ptr(at(1)), LastFailureReason: "HTTP 501"},
			}[k%3]
			switch k % 6 {
			case 1: // a success first
				want.ConsecutiveFailures, want.FailingSince, want.LastSuccessAt = 3, ptr(at(1)), ptr(at(0))
			case 5: // successes only after the first failure
				want.LastFailureAt, want.LastFailureReason = ptr(at(0)), "HTTP 500"
			}
			got, err := b.db.FindWebhook(b.ctx, b.shop, w.ID)
			if err != nil {
				t.Fatal(err)
			}
			h := got.Health
			same := func(a, b *time.Time) bool { return a == nil && b == nil || a != nil && b != nil && a.Equal(*b) }
			if h.ConsecutiveFailures != want.ConsecutiveFailures || !same(h.FailingSince, want.FailingSince) ||
				!same(h.LastSuccessAt, want.LastSuccessAt) || !same(h.LastFailureAt, want.LastFailureAt) ||
				h.LastFailureReason != want.LastFailureReason || !got.IsActive {
				t.Errorf("webhook %d: health %+v, active %v; want %+v", k, h, got.IsActive, want)
			}
			st, err := b.db.WebhookStats(b.ctx, b.shop, w.ID, at(-3600), at(3600))
			wantOK := []int64{1, 0, 2}[k%3]
			switch k % 6 {
			case 1:
				wantOK++
			case 5:
				wantOK = 3
			}
			if err != nil || st.TotalDeliveries != 4 || st.SuccessCount != wantOK {
				t.Errorf("webhook %d: stats %d deliveries, %d successful, %v; want 4, %d", k, st.TotalDeliveries, st.SuccessCount, err, wantOK)
			}
		}
	})
	t.Run("ExpiredLeaseIsClaimedAgain", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		MustCreateWebhook(t, b.db, b.shop, "https://a.example/1", b.clock.Now(), "order.created")
		mustPublish(t, b, "order.created", 1)
		first, _ := b.db.ClaimDeliveries(b.ctx, webhooks.Claim{Limit: 10, LeaseFor: 30 * time.Second})
		b.clock.Add(31 * time.Second)
		again, err := b.db.ClaimDeliveries(b.ctx, webhooks.Claim{Limit: 10, LeaseFor: 30 * time.Second})
		if err != nil || len(first) != 1 || len(again) != 1 || again[0].DeliveryID != first[0].DeliveryID {
			t.Fatalf("reclaim = %v, %v", again, err)
		}
	})
	t.Run("ClaimSkipsExcludedWebhooks", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		w1 := MustCreateWebhook(t, b.db, b.shop, "https://a.example/1", b.clock.Now(), "order.created")
		w2 := MustCreateWebhook(t, b.db, b.shop, "https://a.example/2", b.clock.Now(), "order.created")
		mustPublish(t, b, "order.created", 5)
		jobs, _ := b.db.ClaimDeliveries(b.ctx, webhooks.Claim{Limit: 100, LeaseFor: time.Minute, Exclude: []string{w1.ID}})
		if len(jobs) != 5 {
			t.Fatalf("claimed %d, want 5", len(jobs))
		}
		for _, j := range jobs {
			if j.WebhookID != w2.ID {
				t.Fatalf("claimed a job of an excluded webhook")
			}
		}
	})
	t.Run("ClaimLooksPastAnExcludedBacklog", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		big := MustCreateWebhook(t, b.db, b.shop, "https://a.example/big", b.clock.Now(), "order.created")
		small := map[string]bool{}
		for i := range 2 {
			small[MustCreateWebhook(t, b.db, b.shop, fmt.Sprintf("https://a.example/%d", i), b.clock.Now(), "customer.created").ID] = true
		}
		mustPublish(t, b, "order.created", 1000) // far more than a claim's window
		b.clock.Add(time.Millisecond)
		mustPublish(t, b, "customer.created", 3)
		claim := webhooks.Claim{Limit: 10, LeaseFor: time.Minute, Exclude: []string{big.ID}, PerWebhook: 2}
		per := map[string]int{}
		for _, want := range []int{4, 2, 0} {
			jobs, err := b.db.ClaimDeliveries(b.ctx, claim)
			if err != nil || len(jobs) != want {
				t.Fatalf("claim = %d jobs, %v; want %d", len(jobs), err, want)
			}
			for _, j := range jobs {
				if !small[j.WebhookID] {
					t.Fatalf("claimed a delivery of %s", j.WebhookID)
				}
				per[j.WebhookID]++
			}
			if want == 4 && len(per) != 2 {
				t.Fatalf("first claim served %v; want 2 of each webhook", per)
			}
		}
		// Once the backlog's webhook is no longer excluded, its rows come
		// oldest first.
		jobs, err := b.db.ClaimDeliveries(b.ctx, webhooks.Claim{Limit: 5, LeaseFor: time.Minute})
		if err != nil || len(jobs) != 5 || jobs[0].WebhookID != big.ID {
			t.Fatalf("claim = %d jobs, %v", len(jobs), err)
		}
	})
	t.Run("ClaimVisitsWebhooksInTurn", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		big := MustCreateWebhook(t, b.db, b.shop, "https://a.example/big", b.clock.Now(), "order.created")
		for i := range 5 {
			MustCreateWebhook(t, b.db, b.shop, fmt.Sprintf("https://a.example/%d", i), b.clock.Now(), "customer.created")
		}
		mustPublish(t, b, "order.created", 200)
		b.clock.Add(time.Millisecond)
		mustPublish(t, b, "customer.created", 6) // 6 due at each of 5 webhooks
		claim := webhooks.Claim{Limit: 2, LeaseFor: time.Minute, Exclude: []string{big.ID}, PerWebhook: 2}
		var order []string
		for range 15 {
			jobs, err := b.db.ClaimDeliveries(b.ctx, claim)
			if err != nil || len(jobs) != 2 || jobs[0].WebhookID != jobs[1].WebhookID {
				t.Fatalf("claim = %v, %v; want 2 of one webhook", jobs, err)
			}
			order = append(order, jobs[0].WebhookID)
		}
		// Every webhook is served once before any is served again.
		for i := range order {
			if i >= 5 && order[i] != order[i-5] {
				t.Fatalf("not in turn: %v", order)
			}
			if slices.Contains(order[max(0, i-4):i], order[i]) {
				t.Fatalf("served twice in one round: %v", order)
			}
		}
		if jobs, _ := b.db.ClaimDeliveries(b.ctx, claim); len(jobs) != 0 {
			t.Fatalf("claimed %d more; every queued row was taken", len(jobs))
		}
	})
	t.Run("GoneDisablesWebhookAndCancelsQueued", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		w := MustCreateWebhook(t, b.db, b.shop, "https://a.example/1", b.clock.Now(), "order.created")
		mustPublish(t, b, "order.created", 3)
		jobs, _ := b.db.ClaimDeliveries(b.ctx, webhooks.Claim{Limit: 1, LeaseFor: time.Minute})
		r := failure(jobs[0], b.clock.Now(), nil)
		r.Response.StatusCode, r.FailureReason, r.Disable = 410, "HTTP 410", webhooks.DisabledReasonGone
		if err := b.db.RecordAttempts(b.ctx, []webhooks.AttemptResult{r}); err != nil {
			t.Fatal(err)
		}
		got, _ := b.db.FindWebhook(b.ctx, b.shop, w.ID)
		if got.IsActive || got.DisabledReason != webhooks.DisabledReasonGone || got.HealthStatus().Status != webhooks.HealthError {
			t.Fatalf("after 410: %+v", got)
		}
		_, pending, _ := b.db.FindDeliveries(b.ctx, webhooks.DeliveryFilter{ShopID: b.shop, Status: webhooks.StatusPending})
		failed, _, _ := b.db.FindDeliveries(b.ctx, webhooks.DeliveryFilter{ShopID: b.shop, Status: webhooks.StatusFailed, Limit: 10})
		if pending != 0 || len(failed) != 3 {
			t.Fatalf("pending %d failed %d, want 0 and 3", pending, len(failed))
		}
		n := 0
		for _, d := range failed {
			if d.FailureReason == webhooks.FailureWebhookDisabled {
				n++
			}
		}
		if n != 2 {
			t.Fatalf("%d cancelled rows say %q, want 2", n, webhooks.FailureWebhookDisabled)
		}
		tr := true
		got, _ = b.db.UpdateWebhook(b.ctx, b.shop, w.ID, webhooks.WebhookUpdate{IsActive: &tr})
		if got.DisabledReason != "" || got.Health.ConsecutiveFailures != 0 {
			t.Fatalf("re-enabled webhook keeps %q, streak %d", got.DisabledReason, got.Health.ConsecutiveFailures)
		}
	})
	// set-active true clears an active webhook's streak (the contract);
	// an update that only repeats is_active true keeps it, or a client
	// whose edit form sends every field would hold off the 5-day rule.
	t.Run("EnablingAnActiveWebhookClearsItsStreak", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		w, jobs := publishAndClaim(t, b, 5)
		var rs []webhooks.AttemptResult
		for _, j := range jobs {
			rs = append(rs, failure(j, b.clock.Now(), nil))
		}
		if err := b.db.RecordAttempts(b.ctx, rs); err != nil {
			t.Fatal(err)
		}
		got, _ := b.db.FindWebhook(b.ctx, b.shop, w.ID)
		if !got.IsActive || got.Health.ConsecutiveFailures != 5 || got.HealthStatus().Status != webhooks.HealthError {
			t.Fatalf("after 5 failures: active %v, streak %d, %s", got.IsActive, got.Health.ConsecutiveFailures, got.HealthStatus().Status)
		}
		tr, desc := true, "edited"
		got, err := b.db.UpdateWebhook(b.ctx, b.shop, w.ID, webhooks.WebhookUpdate{Description: &desc, IsActive: &tr})
		if err != nil || got.Health.ConsecutiveFailures != 5 || got.Health.FailingSince == nil {
			t.Fatalf("an update repeating is_active true: streak %d since %v, %v; want them kept", got.Health.ConsecutiveFailures, got.Health.FailingSince, err)
		}
		got, err = b.db.UpdateWebhook(b.ctx, b.shop, w.ID, webhooks.WebhookUpdate{IsActive: &tr, ClearFailures: true})
		if err != nil || got.Health.ConsecutiveFailures != 0 || got.Health.FailingSince != nil {
			t.Fatalf("set active again: streak %d since %v, %v; want the streak cleared", got.Health.ConsecutiveFailures, got.Health.FailingSince, err)
		}
	})
	// Results are recorded in the order their attempts end, not the order
	// they began: a slow attempt's comes after a later, faster one's. The
	// webhook's health follows the attempts (audit: a late failure made a
	// healthy webhook "warning" with a streak of 2, until its next attempt).
	t.Run("HealthFollowsTheAttemptsNotTheirRecording", func(t *testing.T) {
		t.Parallel()
		ts := func(t0 time.Time, d time.Duration) *time.Time { v := t0.Add(d).Truncate(time.Millisecond); return &v }
		for _, tt := range []struct {
			name    string
			batches [][]int // indexes into attempts, one RecordAttempts call each
			// want
			streak             int
			since, last, ok, f *time.Duration // FailingSince, LastTriggeredAt, LastSuccessAt, LastFailureAt (nil: none)
			reason             string
		}{
			// 0: fail at 0 s, 1: fail at 1 s, 2–6: success at 2–6 s; the
			// failures recorded last.
			{name: "LateFailures", batches: [][]int{{2, 3, 4, 5, 6}, {0, 1}},
				last: dur(6), ok: dur(6), f: dur(1), reason: "HTTP 500 (1)"},
			// A failure, a success, a failure: the first recorded last.
			{name: "LateFailureBeforeASuccess", batches: [][]int{{2}, {7}, {0}},
				streak: 1, since: dur(7), last: dur(7), ok: dur(2), f: dur(7), reason: "HTTP 500 (7)"},
			// Failures around a success recorded after them: only the
			// last failure is known to follow it.
			{name: "LateSuccessAmidAStreak", batches: [][]int{{0, 7}, {2}},
				streak: 1, since: dur(7), last: dur(7), ok: dur(2), f: dur(7), reason: "HTTP 500 (7)"},
			// A success older than the last one changes no streak.
			{name: "LateSuccessBeforeTheLast", batches: [][]int{{3, 7}, {2}},
				streak: 1, since: dur(7), last: dur(7), ok: dur(3), f: dur(7), reason: "HTTP 500 (7)"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				b := setup(t)
				w, jobs := publishAndClaim(t, b, 8)
				t0 := b.clock.Now()
				attempts := make([]webhooks.AttemptResult, 8)
				for i, j := range jobs {
					at := *ts(t0, time.Duration(i)*time.Second)
					if i < 2 || i == 7 {
						attempts[i] = failure(j, at, nil)
						attempts[i].FailureReason = fmt.Sprintf("HTTP 500 (%d)", i)
					} else {
						attempts[i] = success(j, at)
					}
				}
				for _, batch := range tt.batches {
					var rs []webhooks.AttemptResult
					for _, i := range batch {
						rs = append(rs, attempts[i])
					}
					if err := b.db.RecordAttempts(b.ctx, rs); err != nil {
						t.Fatal(err)
					}
				}
				got, err := b.db.FindWebhook(b.ctx, b.shop, w.ID)
				if err != nil {
					t.Fatal(err)
				}
				h := got.Health
				wantAt := func(what string, got *time.Time, want *time.Duration) {
					t.Helper()
					switch {
					case want == nil && got != nil:
						t.Errorf("%s = %v, want none", what, got.Sub(t0))
					case want != nil && (got == nil || !got.Equal(*ts(t0, *want))):
						t.Errorf("%s = %v, want %v", what, got, *want)
					}
				}
				if h.ConsecutiveFailures != tt.streak {
					t.Errorf("consecutive failures = %d, want %d", h.ConsecutiveFailures, tt.streak)
				}
				wantAt("failing since", h.FailingSince, tt.since)
				wantAt("last triggered", got.LastTriggeredAt, tt.last)
				wantAt("last success", h.LastSuccessAt, tt.ok)
				wantAt("last failure", h.LastFailureAt, tt.f)
				if h.LastFailureReason != tt.reason {
					t.Errorf("last failure reason = %q, want %q", h.LastFailureReason, tt.reason)
				}
			})
		}
	})
	t.Run("TheSuccessRateCountsEveryAttemptOfTheLast24Hours", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		w, jobs := publishAndClaim(t, b, 1)
		if err := b.db.RecordAttempts(b.ctx, []webhooks.AttemptResult{failure(jobs[0], b.clock.Now(), nil)}); err != nil {
			t.Fatal(err)
		}
		for _, tt := range []struct {
			after time.Duration
			want  int64
		}{{23*time.Hour + 59*time.Minute, 1}, {25 * time.Hour, 0}} {
			got, err := b.db.FindWebhook(b.ctx, b.shop, w.ID)
			if err != nil {
				t.Fatal(err)
			}
			b.clock.Add(tt.after - b.clock.Now().Sub(*got.LastTriggeredAt))
			if got, _ = b.db.FindWebhook(b.ctx, b.shop, w.ID); got.Health.Attempts24h != tt.want {
				t.Errorf("%v after a failed attempt: %d attempts counted, want %d", tt.after, got.Health.Attempts24h, tt.want)
			}
		}
	})
	t.Run("FailingForFiveDaysDisables", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		w := MustCreateWebhook(t, b.db, b.shop, "https://a.example/1", b.clock.Now(), "order.created")
		stopped := make(chan string, 10)
		b.db.OnWebhookStopped(func(id string) { stopped <- id })
		mustPublish(t, b, "order.created", 1)
		// An attempt every 20 hours, all failed: disabled by the one that
		// comes 5 days after the first.
		for k := 0; ; k++ {
			jobs, _ := b.db.ClaimDeliveries(b.ctx, webhooks.Claim{Limit: 1, LeaseFor: time.Minute})
			if len(jobs) != 1 {
				t.Fatalf("attempt %d not due", k+1)
			}
			next := b.clock.Now().Add(20 * time.Hour)
			if err := b.db.RecordAttempts(b.ctx, []webhooks.AttemptResult{failure(jobs[0], b.clock.Now(), &next)}); err != nil {
				t.Fatal(err)
			}
			got, _ := b.db.FindWebhook(b.ctx, b.shop, w.ID)
			if k < 6 {
				if !got.IsActive {
					t.Fatalf("disabled after failing for %d hours", k*20)
				}
				b.clock.Add(20 * time.Hour)
				continue
			}
			if got.IsActive || got.DisabledReason != webhooks.DisabledReasonFailing {
				t.Fatalf("after 5 failing days: active=%v reason=%q", got.IsActive, got.DisabledReason)
			}
			break
		}
		// The dispatcher hears of it, to drop what it had claimed.
		select {
		case id := <-stopped:
			if id != w.ID {
				t.Fatalf("stopped %s, want %s", id, w.ID)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the disable was not announced")
		}
	})
	// One failure, then quiet days, then another failure is not failing
	// for 5 days (audit: a failed test send before the receiver was up,
	// then a rare event, disabled the webhook).
	t.Run("AQuietDayEndsAFailingSpell", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		w, jobs := publishAndClaim(t, b, 2)
		if err := b.db.RecordAttempts(b.ctx, []webhooks.AttemptResult{failure(jobs[0], b.clock.Now(), nil)}); err != nil {
			t.Fatal(err)
		}
		b.clock.Add(6 * 24 * time.Hour)
		if err := b.db.RecordAttempts(b.ctx, []webhooks.AttemptResult{failure(jobs[1], b.clock.Now(), nil)}); err != nil {
			t.Fatal(err)
		}
		got, _ := b.db.FindWebhook(b.ctx, b.shop, w.ID)
		if !got.IsActive || got.Health.ConsecutiveFailures != 2 || got.Health.FailingSince == nil || !got.Health.FailingSince.Equal(b.clock.Now().Truncate(time.Millisecond)) {
			t.Fatalf("after a failure, 6 quiet days and a failure: active=%v streak %d since %v; want active, 2, the last failure",
				got.IsActive, got.Health.ConsecutiveFailures, got.Health.FailingSince)
		}
		if n, err := b.db.DisableFailingWebhooks(b.ctx, b.clock.Now().Add(-webhooks.AutoDisableAfter), webhooks.DisabledReasonFailing); err != nil || n != 0 {
			t.Fatalf("DisableFailingWebhooks = %d, %v; want none", n, err)
		}
	})
	t.Run("SetActiveFalseCancelsQueuedAndStopsRetries", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		w := MustCreateWebhook(t, b.db, b.shop, "https://a.example/1", b.clock.Now(), "order.created")
		mustPublish(t, b, "order.created", 2)
		jobs, _ := b.db.ClaimDeliveries(b.ctx, webhooks.Claim{Limit: 1, LeaseFor: time.Minute})
		f := false
		if _, err := b.db.UpdateWebhook(b.ctx, b.shop, w.ID, webhooks.WebhookUpdate{IsActive: &f}); err != nil {
			t.Fatal(err)
		}
		// The in-flight attempt finishes after the disable: it is recorded,
		// but no retry is queued.
		next := b.clock.Now().Add(time.Second)
		if err := b.db.RecordAttempts(b.ctx, []webhooks.AttemptResult{failure(jobs[0], b.clock.Now(), &next)}); err != nil {
			t.Fatal(err)
		}
		d, _ := b.db.FindDelivery(b.ctx, b.shop, jobs[0].DeliveryID)
		if d.FailureReason != "HTTP 500" || d.NextRetryAt != nil {
			t.Fatalf("in-flight row = %+v", d)
		}
		// A failed attempt whose retry was queued when the webhook was
		// disabled: its retry is cancelled, and it says none will come.
		tr := true
		if _, err := b.db.UpdateWebhook(b.ctx, b.shop, w.ID, webhooks.WebhookUpdate{IsActive: &tr}); err != nil {
			t.Fatal(err)
		}
		mustPublish(t, b, "order.created", 1)
		jobs, _ = b.db.ClaimDeliveries(b.ctx, webhooks.Claim{Limit: 1, LeaseFor: time.Minute})
		next = b.clock.Now().Add(time.Hour)
		if err := b.db.RecordAttempts(b.ctx, []webhooks.AttemptResult{failure(jobs[0], b.clock.Now(), &next)}); err != nil {
			t.Fatal(err)
		}
		if d, _ := b.db.FindDelivery(b.ctx, b.shop, jobs[0].DeliveryID); d.NextRetryAt == nil {
			t.Fatalf("failed attempt with a retry queued = %+v; want its next_retry_at", d)
		}
		if _, err := b.db.UpdateWebhook(b.ctx, b.shop, w.ID, webhooks.WebhookUpdate{IsActive: &f}); err != nil {
			t.Fatal(err)
		}
		if d, _ := b.db.FindDelivery(b.ctx, b.shop, jobs[0].DeliveryID); d.NextRetryAt != nil {
			t.Fatalf("failed attempt whose retry was cancelled says the next is due at %v; want none", d.NextRetryAt)
		}
		if _, n, _ := b.db.FindDeliveries(b.ctx, webhooks.DeliveryFilter{ShopID: b.shop, Status: webhooks.StatusPending}); n != 0 {
			t.Fatalf("%d still pending", n)
		}
		if r := mustPublish(t, b, "order.created", 1); r[0].Deliveries != 0 {
			t.Fatal("inactive webhook got a delivery")
		}
	})
	t.Run("ReceiverTextIsStoredOnEveryDatabase", func(t *testing.T) {
		// PostgreSQL's text refuses NUL and invalid UTF-8; a receiver's
		// answer holding them was refused with its whole batch of
		// results, at each try, and sent again after each lease.
		t.Parallel()
		b := setup(t)
		w, jobs := publishAndClaim(t, b, 2)
		now := b.clock.Now()
		const bad = "a\x00b\xffc"
		const want = "a\uFFFDb\uFFFDc"
		hostile := func(r webhooks.AttemptResult) webhooks.AttemptResult {
			r.Response.Body, r.FailureReason = bad, "reason "+bad
			r.Response.Headers = map[string]string{"X-Bad" + bad: bad}
			return r
		}
		err := b.db.RecordAttempts(b.ctx, []webhooks.AttemptResult{hostile(failure(jobs[0], now, nil)), success(jobs[1], now)})
		if err != nil {
			t.Fatalf("RecordAttempts: %v", err)
		}
		d, err := b.db.FindDelivery(b.ctx, b.shop, jobs[0].DeliveryID)
		if err != nil || d.Status != webhooks.StatusFailed || d.Response.Body != want || d.FailureReason != "reason "+want ||
			d.Response.Headers["X-Bad"+want] != want {
			t.Fatalf("recorded = %+v, %v", d, err)
		}
		got, _ := b.db.FindWebhook(b.ctx, b.shop, w.ID)
		if hs := got.HealthStatus(); hs.LastFailureReason != "reason "+want {
			t.Errorf("last_failure_reason = %q, want %q", hs.LastFailureReason, "reason "+want)
		}

		sync := &webhooks.Delivery{ID: webhooks.NewID(webhooks.PrefixDelivery, now), ShopID: b.shop, WebhookID: w.ID, EventID: jobs[0].EventID,
			Event: "order.created", Status: webhooks.StatusFailed, Trigger: webhooks.TriggerManualRetry, CreatedAt: now,
			Response: &webhooks.Response{StatusCode: 500, Body: bad, Headers: map[string]string{"X": bad}}, FailureReason: bad}
		if err := b.db.RecordSyncAttempt(b.ctx, webhooks.SyncAttempt{Delivery: sync}); err != nil {
			t.Fatalf("RecordSyncAttempt: %v", err)
		}
		if sync.Response.Body != want || sync.FailureReason != want {
			t.Errorf("the caller's delivery = %q, %q; want it as stored", sync.Response.Body, sync.FailureReason)
		}
		d, err = b.db.FindDelivery(b.ctx, b.shop, sync.ID)
		if err != nil || d.Response.Body != want || d.Response.Headers["X"] != want || d.FailureReason != want {
			t.Fatalf("recorded sync attempt = %+v, %v", d, err)
		}
	})
	t.Run("SyncAttemptRecorded", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		w := MustCreateWebhook(t, b.db, b.shop, "https://a.example/1", b.clock.Now(), "order.created")
		now := b.clock.Now()
		ev, err := webhooks.NewEvent(b.shop, "order.created", json.RawMessage(`{"a":1}`), "", true, now)
		if err != nil {
			t.Fatal(err)
		}
		d := &webhooks.Delivery{ID: webhooks.NewID(webhooks.PrefixDelivery, now), ShopID: b.shop, WebhookID: w.ID, EventID: ev.ID,
			Event: ev.Type, Status: webhooks.StatusSuccess, Trigger: webhooks.TriggerTest, Attempt: 1, CreatedAt: now, DurationMS: 7,
			Response: &webhooks.Response{StatusCode: 204, Headers: map[string]string{}}}
		if err := b.db.RecordSyncAttempt(b.ctx, webhooks.SyncAttempt{Event: ev, Delivery: d}); err != nil {
			t.Fatal(err)
		}
		got, err := b.db.FindDelivery(b.ctx, b.shop, d.ID)
		if err != nil || got.Trigger != webhooks.TriggerTest || got.Response.StatusCode != 204 {
			t.Fatalf("FindDelivery = %+v, %v", got, err)
		}
		var env webhooks.Envelope
		if err := json.Unmarshal(got.Payload, &env); err != nil || !env.Test {
			t.Fatalf("test envelope %s", got.Payload)
		}
		st, err := b.db.WebhookStats(b.ctx, b.shop, w.ID, now.Add(-time.Hour), now.Add(time.Hour))
		if err != nil || st.TotalDeliveries != 1 || st.SuccessCount != 1 || st.EventCounts["order.created"] != 1 {
			t.Fatalf("stats = %+v, %v", st, err)
		}
	})
}

func testDeliveries(t *testing.T, setup func(*testing.T) *testBundle) {
	t.Run("FiltersPagesAndStats", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		w1 := MustCreateWebhook(t, b.db, b.shop, "https://a.example/1", b.clock.Now(), "order.created", "customer.created")
		w2 := MustCreateWebhook(t, b.db, b.shop, "https://a.example/2", b.clock.Now(), "order.created")
		mustPublish(t, b, "order.created", 3)
		mustPublish(t, b, "customer.created", 2)
		jobs, _ := b.db.ClaimDeliveries(b.ctx, webhooks.Claim{Limit: 100, LeaseFor: time.Minute})
		if len(jobs) != 8 {
			t.Fatalf("claimed %d, want 8", len(jobs))
		}
		var results []webhooks.AttemptResult
		for i, j := range jobs {
			at := b.clock.Now().Add(time.Duration(i) * time.Hour)
			if j.WebhookID == w2.ID {
				results = append(results, failure(j, at, nil))
			} else {
				results = append(results, success(j, at))
			}
		}
		if err := b.db.RecordAttempts(b.ctx, results); err != nil {
			t.Fatal(err)
		}
		all, total, err := b.db.FindDeliveries(b.ctx, webhooks.DeliveryFilter{ShopID: b.shop, Limit: 3})
		if err != nil || total != 8 || len(all) != 3 || all[0].CreatedAt.Before(all[1].CreatedAt) {
			t.Fatalf("page 1 = %d of %d, %v; want 3 of 8 newest first", len(all), total, err)
		}
		last, _, _ := b.db.FindDeliveries(b.ctx, webhooks.DeliveryFilter{ShopID: b.shop, Limit: 3, Offset: 6})
		if len(last) != 2 {
			t.Fatalf("page 3 has %d, want 2", len(last))
		}
		for _, c := range []struct {
			name string
			f    webhooks.DeliveryFilter
			want int
		}{
			{"ByWebhook", webhooks.DeliveryFilter{WebhookID: w1.ID}, 5},
			{"ByStatus", webhooks.DeliveryFilter{Status: webhooks.StatusFailed}, 3},
			{"ByEvent", webhooks.DeliveryFilter{Event: "customer.created"}, 2},
			{"ByWebhookAndStatus", webhooks.DeliveryFilter{WebhookID: w2.ID, Status: webhooks.StatusSuccess}, 0},
			{"FromDate", webhooks.DeliveryFilter{From: b.clock.Now().Add(4 * time.Hour)}, 4},
			{"ToDate", webhooks.DeliveryFilter{To: b.clock.Now().Add(2 * time.Hour)}, 2},
		} {
			c.f.ShopID, c.f.Limit = b.shop, 100
			ds, n, err := b.db.FindDeliveries(b.ctx, c.f)
			if err != nil || n != c.want || len(ds) != c.want {
				t.Errorf("%s: %d (%d), %v; want %d", c.name, len(ds), n, err, c.want)
			}
		}
		if _, n, _ := b.db.FindDeliveries(b.ctx, webhooks.DeliveryFilter{ShopID: "other"}); n != 0 {
			t.Errorf("other shop sees %d deliveries", n)
		}
		_, err = b.db.FindDelivery(b.ctx, "other", jobs[0].DeliveryID)
		wantCode(t, err, webhooks.ENOTFOUND)

		st, err := b.db.WebhookStats(b.ctx, b.shop, w1.ID, b.clock.Now().Add(-24*time.Hour), b.clock.Now().Add(24*time.Hour))
		if err != nil || st.TotalDeliveries != 5 || st.SuccessCount != 5 || st.EventCounts["customer.created"] != 2 || len(st.HourlyStats) != 5 || st.AverageDurationMS != 12 {
			t.Fatalf("stats = %+v, %v", st, err)
		}
		n, err := b.db.ClearHistory(b.ctx, b.shop, w2.ID, time.Time{}, webhooks.StatusFailed)
		if err != nil || n != 3 {
			t.Fatalf("ClearHistory = %d, %v; want 3", n, err)
		}
		st, _ = b.db.WebhookStats(b.ctx, b.shop, w2.ID, b.clock.Now().Add(-24*time.Hour), b.clock.Now().Add(24*time.Hour))
		if st.TotalDeliveries != 0 || len(st.HourlyStats) != 0 {
			t.Fatalf("stats after clear = %+v", st)
		}
		_, err = b.db.ClearHistory(b.ctx, "other", w1.ID, time.Time{}, "")
		wantCode(t, err, webhooks.ENOTFOUND)
	})
}

func testMaintenance(t *testing.T, setup func(*testing.T) *testBundle) {
	t.Run("RetentionDeletesOldFinishedInBatches", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		MustCreateWebhook(t, b.db, b.shop, "https://a.example/1", b.clock.Now(), "order.created")
		mustPublish(t, b, "order.created", 5)
		jobs, _ := b.db.ClaimDeliveries(b.ctx, webhooks.Claim{Limit: 3, LeaseFor: time.Minute})
		var rs []webhooks.AttemptResult
		for _, j := range jobs {
			rs = append(rs, success(j, b.clock.Now()))
		}
		if err := b.db.RecordAttempts(b.ctx, rs); err != nil {
			t.Fatal(err)
		}
		b.clock.Add(31 * 24 * time.Hour)
		cut := b.clock.Now().Add(-30 * 24 * time.Hour)
		n1, err := b.db.DeleteFinishedBefore(b.ctx, cut, 2)
		if err != nil || n1 != 2 {
			t.Fatalf("first batch = %d, %v; want 2", n1, err)
		}
		n2, _ := b.db.DeleteFinishedBefore(b.ctx, cut, 2)
		n3, _ := b.db.DeleteFinishedBefore(b.ctx, cut, 2)
		if n2 != 1 || n3 != 0 {
			t.Fatalf("batches %d, %d; want 1, 0", n2, n3)
		}
		if _, n, _ := b.db.FindDeliveries(b.ctx, webhooks.DeliveryFilter{ShopID: b.shop, Status: webhooks.StatusPending}); n != 2 {
			t.Fatalf("queued rows touched: %d pending, want 2", n)
		}
	})
	t.Run("RetentionCountsFromTheAttempt", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		MustCreateWebhook(t, b.db, b.shop, "https://a.example/1", b.clock.Now(), "order.created")
		mustPublish(t, b, "order.created", 2)
		jobs, _ := b.db.ClaimDeliveries(b.ctx, webhooks.Claim{Limit: 2, LeaseFor: time.Minute})
		if len(jobs) != 2 {
			t.Fatalf("claimed %d, want 2", len(jobs))
		}
		// Both queued now; one attempted now, the other (a retry's wait,
		// say) 10 hours later.
		if err := b.db.RecordAttempts(b.ctx, []webhooks.AttemptResult{success(jobs[0], b.clock.Now())}); err != nil {
			t.Fatal(err)
		}
		b.clock.Add(10 * time.Hour)
		if err := b.db.RecordAttempts(b.ctx, []webhooks.AttemptResult{success(jobs[1], b.clock.Now())}); err != nil {
			t.Fatal(err)
		}
		// A retention of 8 hours, run 6 hours after the second attempt:
		// only the first (16 hours ago) is older than that.
		b.clock.Add(6 * time.Hour)
		n, err := b.db.DeleteFinishedBefore(b.ctx, b.clock.Now().Add(-8*time.Hour), 10)
		if err != nil || n != 1 {
			t.Fatalf("deleted %d, %v; want 1 (the attempt made 16 h ago)", n, err)
		}
		if _, err := b.db.FindDelivery(b.ctx, b.shop, jobs[1].DeliveryID); err != nil {
			t.Fatalf("the attempt made 6 h ago was deleted with a retention of 8 h: %v", err)
		}
	})
	t.Run("QueueStats", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		MustCreateWebhook(t, b.db, b.shop, "https://a.example/1", b.clock.Now(), "order.created")
		mustPublish(t, b, "order.created", 4)
		b.clock.Add(3 * time.Second)
		st, err := b.db.QueueStats(b.ctx)
		if err != nil || st.Due != 4 || st.Claimed != 0 || st.OldestDueAge != 3*time.Second {
			t.Fatalf("QueueStats = %+v, %v", st, err)
		}
		// A claimed one is being sent, or waits for a worker: not due,
		// and not the oldest waiting for a claim (observability audit: a
		// slow receiver's attempts alone made that age climb).
		mustPublish(t, b, "order.created", 2)
		b.clock.Add(time.Second)
		if jobs, err := b.db.ClaimDeliveries(b.ctx, webhooks.Claim{Limit: 4, LeaseFor: time.Minute}); err != nil || len(jobs) != 4 {
			t.Fatalf("claimed %d, %v; want the 4 oldest", len(jobs), err)
		}
		st, err = b.db.QueueStats(b.ctx)
		if err != nil || st.Due != 2 || st.Claimed != 4 || st.Scheduled != 0 || st.OldestDueAge != time.Second {
			t.Fatalf("with 4 claimed: QueueStats = %+v, %v; want 2 due for 1s, 4 claimed", st, err)
		}
	})
}

// dur is d seconds, for a table's optional times.
func dur(d int) *time.Duration {
	v := time.Duration(d) * time.Second
	return &v
}
