package pancake_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"time"

	"github.com/pancake-pos/pancake-webhooks/pancake"
)

// The examples run against newFakeAPI, a small stand-in for the server, so
// that their output is checked.

func ExampleNewClient() {
	api := newFakeAPI()
	defer api.Close()

	// In production: pancake.NewClient(apiKey, shopID) talks to
	// https://pos.pages.fm/api/v1; WithBaseURL points it at your server.
	client := pancake.NewClient("your-api-key", "your-shop-id",
		pancake.WithBaseURL(api.URL+"/api/v1"),
		pancake.WithHTTPClient(&http.Client{Timeout: 30 * time.Second}),
	)

	list, err := client.Webhooks.List(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	for _, wh := range list.Data {
		fmt.Println(wh.ID, wh.URL, wh.Events, wh.HealthStatus.Status)
	}
	// Output:
	// wh_orders https://your-domain.com/webhooks/orders [order.created order.status_changed] warning
}

// The seed's setupOrderWebhook: create a webhook, test it, and disable it if
// the test fails.
func Example_setupOrderWebhook() {
	api := newFakeAPI() // its receiver refuses connections
	defer api.Close()
	client := pancake.NewClient("your-api-key", "your-shop-id", pancake.WithBaseURL(api.URL+"/api/v1"))
	ctx := context.Background()

	webhook, err := client.Webhooks.Create(ctx, pancake.CreateWebhookRequest{
		URL:         "https://your-domain.com/webhooks/orders",
		Events:      []pancake.WebhookEvent{pancake.EventOrderCreated, pancake.EventOrderStatusChanged},
		Description: "Theo dõi đơn hàng mới và cập nhật trạng thái",
	})
	if err != nil {
		fmt.Println("Lỗi khi thiết lập webhook:", err)
		return
	}
	fmt.Println("Created", webhook.ID, "active:", webhook.IsActive)

	result, err := client.Webhooks.Test(ctx, webhook.ID, pancake.EventOrderCreated, map[string]any{
		"order_id":     "test-123",
		"total_amount": 1000000,
	})
	if err != nil {
		fmt.Println("Lỗi khi thiết lập webhook:", err)
		return
	}
	if result.Status == pancake.StatusSuccess {
		fmt.Println("Webhook đã sẵn sàng sử dụng!")
		return
	}
	fmt.Println("Lỗi khi test webhook:", result.FailureReason)
	// Disable the webhook while the receiver is broken.
	webhook, err = client.Webhooks.SetActive(ctx, webhook.ID, false)
	if err != nil {
		fmt.Println("Lỗi khi thiết lập webhook:", err)
		return
	}
	fmt.Println("Disabled", webhook.ID, "active:", webhook.IsActive)
	// Output:
	// Created wh_orders active: true
	// Lỗi khi test webhook: connection refused
	// Disabled wh_orders active: false
}

// The seed's monitorWebhookHealth: compute the success rate over a period
// and, under 90 %, show the last failed deliveries with their reasons.
func Example_monitorWebhookHealth() {
	api := newFakeAPI()
	defer api.Close()
	client := pancake.NewClient("your-api-key", "your-shop-id", pancake.WithBaseURL(api.URL+"/api/v1"))
	ctx := context.Background()
	webhookID := "wh_orders"

	stats, err := client.Webhooks.GetStats(ctx, webhookID, pancake.StatsParams{FromDate: "2024-04-01", ToDate: "2024-04-29"})
	if err != nil {
		fmt.Println("Lỗi khi kiểm tra webhook:", err)
		return
	}
	if stats.TotalDeliveries == 0 {
		fmt.Println("No deliveries in the period")
		return
	}
	successRate := float64(stats.SuccessCount) / float64(stats.TotalDeliveries) * 100
	if successRate < 90 {
		fmt.Printf("Tỷ lệ thành công thấp: %.2f%%\n", successRate)

		failed, err := client.Webhooks.ListDeliveries(ctx, pancake.DeliveryListParams{
			WebhookID: webhookID,
			Status:    pancake.StatusFailed,
			PageSize:  5,
		})
		if err != nil {
			fmt.Println("Lỗi khi kiểm tra webhook:", err)
			return
		}
		fmt.Println("Các lỗi gần đây:")
		for _, d := range failed.Data {
			fmt.Printf("- %s: %s\n", d.CreatedAt.Format(time.RFC3339), d.FailureReason)
		}
	}
	// Output:
	// Tỷ lệ thành công thấp: 70.00%
	// Các lỗi gần đây:
	// - 2024-04-29T12:00:00Z: HTTP 500
	// - 2024-04-29T11:00:00Z: timeout after 15s
	// - 2024-04-29T10:00:00Z: connection refused
	// - 2024-04-29T09:00:00Z: HTTP 500
	// - 2024-04-29T08:00:00Z: timeout after 15s
}

// Deliveries walks every page; breaking out of the loop stops it.
func ExampleWebhooksService_Deliveries() {
	api := newFakeAPI()
	defer api.Close()
	client := pancake.NewClient("your-api-key", "your-shop-id", pancake.WithBaseURL(api.URL+"/api/v1"))

	reasons := map[string]int{}
	for d, err := range client.Webhooks.Deliveries(context.Background(), pancake.DeliveryListParams{
		WebhookID: "wh_orders",
		Status:    pancake.StatusFailed,
		PageSize:  5, // 12 failures: 3 requests
	}) {
		if err != nil {
			log.Fatal(err)
		}
		reasons[d.FailureReason]++
	}
	for _, r := range slices.Sorted(maps.Keys(reasons)) {
		fmt.Printf("%d× %s\n", reasons[r], r)
	}
	fmt.Println(api.requests, "requests")
	// Output:
	// 4× HTTP 500
	// 4× connection refused
	// 4× timeout after 15s
	// 3 requests
}

// PendingDeliveries walks the queue page by page, next due first;
// GetPendingDeliveries returns one page and the total.
func ExampleWebhooksService_PendingDeliveries() {
	api := newFakeAPI()
	defer api.Close()
	client := pancake.NewClient("your-api-key", "your-shop-id", pancake.WithBaseURL(api.URL+"/api/v1"))
	ctx := context.Background()

	first, err := client.Webhooks.GetPendingDeliveries(ctx, pancake.PendingListParams{WebhookID: "wh_orders", PageSize: 2})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(first.Deliveries), "of", first.TotalCount, "queued")

	for d, err := range client.Webhooks.PendingDeliveries(ctx, pancake.PendingListParams{WebhookID: "wh_orders", PageSize: 2}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(d.ID, d.Event, "attempt", d.Attempt, "due", d.ScheduledAt.Format(time.RFC3339))
	}
	// Output:
	// 2 of 3 queued
	// dlv_q1 order.created attempt 2 due 2024-04-29T12:00:05Z
	// dlv_q2 order.status_changed attempt 1 due 2024-04-29T12:01:00Z
	// dlv_q3 order.created attempt 3 due 2024-04-29T12:30:00Z
}

// Errors of the API are *pancake.Error; errors.Is tells their kind.
func ExampleError() {
	api := newFakeAPI()
	defer api.Close()
	client := pancake.NewClient("your-api-key", "your-shop-id", pancake.WithBaseURL(api.URL+"/api/v1"))

	_, err := client.Webhooks.GetByID(context.Background(), "wh_gone")
	if errors.Is(err, pancake.ErrNotFound) {
		fmt.Println("no such webhook")
	}
	var apiErr *pancake.Error
	if errors.As(err, &apiErr) {
		fmt.Println(apiErr.StatusCode, apiErr.Code, apiErr.Message)
	}
	fmt.Println(err)

	wrongKey := pancake.NewClient("not-a-key", "your-shop-id", pancake.WithBaseURL(api.URL+"/api/v1"))
	_, err = wrongKey.Webhooks.List(context.Background())
	fmt.Println(errors.Is(err, pancake.ErrUnauthorized))
	// Output:
	// no such webhook
	// 404 not_found Webhook not found
	// pancake: 404 not_found: Webhook not found
	// true
}

// Verify in an http.Handler: read the body (bounded), verify it against the
// webhook's secrets, handle the event.
func ExampleVerify() {
	// The webhook's secret_key; during a rotation, the old and the new.
	secrets := []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}

	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, pancake.MaxWebhookBodyBytes))
		if err != nil {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		e, err := pancake.Verify(secrets, r.Header, body, 5*time.Minute)
		if err != nil {
			http.Error(w, "invalid webhook", http.StatusBadRequest)
			return
		}
		var order struct {
			OrderID string `json:"order_id"`
		}
		if err := json.Unmarshal(e.Data, &order); err != nil {
			http.Error(w, "unexpected data", http.StatusBadRequest)
			return
		}
		fmt.Printf("%s %s: order %s\n", e.Event, e.ID, order.OrderID)
		w.WriteHeader(http.StatusNoContent)
	})

	// A delivery, signed as the server signs it, and the same tampered with.
	body := []byte(`{"id":"evt_1","event":"order.created","shop_id":"your-shop-id","created_at":"2024-04-29T12:00:00.000Z","data":{"order_id":"123"}}`)
	tampered := bytes.Replace(body, []byte("123"), []byte("999"), 1)
	now := time.Now()
	sig, err := pancake.Sign(secrets[0], "evt_1", now, body)
	if err != nil {
		log.Fatal(err)
	}
	for _, sent := range [][]byte{body, tampered} {
		req := httptest.NewRequest(http.MethodPost, "/webhooks/pancake", bytes.NewReader(sent))
		req.Header.Set(pancake.HeaderWebhookID, "evt_1")
		req.Header.Set(pancake.HeaderWebhookTimestamp, strconv.FormatInt(now.Unix(), 10))
		req.Header.Set(pancake.HeaderWebhookSignature, sig)
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		fmt.Println(rec.Code)
	}
	// Output:
	// order.created evt_1: order 123
	// 204
	// 400
}

// WebhookHandler is a receiver in three lines; it answers 204, or 400 to a
// bad signature, or 500 when the function fails so that the server retries.
func ExampleWebhookHandler() {
	secrets := []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}

	mux := http.NewServeMux()
	mux.Handle("POST /webhooks/pancake", pancake.WebhookHandler(secrets, func(ctx context.Context, e *pancake.Envelope) error {
		fmt.Println("received", e.Event, e.ID, "test:", e.Test)
		return nil
	}))

	// A test send, signed as the server signs it.
	body := []byte(`{"id":"evt_2","event":"order.created","shop_id":"your-shop-id","created_at":"2024-04-29T12:00:00.000Z","data":{"order_id":"test-123"},"test":true}`)
	now := time.Now()
	sig, _ := pancake.Sign(secrets[0], "evt_2", now, body)
	req := httptest.NewRequest(http.MethodPost, "/webhooks/pancake", bytes.NewReader(body))
	req.Header.Set("webhook-id", "evt_2")
	req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	req.Header.Set("webhook-signature", sig)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	fmt.Println(rec.Code)
	// Output:
	// received order.created evt_2 test: true
	// 204
}

// fakeAPI is the stand-in server of the examples: the shop your-shop-id,
// key your-api-key, one webhook wh_orders whose receiver refuses
// connections, 40 attempts of which 12 failed, and 3 queued deliveries.
type fakeAPI struct {
	*httptest.Server
	requests int // to GET /webhook-deliveries
	active   bool
}

func newFakeAPI() *fakeAPI {
	api := &fakeAPI{active: true}
	const shop = "/api/v1/shops/your-shop-id"
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(v)
	}
	webhook := func() map[string]any {
		return map[string]any{
			"id": "wh_orders", "url": "https://your-domain.com/webhooks/orders",
			"events": []string{"order.created", "order.status_changed"}, "is_active": api.active,
			"secret_key": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
			"created_at": "2024-04-01T00:00:00.000Z", "updated_at": "2024-04-01T00:00:00.000Z",
			"health_status": map[string]any{"status": "warning", "success_rate": 70, "consecutive_failures": 3},
		}
	}
	mux.HandleFunc("GET "+shop+"/webhooks", func(w http.ResponseWriter, r *http.Request) {
		wh := webhook()
		delete(wh, "secret_key")
		reply(w, 200, map[string]any{"data": []any{wh}, "total": 1})
	})
	mux.HandleFunc("POST "+shop+"/webhooks", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 201, webhook())
	})
	mux.HandleFunc("POST "+shop+"/webhooks/wh_orders/test", func(w http.ResponseWriter, r *http.Request) {
		// No HTTP response came: status_code 0, and failure_reason says why.
		reply(w, 200, map[string]any{"delivery_id": "dlv_test", "status": "failed",
			"response": map[string]any{"status_code": 0}, "failure_reason": "connection refused"})
	})
	mux.HandleFunc("PUT "+shop+"/webhooks/wh_orders/set-active", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			IsActive bool `json:"is_active"`
		}
		json.NewDecoder(r.Body).Decode(&body)
		api.active = body.IsActive
		reply(w, 200, webhook())
	})
	mux.HandleFunc("GET "+shop+"/webhooks/wh_orders/stats", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 200, map[string]any{
			"total_deliveries": 40, "success_count": 28, "failure_count": 12, "average_duration_ms": 120.5,
			"event_counts": map[string]int{"order.created": 30, "order.status_changed": 10}, "hourly_stats": []any{},
		})
	})
	mux.HandleFunc("GET "+shop+"/webhooks/{id}", func(w http.ResponseWriter, r *http.Request) {
		reply(w, 404, map[string]any{"success": false, "error": map[string]any{"code": "not_found", "message": "Webhook not found", "details": map[string]any{}}})
	})
	mux.HandleFunc("GET "+shop+"/webhook-deliveries", func(w http.ResponseWriter, r *http.Request) {
		api.requests++
		size, _ := strconv.Atoi(r.URL.Query().Get("page_size"))
		page, _ := strconv.Atoi(r.URL.Query().Get("page_number"))
		size, page = max(size, 1), max(page, 1)
		const total = 12 // failed deliveries, newest first, one an hour
		reasons := []string{"HTTP 500", "timeout after 15s", "connection refused"}
		newest := time.Date(2024, 4, 29, 12, 0, 0, 0, time.UTC)
		data := []any{}
		for i := (page - 1) * size; i < min(page*size, total); i++ {
			data = append(data, map[string]any{
				"id": fmt.Sprintf("dlv_%d", total-i), "webhook_id": "wh_orders", "event": "order.created",
				"payload": map[string]any{}, "response": map[string]any{"status_code": 0, "headers": map[string]any{}},
				"status": "failed", "failure_reason": reasons[i%3],
				"created_at": newest.Add(-time.Duration(i) * time.Hour).Format(time.RFC3339), "duration_ms": 15000,
			})
		}
		reply(w, 200, map[string]any{"data": data, "total": total, "page_number": page, "page_size": size,
			"total_pages": (total + size - 1) / size})
	})
	mux.HandleFunc("GET "+shop+"/webhook-deliveries/pending", func(w http.ResponseWriter, r *http.Request) {
		size, _ := strconv.Atoi(r.URL.Query().Get("page_size"))
		page, _ := strconv.Atoi(r.URL.Query().Get("page_number"))
		if size <= 0 {
			size = 20 // the server's default
		}
		page = max(page, 1)
		type queued struct {
			id, event string
			attempt   int
			due       string
		}
		queue := []queued{ // next due first
			{"dlv_q1", "order.created", 2, "2024-04-29T12:00:05.000Z"},
			{"dlv_q2", "order.status_changed", 1, "2024-04-29T12:01:00.000Z"},
			{"dlv_q3", "order.created", 3, "2024-04-29T12:30:00.000Z"},
		}
		data := []any{}
		for i := (page - 1) * size; i < min(page*size, len(queue)); i++ {
			q := queue[i]
			data = append(data, map[string]any{
				"id": q.id, "webhook_id": "wh_orders", "event": q.event, "status": "pending", "payload": map[string]any{},
				"duration_ms": 0, "created_at": "2024-04-29T11:59:00.000Z", "attempt": q.attempt, "scheduled_at": q.due,
			})
		}
		reply(w, 200, map[string]any{"total_count": len(queue), "deliveries": data})
	})
	api.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer your-api-key" {
			reply(w, 401, map[string]any{"success": false, "error": map[string]any{"code": "unauthorized", "message": "Missing or invalid API key", "details": map[string]any{}}})
			return
		}
		mux.ServeHTTP(w, r)
	}))
	return api
}
