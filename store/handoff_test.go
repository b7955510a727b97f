package store_test

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
	"github.com/pancake-pos/pancake-webhooks/store/storetest"
)

// handoff is a dispatcher that has room for the webhooks in room.
type handoff struct {
	mu        sync.Mutex
	onReserve func() // called (outside mu) by each Reserve, if set
	room      map[string]bool
	lease     time.Duration
	held      int
	taken     []*webhooks.Job
	cancelled []*webhooks.Job
}

func (h *handoff) Reserve(shopID, webhookID string) (time.Time, bool) {
	if h.onReserve != nil {
		h.onReserve()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.room[webhookID] {
		return time.Time{}, false
	}
	h.held++
	return time.Now().Add(h.lease), true
}

func (h *handoff) Take(jobs []*webhooks.Job) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.held -= len(jobs)
	h.taken = append(h.taken, jobs...)
}

func (h *handoff) Cancel(jobs []*webhooks.Job) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.held -= len(jobs)
	h.cancelled = append(h.cancelled, jobs...)
}

func (h *handoff) state() (held int, taken, cancelled []*webhooks.Job) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.held, slices.Clone(h.taken), slices.Clone(h.cancelled)
}

// openWithHandoff opens a store with the shop shopID that hands over to
// h (room for no webhook yet; leases of a minute); wakes counts the
// wake-ups of the claim loop, or returns -1 on PostgreSQL, where every
// replica (and every test sharing the database) wakes it too.
func openWithHandoff(t *testing.T, dsn, shopID string) (db *store.DB, h *handoff, wakes func() int) {
	t.Helper()
	// One writer, so that writes held behind it share a batch.
	db, err := store.Open(context.Background(), dsn, store.Options{Writers: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	storetest.MustCreateShop(t, db, shopID, time.Now())
	h = &handoff{room: map[string]bool{}, lease: time.Minute}
	var mu sync.Mutex
	n := 0
	db.OnQueued(func(bool) { mu.Lock(); n++; mu.Unlock() })
	db.SetHandoff(h)
	return db, h, func() int {
		if db.Dialect() == "postgres" {
			return -1
		}
		mu.Lock()
		defer mu.Unlock()
		return n
	}
}

// roomFor creates a webhook of shopID for order.created whose deliveries
// h has room for.
func roomFor(t *testing.T, db *store.DB, h *handoff, shopID, url string) {
	t.Helper()
	w := storetest.MustCreateWebhook(t, db, shopID, url, time.Now(), "order.created")
	h.room[w.ID] = true
}

// A publish inserts the deliveries the dispatcher has room for leased to
// it and hands them over with what sending takes; the others wait in the
// queue for a claim, and only they wake the claim loop.
func TestPublishHandsOverWhatTheDispatcherHasRoomFor(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		now := time.Now()
		db, h, wakes := openWithHandoff(t, dsn, "shop_h")
		fast := storetest.MustCreateWebhook(t, db, "shop_h", "http://127.0.0.1:1/fast", now, "order.created")
		slow := storetest.MustCreateWebhook(t, db, "shop_h", "http://127.0.0.1:1/slow", now, "order.created")
		rotated, err := db.RotateSecret(ctx, "shop_h", fast.ID, webhooks.NewSecret(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		h.room[fast.ID] = true

		res, err := db.Publish(ctx, "shop_h", []webhooks.PublishInput{
			{Event: "order.created", Data: json.RawMessage(`{"n":1}`)},
			{Event: "order.created", Data: json.RawMessage(`{"n":2}`), IdempotencyKey: "k2"},
		})
		if err != nil {
			t.Fatal(err)
		}
		held, taken, cancelled := h.state()
		if held != 0 || len(cancelled) != 0 || len(taken) != 2 {
			t.Fatalf("after the publish: %d held, %d taken, %d cancelled; want 0, 2, 0", held, len(taken), len(cancelled))
		}
		// The claim finds the slow webhook's deliveries only: the others
		// are leased to the dispatcher that took them.
		jobs, err := db.ClaimDeliveries(ctx, webhooks.Claim{Limit: 100, LeaseFor: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if len(jobs) != 2 || jobs[0].WebhookID != slow.ID || jobs[1].WebhookID != slow.ID {
			t.Fatalf("claimed %d jobs; want the slow webhook's 2", len(jobs))
		}
		stored := map[string]string{} // event id: envelope, as a claim reads it
		for _, j := range jobs {
			stored[j.EventID] = string(j.Payload)
		}
		for i, j := range taken {
			if j.EventID != res[i].EventID || j.WebhookID != fast.ID || j.URL != fast.URL || j.Attempt != 1 ||
				j.Trigger != webhooks.TriggerEvent || string(j.Payload) != stored[j.EventID] ||
				!slices.Equal(j.Secrets, []string{rotated.Secret, fast.Secret}) || time.Until(j.LeasedUntil) < 50*time.Second {
				t.Errorf("job %d = %+v; want event %s to %s (%s), attempt 1, the stored envelope, both secrets, leased ~1m",
					i, j, res[i].EventID, fast.ID, fast.URL)
			}
		}
		if n := wakes(); n != 1 && n != -1 {
			t.Errorf("%d wake-ups; want 1 (the slow webhook's deliveries wait for a claim)", n)
		}

		// A handed-over delivery is recorded like a claimed one.
		if err := db.RecordAttempts(ctx, []webhooks.AttemptResult{{
			DeliveryID: taken[0].DeliveryID, WebhookID: fast.ID, Success: true, AttemptedAt: time.Now(),
			Response: webhooks.Response{StatusCode: 200},
		}}); err != nil {
			t.Fatal(err)
		}
		d, err := db.FindDelivery(ctx, "shop_h", taken[0].DeliveryID)
		if err != nil {
			t.Fatal(err)
		}
		if d.Status != webhooks.StatusSuccess || d.Response == nil || d.Response.StatusCode != 200 {
			t.Errorf("handed-over delivery recorded as %s (%+v); want success, 200", d.Status, d.Response)
		}

		// All handed over: nothing wakes the claim loop.
		h.room[slow.ID] = true
		if _, err := db.Publish(ctx, "shop_h", []webhooks.PublishInput{{Event: "order.created", Data: json.RawMessage(`{"n":3}`)}}); err != nil {
			t.Fatal(err)
		}
		if _, taken, _ = h.state(); len(taken) != 4 {
			t.Errorf("%d taken; want 4", len(taken))
		}
		if n := wakes(); n != 1 && n != -1 {
			t.Errorf("%d wake-ups; want still 1", n)
		}
	})
}

// refuseBoom makes the database refuse to store a delivery of an event
// whose data says "boom" (the event's own insert, before it, succeeds).
func refuseBoom(t *testing.T, db *store.DB) {
	t.Helper()
	ctx := context.Background()
	if err := db.WriteForTest(ctx, func(tx *store.Tx) error {
		stmts := []string{`CREATE TRIGGER boom BEFORE INSERT ON deliveries
			WHEN (SELECT CAST(envelope AS TEXT) FROM events WHERE id = NEW.event_id) LIKE '%boom%'
			BEGIN SELECT RAISE(ABORT, 'boom'); END`}
		if db.Dialect() == "postgres" {
			stmts = []string{
				`CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
					IF (SELECT convert_from(envelope, 'UTF8') FROM events WHERE id = NEW.event_id) LIKE '%boom%' THEN
						RAISE EXCEPTION 'boom';
					END IF;
					RETURN NEW; END $$`,
				`CREATE TRIGGER boom BEFORE INSERT ON deliveries FOR EACH ROW EXECUTE FUNCTION boom()`,
			}
		}
		for _, s := range stmts {
			if _, err := tx.ExecContext(ctx, s); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// A publish that fails after its deliveries were reserved gives the
// places back; nothing of it is handed over or stored. (It is tried twice:
// merged, then event by event to find the one that fails; each try
// reserves places for its deliveries and gives each back once.)
func TestFailedPublishGivesBackItsReservations(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		db, h, wakes := openWithHandoff(t, dsn, "shop_f")
		roomFor(t, db, h, "shop_f", "http://127.0.0.1:1/a")
		refuseBoom(t, db)

		if _, err := db.Publish(ctx, "shop_f", []webhooks.PublishInput{
			{Event: "order.created", Data: json.RawMessage(`{"ok":1}`)},
			{Event: "order.created", Data: json.RawMessage(`{"boom":1}`)},
		}); err == nil {
			t.Fatal("publish of an event the database refuses: no error")
		}
		held, taken, cancelled := h.state()
		if held != 0 || len(taken) != 0 || len(cancelled) < 2 {
			t.Fatalf("after the failed publish: %d held, %d taken, %d cancelled; want 0, 0, at least 2", held, len(taken), len(cancelled))
		}
		given := map[string]bool{}
		for _, j := range cancelled {
			if given[j.DeliveryID] {
				t.Errorf("the place of delivery %s was given back twice", j.DeliveryID)
			}
			given[j.DeliveryID] = true
		}
		if n := wakes(); n != 0 && n != -1 {
			t.Errorf("%d wake-ups after a failed publish; want 0", n)
		}
		for _, j := range cancelled {
			if _, err := db.FindDelivery(ctx, "shop_f", j.DeliveryID); webhooks.ErrorCode(err) != webhooks.ENOTFOUND {
				t.Errorf("delivery %s of the failed publish: %v; want not found", j.DeliveryID, err)
			}
		}

		// The next publish is handed over as usual.
		if _, err := db.Publish(ctx, "shop_f", []webhooks.PublishInput{{Event: "order.created", Data: json.RawMessage(`{"ok":2}`)}}); err != nil {
			t.Fatal(err)
		}
		if held, taken, _ := h.state(); held != 0 || len(taken) != 1 {
			t.Errorf("after the next publish: %d held, %d taken; want 0, 1", held, len(taken))
		}
	})
}

// A dispatcher unset while a publish holds places it reserved still gets
// those deliveries; the next publish queues its own.
func TestHandoffUnsetDuringAPublish(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		db, h, _ := openWithHandoff(t, dsn, "shop_u")
		roomFor(t, db, h, "shop_u", "http://127.0.0.1:1/u")
		h.onReserve = func() { db.SetHandoff(nil) }
		if _, err := db.Publish(ctx, "shop_u", []webhooks.PublishInput{
			{Event: "order.created", Data: json.RawMessage(`{"n":1}`)},
			{Event: "order.created", Data: json.RawMessage(`{"n":2}`)},
		}); err != nil {
			t.Fatal(err)
		}
		if held, taken, _ := h.state(); held != 0 || len(taken) != 2 {
			t.Fatalf("%d held, %d taken; want 0 and both deliveries of the publish that reserved them", held, len(taken))
		}
		if _, err := db.Publish(ctx, "shop_u", []webhooks.PublishInput{{Event: "order.created", Data: json.RawMessage(`{"n":3}`)}}); err != nil {
			t.Fatal(err)
		}
		jobs, err := db.ClaimDeliveries(ctx, webhooks.Claim{Limit: 10, LeaseFor: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if _, taken, _ := h.state(); len(taken) != 2 || len(jobs) != 1 {
			t.Errorf("%d taken, %d claimed; want 2 (the first publish) and 1 (the next, queued)", len(taken), len(jobs))
		}
	})
}

// Publishes that wait together are inserted together. When that insert
// fails, they are published again one by one: the one the database
// refuses fails alone, the others are stored and handed over, and what
// the failed tries reserved is given back.
func TestMergedPublishThatFailsFallsBackToOneByOne(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		db, h, _ := openWithHandoff(t, dsn, "shop_m")
		roomFor(t, db, h, "shop_m", "http://127.0.0.1:1/m")
		refuseBoom(t, db)

		const n = 4
		res := make([][]webhooks.PublishResult, n)
		errs := make([]error, n)
		inOneBatch(t, db, n, func(i int) {
			data := fmt.Sprintf(`{"n":%d}`, i)
			if i == 2 {
				data = `{"boom":2}`
			}
			res[i], errs[i] = db.Publish(ctx, "shop_m", []webhooks.PublishInput{{Event: "order.created", Data: json.RawMessage(data)}})
		})

		var stored []string
		for i := range n {
			if i == 2 {
				if errs[i] == nil {
					t.Errorf("publish %d (refused by the database): no error", i)
				}
				continue
			}
			if errs[i] != nil || len(res[i]) != 1 || res[i][0].Deliveries != 1 {
				t.Fatalf("publish %d: %+v, %v; want one event with one delivery", i, res[i], errs[i])
			}
			stored = append(stored, res[i][0].EventID)
		}
		held2, taken, cancelled := h.state()
		if held2 != 0 || len(taken) != n-1 {
			t.Fatalf("%d held, %d taken; want 0 and %d", held2, len(taken), n-1)
		}
		var got []string
		for _, j := range taken {
			got = append(got, j.EventID)
			if _, err := db.FindDelivery(ctx, "shop_m", j.DeliveryID); err != nil {
				t.Errorf("handed-over delivery %s: %v", j.DeliveryID, err)
			}
		}
		slices.Sort(got)
		slices.Sort(stored)
		if !slices.Equal(got, stored) {
			t.Errorf("handed over the deliveries of events %v; want those of the stored events %v", got, stored)
		}
		// The merged try reserved one place per publish, the refused
		// publish's own tries at least one more.
		if len(cancelled) < n+1 {
			t.Errorf("%d reservations given back; want at least %d (the merged try's and the refused publish's)", len(cancelled), n+1)
		}
		for _, j := range cancelled {
			if slices.ContainsFunc(taken, func(k *webhooks.Job) bool { return k.DeliveryID == j.DeliveryID }) {
				t.Errorf("delivery %s both given back and handed over", j.DeliveryID)
			}
			if _, err := db.FindDelivery(ctx, "shop_m", j.DeliveryID); webhooks.ErrorCode(err) != webhooks.ENOTFOUND {
				t.Errorf("given-back delivery %s: %v; want not found", j.DeliveryID, err)
			}
		}
	})
}

// TestAHandOverSkipsWebhooksStoppedOrChangedInItsCommit: a publish and a
// disable, delete, URL change or rotation of its webhook that share a
// group commit. The publish reserved the delivery for the dispatcher
// before the change, and the hooks that drop such deliveries (Stopped,
// Changed) run after the commit: handed over, it was sent after the
// disable had committed, to a deleted webhook, or to the old URL signed
// with the old secret only (code review). It is not handed over now; a
// pending one is released, and the claim takes it as it now is.
func TestAHandOverSkipsWebhooksStoppedOrChangedInItsCommit(t *testing.T) {
	t.Parallel()
	eachDB(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		db, h, _ := openWithHandoff(t, dsn, "shop_x")
		hooks := map[string]*webhooks.Webhook{}
		for _, name := range []string{"disable", "delete", "url", "rotate", "untouched"} {
			w := storetest.MustCreateWebhook(t, db, "shop_x", "http://127.0.0.1:1/"+name, time.Now(), "order.created")
			h.room[w.ID] = true
			hooks[name] = w
		}
		off, moved, secret := false, "http://127.0.0.1:1/moved", webhooks.NewSecret()
		writes := []func() error{
			func() error {
				_, err := db.Publish(ctx, "shop_x", []webhooks.PublishInput{{Event: "order.created", Data: json.RawMessage(`{}`)}})
				return err
			},
			func() error {
				_, err := db.UpdateWebhook(ctx, "shop_x", hooks["disable"].ID, webhooks.WebhookUpdate{IsActive: &off})
				return err
			},
			func() error { return db.DeleteWebhook(ctx, "shop_x", hooks["delete"].ID) },
			func() error {
				_, err := db.UpdateWebhook(ctx, "shop_x", hooks["url"].ID, webhooks.WebhookUpdate{URL: &moved})
				return err
			},
			func() error {
				_, err := db.RotateSecret(ctx, "shop_x", hooks["rotate"].ID, secret, 0)
				return err
			},
		}
		errs := make([]error, len(writes))
		inOneBatch(t, db, len(writes), func(i int) { errs[i] = writes[i]() })
		for i, err := range errs {
			if err != nil {
				t.Fatalf("write %d: %v", i, err)
			}
		}

		held, taken, cancelled := h.state()
		if held != 0 || len(taken) != 1 || taken[0].WebhookID != hooks["untouched"].ID {
			t.Errorf("%d held, %d handed over (%v); want only the untouched webhook's delivery", held, len(taken), jobHooks(taken, hooks))
		}
		if len(cancelled) != 4 {
			t.Errorf("%d reservations given back (%v); want the 4 of the webhooks changed", len(cancelled), jobHooks(cancelled, hooks))
		}
		list, _, err := db.FindDeliveries(ctx, webhooks.DeliveryFilter{ShopID: "shop_x", WebhookID: hooks["disable"].ID})
		if err != nil || len(list) != 1 || list[0].Status != webhooks.StatusFailed || list[0].FailureReason != webhooks.FailureWebhookDisabled {
			t.Errorf("the disabled webhook's delivery: %+v, %v; want one cancelled", list, err)
		}
		jobs, err := db.ClaimDeliveries(ctx, webhooks.Claim{Limit: 10, LeaseFor: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if got := jobHooks(jobs, hooks); !slices.Equal(got, []string{"rotate", "url"}) {
			t.Fatalf("claimed the deliveries of %v; want those of rotate and url, released", got)
		}
		for _, j := range jobs {
			if j.WebhookID == hooks["url"].ID && j.URL != moved {
				t.Errorf("claimed to %s; want the new URL %s", j.URL, moved)
			}
			if j.WebhookID == hooks["rotate"].ID && !slices.Equal(j.Secrets, []string{secret}) {
				t.Errorf("claimed with %d secrets; want the new one only", len(j.Secrets))
			}
		}
	})
}

// jobHooks names the webhooks of jobs, sorted.
func jobHooks(jobs []*webhooks.Job, hooks map[string]*webhooks.Webhook) []string {
	var out []string
	for _, j := range jobs {
		for name, w := range hooks {
			if w.ID == j.WebhookID {
				out = append(out, name)
			}
		}
	}
	slices.Sort(out)
	return out
}
