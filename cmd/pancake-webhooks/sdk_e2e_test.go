package main_test

import (
	"context"
	"encoding/json"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/pancake-pos/pancake-webhooks/pancake"
)

// TestSDKAgainstServer calls every method of the Go SDK against the real
// server, started in-process.
func TestSDKAgainstServer(t *testing.T) {
	t.Parallel()

	// send makes a test send that must be answered.
	send := func(t *testing.T, b *e2eBundle, id string, ev pancake.WebhookEvent) *pancake.DeliveryResult {
		t.Helper()
		r, err := b.client.Webhooks.Test(t.Context(), id, ev, nil)
		if err != nil {
			t.Fatalf("Webhooks.Test: %v", err)
		}
		return r
	}

	t.Run("WebhookLifecycle", func(t *testing.T) {
		t.Parallel()
		b := setupE2E(t)
		ctx := t.Context()
		wh := b.client.Webhooks

		h, err := wh.Create(ctx, pancake.CreateWebhookRequest{
			URL:         b.receiver.url,
			Events:      []pancake.WebhookEvent{pancake.EventOrderCreated, pancake.EventOrderCreated, pancake.EventOrderUpdated},
			Description: "Kitchen display",
		})
		if err != nil {
			t.Fatalf("Webhooks.Create: %v", err)
		}
		if !strings.HasPrefix(h.ID, "wh_") || !strings.HasPrefix(h.SecretKey, "whsec_") || !h.IsActive ||
			h.URL != b.receiver.url || h.Description != "Kitchen display" || h.CreatedAt.IsZero() || h.LastTriggeredAt != nil ||
			h.HealthStatus.Status != pancake.HealthHealthy || h.HealthStatus.SuccessRate != 100 {
			t.Errorf("Webhooks.Create returned %+v", h)
		}
		if diff := cmp.Diff([]pancake.WebhookEvent{pancake.EventOrderCreated, pancake.EventOrderUpdated}, h.Events); diff != "" {
			t.Errorf("Webhooks.Create events returned diff (-want +got):\n%s", diff)
		}
		off, err := wh.Create(ctx, pancake.CreateWebhookRequest{URL: b.receiver.url, Events: []pancake.WebhookEvent{pancake.EventProductCreated}, IsActive: pancake.Bool(false)})
		if err != nil {
			t.Fatalf("Webhooks.Create inactive: %v", err)
		}
		if off.IsActive {
			t.Error("Webhooks.Create with IsActive false made an active webhook")
		}

		got, err := wh.GetByID(ctx, h.ID)
		if err != nil {
			t.Fatalf("Webhooks.GetByID: %v", err)
		}
		if diff := cmp.Diff(h, got); diff != "" {
			t.Errorf("Webhooks.GetByID returned diff (-created +got):\n%s", diff)
		}

		list, err := wh.List(ctx)
		if err != nil {
			t.Fatalf("Webhooks.List: %v", err)
		}
		noSecret := func(w pancake.Webhook) pancake.Webhook { w.SecretKey = ""; return w }
		if diff := cmp.Diff(&pancake.WebhookList{Data: []pancake.Webhook{noSecret(*h), noSecret(*off)}, Total: 2}, list); diff != "" {
			t.Errorf("Webhooks.List returned diff (-want +got):\n%s", diff)
		}

		newURL := b.receiver.srv.URL + "/v2"
		up, err := wh.Update(ctx, h.ID, pancake.UpdateWebhookRequest{URL: pancake.String(newURL), Description: pancake.String("")})
		if err != nil {
			t.Fatalf("Webhooks.Update: %v", err)
		}
		if up.URL != newURL || up.Description != "" || !slices.Equal(up.Events, h.Events) || up.SecretKey != h.SecretKey ||
			up.UpdatedAt.Before(h.UpdatedAt) {
			t.Errorf("Webhooks.Update returned %+v", up)
		}
		up, err = wh.Update(ctx, h.ID, pancake.UpdateWebhookRequest{Events: []pancake.WebhookEvent{pancake.EventOrderCancelled}, IsActive: pancake.Bool(false)})
		if err != nil {
			t.Fatalf("Webhooks.Update: %v", err)
		}
		if up.URL != newURL || up.IsActive || !slices.Equal(up.Events, []pancake.WebhookEvent{pancake.EventOrderCancelled}) {
			t.Errorf("Webhooks.Update of events and is_active returned %+v", up)
		}

		for _, on := range []bool{true, false, true} {
			got, err := wh.SetActive(ctx, h.ID, on)
			if err != nil {
				t.Fatalf("Webhooks.SetActive(%v): %v", on, err)
			}
			if got.IsActive != on {
				t.Errorf("Webhooks.SetActive(%v) returned is_active %v", on, got.IsActive)
			}
		}

		if err := wh.Delete(ctx, h.ID); err != nil {
			t.Fatalf("Webhooks.Delete: %v", err)
		}
		if _, err := wh.GetByID(ctx, h.ID); !errors.Is(err, pancake.ErrNotFound) {
			t.Errorf("Webhooks.GetByID after Delete = %v, want ErrNotFound", err)
		}
		if list, err := wh.List(ctx); err != nil || list.Total != 1 || list.Data[0].ID != off.ID {
			t.Errorf("Webhooks.List after Delete = %+v, %v", list, err)
		}
	})

	t.Run("TestDeliversASignedTestEvent", func(t *testing.T) {
		t.Parallel()
		b := setupE2E(t)
		h := b.webhook(t)

		r, err := b.client.Webhooks.Test(t.Context(), h.ID, pancake.EventOrderCreated, map[string]any{"order_id": "ord_1", "total": 120000})
		if err != nil {
			t.Fatalf("Webhooks.Test: %v", err)
		}
		if r.Status != pancake.StatusSuccess || !strings.HasPrefix(r.DeliveryID, "dlv_") || r.Response == nil ||
			r.Response.StatusCode != http.StatusOK || r.Response.Body != `{"ok":true}` || r.FailureReason != "" {
			t.Errorf("Webhooks.Test returned %+v", r)
		}
		got := b.receiver.next(t)
		env, err := pancake.Verify([]string{h.SecretKey}, got.header, got.body, time.Minute)
		if err != nil {
			t.Fatalf("the test send does not verify with the webhook's secret: %v", err)
		}
		var data struct {
			OrderID string      `json:"order_id"`
			Total   json.Number `json:"total"`
		}
		if err := json.Unmarshal(env.Data, &data); err != nil {
			t.Fatalf("the test send's data %s: %v", env.Data, err)
		}
		if !env.Test || env.Event != pancake.EventOrderCreated || env.ShopID != b.shop ||
			data.OrderID != "ord_1" || data.Total != "120000" || got.header.Get("X-Pancake-Delivery") != r.DeliveryID {
			t.Errorf("the receiver got %+v, headers %v", env, got.header)
		}

		// A failing receiver is an answer, not an error.
		b.receiver.status.Store(http.StatusInternalServerError)
		r, err = b.client.Webhooks.Test(t.Context(), h.ID, pancake.EventOrderUpdated, nil)
		if err != nil {
			t.Fatalf("Webhooks.Test of a failing receiver: %v", err)
		}
		if r.Status != pancake.StatusFailed || r.FailureReason == "" || r.Response == nil || r.Response.StatusCode != 500 {
			t.Errorf("Webhooks.Test of a failing receiver returned %+v", r)
		}
	})

	t.Run("RotateSecretSignsWithBothDuringTheOverlap", func(t *testing.T) {
		t.Parallel()
		b := setupE2E(t)
		h := b.webhook(t)

		r, err := b.client.Webhooks.RotateSecret(t.Context(), h.ID)
		if err != nil {
			t.Fatalf("Webhooks.RotateSecret: %v", err)
		}
		if !strings.HasPrefix(r.SecretKey, "whsec_") || r.SecretKey == h.SecretKey {
			t.Fatalf("Webhooks.RotateSecret returned %q (old %q)", r.SecretKey, h.SecretKey)
		}
		if got, err := b.client.Webhooks.GetByID(t.Context(), h.ID); err != nil || got.SecretKey != r.SecretKey {
			t.Errorf("Webhooks.GetByID after the rotation: %v, secret %q, want %q", err, got.SecretKey, r.SecretKey)
		}
		send(t, b, h.ID, pancake.EventOrderCreated)
		got := b.receiver.next(t)
		for _, secret := range []string{r.SecretKey, h.SecretKey} {
			if _, err := pancake.Verify([]string{secret}, got.header, got.body, time.Minute); err != nil {
				t.Errorf("a send during the overlap does not verify with %.12s…: %v", secret, err)
			}
		}
	})

	t.Run("GetStatsCountsTheAttempts", func(t *testing.T) {
		t.Parallel()
		b := setupE2E(t)
		h := b.webhook(t)
		send(t, b, h.ID, pancake.EventOrderCreated)
		send(t, b, h.ID, pancake.EventOrderCreated)
		b.receiver.status.Store(http.StatusServiceUnavailable)
		send(t, b, h.ID, pancake.EventOrderUpdated)

		today := time.Now().UTC().Format(time.DateOnly)
		for _, p := range []pancake.StatsParams{{}, {FromDate: today, ToDate: today}} {
			s, err := b.client.Webhooks.GetStats(t.Context(), h.ID, p)
			if err != nil {
				t.Fatalf("Webhooks.GetStats(%+v): %v", p, err)
			}
			if s.TotalDeliveries != 3 || s.SuccessCount != 2 || s.FailureCount != 1 || s.AverageDurationMS < 0 {
				t.Errorf("Webhooks.GetStats(%+v) returned %+v", p, s)
			}
			if diff := cmp.Diff(map[pancake.WebhookEvent]int{pancake.EventOrderCreated: 2, pancake.EventOrderUpdated: 1}, s.EventCounts); diff != "" {
				t.Errorf("Webhooks.GetStats event counts returned diff (-want +got):\n%s", diff)
			}
			var hours hourlyTotals
			for _, hs := range s.HourlyStats {
				hours.add(hs)
			}
			if hours != (hourlyTotals{Total: 3, Success: 2, Failed: 1}) || len(s.HourlyStats) == 0 || s.HourlyStats[0].Hour.Minute() != 0 {
				t.Errorf("Webhooks.GetStats hourly stats = %+v", s.HourlyStats)
			}
		}
		s, err := b.client.Webhooks.GetStats(t.Context(), h.ID, pancake.StatsParams{FromDate: "2020-01-01", ToDate: "2020-01-31"})
		if err != nil || s.TotalDeliveries != 0 {
			t.Errorf("Webhooks.GetStats of January 2020 = %+v, %v; want none", s, err)
		}
	})

	t.Run("DeliveriesIteratorWalksThePages", func(t *testing.T) {
		t.Parallel()
		b := setupE2E(t)
		h := b.webhook(t)
		var ids []string
		for range 5 {
			ids = append(ids, send(t, b, h.ID, pancake.EventOrderCreated).DeliveryID)
		}
		slices.Reverse(ids) // newest first

		page, err := b.client.Webhooks.ListDeliveries(t.Context(), pancake.DeliveryListParams{PageSize: 2})
		if err != nil {
			t.Fatalf("Webhooks.ListDeliveries: %v", err)
		}
		if page.Total != 5 || page.TotalPages != 3 || page.PageNumber != 1 || page.PageSize != 2 || len(page.Data) != 2 ||
			page.Data[0].ID != ids[0] || page.Data[1].ID != ids[1] {
			t.Errorf("Webhooks.ListDeliveries page 1 = %+v", page)
		}
		today := time.Now().UTC().Format(time.DateOnly)
		page, err = b.client.Webhooks.ListDeliveries(t.Context(), pancake.DeliveryListParams{
			WebhookID: h.ID, Status: pancake.StatusSuccess, Event: pancake.EventOrderCreated,
			FromDate: today, ToDate: today, PageSize: 2, PageNumber: 3,
		})
		if err != nil {
			t.Fatalf("Webhooks.ListDeliveries with every filter: %v", err)
		}
		if page.Total != 5 || len(page.Data) != 1 || page.Data[0].ID != ids[4] {
			t.Errorf("Webhooks.ListDeliveries page 3 = %+v", page)
		}
		if page, err := b.client.Webhooks.ListDeliveries(t.Context(), pancake.DeliveryListParams{Status: pancake.StatusFailed}); err != nil || page.Total != 0 || page.Data == nil {
			t.Errorf("Webhooks.ListDeliveries of failed ones = %+v, %v; want an empty page", page, err)
		}

		walk := func(p pancake.DeliveryListParams, stopAfter int) []string {
			t.Helper()
			var got []string
			for d, err := range b.client.Webhooks.Deliveries(t.Context(), p) {
				if err != nil {
					t.Fatalf("Webhooks.Deliveries(%+v): %v", p, err)
				}
				got = append(got, d.ID)
				if len(got) == stopAfter {
					break
				}
			}
			return got
		}
		if diff := cmp.Diff(ids, walk(pancake.DeliveryListParams{PageSize: 2}, -1)); diff != "" {
			t.Errorf("Webhooks.Deliveries returned diff (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(ids, walk(pancake.DeliveryListParams{}, -1)); diff != "" {
			t.Errorf("Webhooks.Deliveries with default pages returned diff (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(ids[2:], walk(pancake.DeliveryListParams{PageSize: 2, PageNumber: 2}, -1)); diff != "" {
			t.Errorf("Webhooks.Deliveries from page 2 returned diff (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(ids[:3], walk(pancake.DeliveryListParams{PageSize: 2}, 3)); diff != "" {
			t.Errorf("Webhooks.Deliveries stopped after 3 returned diff (-want +got):\n%s", diff)
		}
	})

	t.Run("GetDeliveryByIDAndRetryDelivery", func(t *testing.T) {
		t.Parallel()
		b := setupE2E(t)
		h := b.webhook(t)
		first := send(t, b, h.ID, pancake.EventOrderCreated)
		b.receiver.next(t)

		d, err := b.client.Webhooks.GetDeliveryByID(t.Context(), first.DeliveryID)
		if err != nil {
			t.Fatalf("Webhooks.GetDeliveryByID: %v", err)
		}
		var payload pancake.Envelope
		if err := json.Unmarshal(d.Payload, &payload); err != nil {
			t.Fatalf("the delivery's payload %s: %v", d.Payload, err)
		}
		if d.ID != first.DeliveryID || d.WebhookID != h.ID || d.Event != pancake.EventOrderCreated || d.Status != pancake.StatusSuccess ||
			d.Trigger != pancake.TriggerTest || d.Attempt != 1 || !strings.HasPrefix(d.EventID, "evt_") || d.CreatedAt.IsZero() ||
			d.Response.StatusCode != http.StatusOK || !payload.Test || payload.ID != d.EventID ||
			d.Request == nil || len(d.Request.Headers) == 0 {
			t.Errorf("Webhooks.GetDeliveryByID returned %+v", d)
		}

		r, err := b.client.Webhooks.RetryDelivery(t.Context(), first.DeliveryID)
		if err != nil {
			t.Fatalf("Webhooks.RetryDelivery: %v", err)
		}
		if r.Status != pancake.StatusSuccess || r.DeliveryID == first.DeliveryID || !strings.HasPrefix(r.DeliveryID, "dlv_") {
			t.Errorf("Webhooks.RetryDelivery returned %+v", r)
		}
		if got := b.receiver.next(t); got.header.Get("webhook-id") != d.EventID {
			t.Errorf("the retry carries webhook-id %q, want the event's %q", got.header.Get("webhook-id"), d.EventID)
		}
		retry, err := b.client.Webhooks.GetDeliveryByID(t.Context(), r.DeliveryID)
		if err != nil {
			t.Fatalf("Webhooks.GetDeliveryByID of the retry: %v", err)
		}
		if retry.RetryOf != first.DeliveryID || retry.Trigger != pancake.TriggerManualRetry || retry.EventID != d.EventID {
			t.Errorf("the retry is %+v", retry)
		}
	})

	t.Run("ClearDeliveryHistoryDeletesWhatItSelects", func(t *testing.T) {
		t.Parallel()
		b := setupE2E(t)
		h := b.webhook(t)
		for _, status := range []int32{200, 500, 500} {
			b.receiver.status.Store(status)
			send(t, b, h.ID, pancake.EventOrderCreated)
		}

		for _, tc := range []struct {
			p    pancake.ClearHistoryParams
			want int
		}{
			{pancake.ClearHistoryParams{BeforeDate: "2000-01-01"}, 0},
			{pancake.ClearHistoryParams{Status: pancake.StatusFailed}, 2},
			{pancake.ClearHistoryParams{}, 1},
		} {
			r, err := b.client.Webhooks.ClearDeliveryHistory(t.Context(), h.ID, tc.p)
			if err != nil {
				t.Fatalf("Webhooks.ClearDeliveryHistory(%+v): %v", tc.p, err)
			}
			if r.DeletedCount != tc.want {
				t.Errorf("Webhooks.ClearDeliveryHistory(%+v) deleted %d, want %d", tc.p, r.DeletedCount, tc.want)
			}
		}
		if page, err := b.client.Webhooks.ListDeliveries(t.Context(), pancake.DeliveryListParams{}); err != nil || page.Total != 0 {
			t.Errorf("Webhooks.ListDeliveries after clearing = %+v, %v", page, err)
		}
	})

	t.Run("PublishQueuesAndPendingListsTheQueue", func(t *testing.T) {
		t.Parallel()
		b := setupE2E(t)
		h := b.webhook(t)
		b.receiver.holdRequests() // the attempt waits at the receiver: its delivery stays queued

		pub, err := b.client.Events.Publish(t.Context(), pancake.PublishRequest{Event: pancake.EventOrderCreated, Data: map[string]any{"order_id": "ord_7"}})
		if err != nil {
			t.Fatalf("Events.Publish: %v", err)
		}
		if !strings.HasPrefix(pub.EventID, "evt_") || pub.Deliveries != 1 {
			t.Errorf("Events.Publish returned %+v", pub)
		}
		got := b.receiver.next(t)
		env, err := pancake.Verify([]string{h.SecretKey}, got.header, got.body, time.Minute)
		if err != nil {
			t.Fatalf("the delivery does not verify: %v", err)
		}
		if env.ID != pub.EventID || env.Test || string(env.Data) != `{"order_id":"ord_7"}` {
			t.Errorf("the receiver got %+v", env)
		}

		p, err := b.client.Webhooks.GetPendingDeliveries(t.Context())
		if err != nil {
			t.Fatalf("Webhooks.GetPendingDeliveries: %v", err)
		}
		if p.TotalCount != 1 || len(p.Deliveries) != 1 || p.Deliveries[0].EventID != pub.EventID ||
			p.Deliveries[0].Status != pancake.StatusPending || p.Deliveries[0].WebhookID != h.ID || p.Deliveries[0].ScheduledAt == nil {
			t.Errorf("Webhooks.GetPendingDeliveries returned %+v", p)
		}
		b.receiver.unhold()

		// An idempotency key publishes once.
		req := pancake.PublishRequest{Event: pancake.EventOrderCreated, Data: map[string]any{"order_id": "ord_8"}, ID: "pos-ord_8"}
		first, err := b.client.Events.Publish(t.Context(), req)
		if err != nil {
			t.Fatalf("Events.Publish with an ID: %v", err)
		}
		again, err := b.client.Events.Publish(t.Context(), req)
		if err != nil {
			t.Fatalf("Events.Publish with the ID again: %v", err)
		}
		if *again != *first || first.EventID == pub.EventID {
			t.Errorf("Events.Publish with one ID twice returned %+v then %+v", first, again)
		}
	})

	t.Run("UnknownIDsAreErrNotFound", func(t *testing.T) {
		t.Parallel()
		b := setupE2E(t)
		ctx, wh := t.Context(), b.client.Webhooks
		calls := map[string]func() error{
			"GetByID": func() error { _, err := wh.GetByID(ctx, "wh_nope"); return err },
			"Update": func() error {
				_, err := wh.Update(ctx, "wh_nope", pancake.UpdateWebhookRequest{Description: pancake.String("x")})
				return err
			},
			"Delete":       func() error { return wh.Delete(ctx, "wh_nope") },
			"SetActive":    func() error { _, err := wh.SetActive(ctx, "wh_nope", false); return err },
			"Test":         func() error { _, err := wh.Test(ctx, "wh_nope", pancake.EventOrderCreated, nil); return err },
			"RotateSecret": func() error { _, err := wh.RotateSecret(ctx, "wh_nope"); return err },
			"GetStats":     func() error { _, err := wh.GetStats(ctx, "wh_nope", pancake.StatsParams{}); return err },
			"ClearDeliveryHistory": func() error {
				_, err := wh.ClearDeliveryHistory(ctx, "wh_nope", pancake.ClearHistoryParams{})
				return err
			},
			"GetDeliveryByID": func() error { _, err := wh.GetDeliveryByID(ctx, "dlv_nope"); return err },
			"RetryDelivery":   func() error { _, err := wh.RetryDelivery(ctx, "dlv_nope"); return err },
		}
		for name, call := range calls {
			err := call()
			var pe *pancake.Error
			if !errors.Is(err, pancake.ErrNotFound) || !errors.As(err, &pe) || pe.StatusCode != 404 || pe.Code != pancake.CodeNotFound {
				t.Errorf("Webhooks.%s of an unknown id = %v, want a 404 not_found", name, err)
			}
		}
	})

	t.Run("BadKeyIsErrUnauthorizedAndOtherShopErrForbidden", func(t *testing.T) {
		t.Parallel()
		b := setupE2E(t)
		h := b.webhook(t)
		bad := "pk_" + strings.Repeat("z", 43)
		badClient := b.srv.client(bad, b.shop)
		ctx := t.Context()
		for name, call := range map[string]func() error{
			"List":    func() error { _, err := badClient.Webhooks.List(ctx); return err },
			"GetByID": func() error { _, err := badClient.Webhooks.GetByID(ctx, h.ID); return err },
			"Publish": func() error {
				_, err := badClient.Events.Publish(ctx, pancake.PublishRequest{Event: pancake.EventOrderCreated})
				return err
			},
			"Deliveries": func() error {
				for _, err := range badClient.Webhooks.Deliveries(ctx, pancake.DeliveryListParams{}) {
					return err
				}
				return nil
			},
		} {
			err := call()
			if !errors.Is(err, pancake.ErrUnauthorized) {
				t.Errorf("%s with a bad key = %v, want ErrUnauthorized", name, err)
			} else if strings.Contains(err.Error(), bad) {
				t.Errorf("%s: the error shows the key: %v", name, err)
			}
		}

		b.srv.createShop(t, "shop-other")
		other := b.srv.client(b.key, "shop-other")
		if _, err := other.Webhooks.List(ctx); !errors.Is(err, pancake.ErrForbidden) {
			t.Errorf("Webhooks.List of another shop = %v, want ErrForbidden", err)
		}
		if _, err := other.Events.Publish(ctx, pancake.PublishRequest{Event: pancake.EventOrderCreated}); !errors.Is(err, pancake.ErrForbidden) {
			t.Errorf("Events.Publish to another shop = %v, want ErrForbidden", err)
		}
	})

	t.Run("BadInputIsErrValidation", func(t *testing.T) {
		t.Parallel()
		b := setupE2E(t)
		h := b.webhook(t)
		ctx, wh := t.Context(), b.client.Webhooks
		for _, tc := range []struct {
			name  string
			field string // a key of Details
			call  func() error
		}{
			{"Create with an ftp URL", "url", func() error {
				_, err := wh.Create(ctx, pancake.CreateWebhookRequest{URL: "ftp://example.com", Events: []pancake.WebhookEvent{pancake.EventOrderCreated}})
				return err
			}},
			{"Create with an unknown event", "events", func() error {
				_, err := wh.Create(ctx, pancake.CreateWebhookRequest{URL: b.receiver.url, Events: []pancake.WebhookEvent{"order.shipped"}})
				return err
			}},
			{"Create without events", "events", func() error {
				_, err := wh.Create(ctx, pancake.CreateWebhookRequest{URL: b.receiver.url})
				return err
			}},
			{"Update with an unknown event", "events", func() error {
				_, err := wh.Update(ctx, h.ID, pancake.UpdateWebhookRequest{Events: []pancake.WebhookEvent{"order.shipped"}})
				return err
			}},
			{"Test with an unknown event", "event", func() error {
				_, err := wh.Test(ctx, h.ID, "order.shipped", nil)
				return err
			}},
			{"GetStats with the days swapped", "to_date", func() error {
				_, err := wh.GetStats(ctx, h.ID, pancake.StatsParams{FromDate: "2026-02-01", ToDate: "2026-01-01"})
				return err
			}},
			{"ClearDeliveryHistory with a bad status", "status", func() error {
				_, err := wh.ClearDeliveryHistory(ctx, h.ID, pancake.ClearHistoryParams{Status: "ok"})
				return err
			}},
			{"ListDeliveries with a bad date", "from_date", func() error {
				_, err := wh.ListDeliveries(ctx, pancake.DeliveryListParams{FromDate: "2024-13-01"})
				return err
			}},
			{"Publish of an unknown event", "event", func() error {
				_, err := b.client.Events.Publish(ctx, pancake.PublishRequest{Event: "order.shipped"})
				return err
			}},
		} {
			err := tc.call()
			var pe *pancake.Error
			if !errors.Is(err, pancake.ErrValidation) || !errors.As(err, &pe) {
				t.Errorf("%s = %v, want ErrValidation", tc.name, err)
				continue
			}
			if _, ok := pe.Details[tc.field]; !ok || pe.Code != pancake.CodeValidationFailed {
				t.Errorf("%s = %v, details %v; want validation_failed naming %q", tc.name, err, pe.Details, tc.field)
			}
		}
	})
}

// hourlyTotals adds up hourly stats.
type hourlyTotals struct{ Total, Success, Failed int }

func (h *hourlyTotals) add(s pancake.HourlyStat) {
	h.Total += s.Total
	h.Success += s.Success
	h.Failed += s.Failed
}

// apiLineRe is the last line of an SDK method's doc comment.
var apiLineRe = regexp.MustCompile(`^// API: (GET|POST|PUT|PATCH|DELETE) (/api/v1/\S+)$`)

// sdkOperation is an SDK method and the operation its doc says it calls.
type sdkOperation struct {
	name   string // WebhooksService.List
	method string
	path   string
}

// sdkOperations parses the SDK's sources and returns the API line of every
// exported method of its …Service types, failing the test for a method
// whose doc comment breaks the house style.
func sdkOperations(t *testing.T) []sdkOperation {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "..", "pancake", "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no SDK sources: %v", err)
	}
	fset := token.NewFileSet()
	var ops []sdkOperation
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, file, nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			fn, ok := decl.(*ast.FuncDecl)
			if !ok || fn.Recv == nil || !fn.Name.IsExported() {
				continue
			}
			recv := fn.Recv.List[0].Type
			if star, ok := recv.(*ast.StarExpr); ok {
				recv = star.X
			}
			id, ok := recv.(*ast.Ident)
			if !ok || !id.IsExported() || !strings.HasSuffix(id.Name, "Service") {
				continue
			}
			name := id.Name + "." + fn.Name.Name
			if fn.Doc == nil {
				t.Errorf("%s (%s) has no doc comment", name, fset.Position(fn.Pos()))
				continue
			}
			if !strings.HasPrefix(fn.Doc.Text(), fn.Name.Name+" ") {
				t.Errorf("the doc comment of %s does not start with its name: %q", name, fn.Doc.Text())
			}
			last := fn.Doc.List[len(fn.Doc.List)-1].Text
			m := apiLineRe.FindStringSubmatch(last)
			if m == nil {
				t.Errorf("the doc comment of %s does not end with \"// API: METHOD /api/v1/…\": its last line is %q", name, last)
				continue
			}
			ops = append(ops, sdkOperation{name: name, method: m[1], path: m[2]})
		}
	}
	return ops
}

// templateRe matches a path parameter.
var templateRe = regexp.MustCompile(`\{[^}/]+\}`)

// pathShape is a path template with its parameters unnamed: the SDK says
// {id} where the server says {webhook_id}.
func pathShape(p string) string { return templateRe.ReplaceAllString(p, "{}") }

// sdkExceptions are the shop operations of the API the SDK has no method
// for, and why.
var sdkExceptions = map[string]string{
	"POST /api/v1/shops/{shop_id}/events/batch": "the SDK publishes one event at a time (Events.Publish); batches are for the POS's bulk import",
}

// TestAPIDocLinesMatchTheServedOpenAPI checks the "// API:" line of every
// SDK method against the OpenAPI description the server serves, and that
// every shop operation of the API has an SDK method.
func TestAPIDocLinesMatchTheServedOpenAPI(t *testing.T) {
	t.Parallel()
	ops := sdkOperations(t)
	if len(ops) < 16 {
		t.Fatalf("found %d SDK methods with an API line, want at least 16: %+v", len(ops), ops)
	}

	srv := startE2EServer(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.apiURL+"/openapi.json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/v1/openapi.json: %d", resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatalf("decode the OpenAPI document: %v", err)
	}

	// spec maps "METHOD shape" to "METHOD path" for every operation.
	spec := map[string]string{}
	for path, item := range doc.Paths {
		for m := range item {
			switch m {
			case "get", "post", "put", "patch", "delete":
				op := strings.ToUpper(m) + " " + path
				spec[strings.ToUpper(m)+" "+pathShape(path)] = op
			}
		}
	}

	covered := map[string][]string{} // spec operation → SDK methods
	for _, op := range ops {
		specOp, ok := spec[op.method+" "+pathShape(op.path)]
		if !ok {
			t.Errorf("%s says \"API: %s %s\", which the served OpenAPI description does not have", op.name, op.method, op.path)
			continue
		}
		if !strings.HasPrefix(op.path, "/api/v1/shops/{shop_id}/") {
			t.Errorf("%s says \"API: %s %s\", not a shop operation", op.name, op.method, op.path)
		}
		covered[specOp] = append(covered[specOp], op.name)
	}

	var missing []string
	for _, specOp := range spec {
		_, path, _ := strings.Cut(specOp, " ")
		if !strings.HasPrefix(path, "/api/v1/shops/{shop_id}/") {
			continue
		}
		_, isException := sdkExceptions[specOp]
		switch {
		case len(covered[specOp]) > 0 && isException:
			t.Errorf("%s is listed as an exception, but %v calls it: drop it from sdkExceptions", specOp, covered[specOp])
		case len(covered[specOp]) == 0 && !isException:
			missing = append(missing, specOp)
		}
	}
	sort.Strings(missing)
	for _, m := range missing {
		t.Errorf("no SDK method says \"API: %s\" (add one, or list it in sdkExceptions with the reason)", m)
	}
	for e := range sdkExceptions {
		if !slices.Contains(slices.Collect(maps.Values(spec)), e) {
			t.Errorf("the exception %q is not an operation of the served OpenAPI description: drop it", e)
		}
	}
}
