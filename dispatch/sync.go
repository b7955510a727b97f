package dispatch

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	webhooks "github.com/pancake-pos/pancake-webhooks"
)

// Test sends a test envelope (test: true) for event, with payload as its
// data, to w now, whatever w.IsActive says, and records it as a delivery
// (trigger test). It is never retried. A receiver that fails gives a failed
// delivery, not an error.
func (d *Dispatcher) Test(ctx context.Context, w *webhooks.Webhook, event webhooks.EventType, payload json.RawMessage) (*webhooks.Delivery, error) {
	now := d.now().UTC()
	ev, err := webhooks.NewEvent(w.ShopID, event, payload, "", true, now)
	if err != nil {
		return nil, fmt.Errorf("build test event: %w", err)
	}
	dl := &webhooks.Delivery{
		ID: webhooks.NewID(webhooks.PrefixDelivery, now), ShopID: w.ShopID, WebhookID: w.ID, EventID: ev.ID,
		Event: event, Payload: ev.Envelope, Trigger: webhooks.TriggerTest, Attempt: 1,
	}
	return d.syncAttempt(ctx, ev, dl, w)
}

// Retry sends the event of delivery id again to its webhook now, as a new
// delivery (trigger manual_retry, retry_of id). ENOTFOUND when the delivery
// or its webhook is gone; ECONFLICT for a delivery still queued, and for a
// disabled webhook: no new delivery is made for one (a test send is the
// way to try its endpoint), so it must be enabled again first.
func (d *Dispatcher) Retry(ctx context.Context, shopID, id string) (*webhooks.Delivery, error) {
	orig, err := d.store.FindDelivery(ctx, shopID, id)
	if err != nil {
		return nil, err
	}
	if orig.Status == webhooks.StatusPending {
		return nil, webhooks.Errorf(webhooks.ECONFLICT, "Delivery %s is queued and will be attempted at its scheduled time", id)
	}
	w, err := d.store.FindWebhook(ctx, shopID, orig.WebhookID)
	if webhooks.ErrorCode(err) == webhooks.ENOTFOUND {
		return nil, webhooks.Errorf(webhooks.ENOTFOUND, "Webhook %s of delivery %s no longer exists", orig.WebhookID, id)
	} else if err != nil {
		return nil, err
	}
	if !w.IsActive {
		why := ""
		if w.DisabledReason != "" {
			why = " (" + w.DisabledReason + ")"
		}
		return nil, webhooks.Errorf(webhooks.ECONFLICT, "Webhook %s is disabled%s: enable it (set-active) before retrying its deliveries", w.ID, why)
	}
	now := d.now().UTC()
	dl := &webhooks.Delivery{
		ID: webhooks.NewID(webhooks.PrefixDelivery, now), ShopID: shopID, WebhookID: w.ID, EventID: orig.EventID,
		Event: orig.Event, Payload: orig.Payload, Trigger: webhooks.TriggerManualRetry, Attempt: orig.Attempt + 1, RetryOf: id,
	}
	return d.syncAttempt(ctx, nil, dl, w)
}

// syncAttempt sends dl now and records it (with ev, when new).
func (d *Dispatcher) syncAttempt(ctx context.Context, ev *webhooks.Event, dl *webhooks.Delivery, w *webhooks.Webhook) (*webhooks.Delivery, error) {
	res, reqHeaders, at := d.send(ctx, dl.EventID, dl.ID, dl.ShopID, dl.Event, w.URL, w.SigningSecrets(d.now()), dl.Payload)
	if res.StatusCode == 0 && ctx.Err() != nil {
		// Cut on this side before the receiver answered (the caller went
		// away, or the server stops): no fault of the receiver's, so not
		// recorded against its health, as a cut queued attempt is not.
		return nil, fmt.Errorf("attempt cut before the receiver answered: %w", context.Cause(ctx))
	}
	resp := response(res)
	dl.Response = &resp
	dl.RequestHeaders = reqHeaders
	dl.FailureReason = res.FailureReason
	dl.CreatedAt = at
	dl.DurationMS = res.Duration.Milliseconds()
	dl.Status = webhooks.StatusFailed
	if res.Success() {
		dl.Status = webhooks.StatusSuccess
	}
	// Record even if the caller went away: the attempt was made.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	err := d.store.RecordSyncAttempt(rctx, webhooks.SyncAttempt{Event: ev, Delivery: dl})
	// Logged after recording: the store numbers a manual retry after the
	// event's latest attempt at the webhook, which may be later than
	// orig.Attempt+1 when the event was retried before.
	d.observe(dl.ID, w.ID, dl.Event, dl.Attempt, dl.Trigger, res)
	if err != nil {
		return nil, fmt.Errorf("record attempt: %w", err)
	}
	return dl, nil
}
