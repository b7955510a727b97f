package pancake_test

import (
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pancake-pos/pancake-webhooks/pancake"
)

// webhookJSON is a webhook as the server sends it, every field set.
const webhookJSON = `{
	"id": "wh_01JD8X",
	"url": "https://shop.example/webhooks/orders",
	"events": ["order.created", "order.status_changed"],
	"is_active": true,
	"secret_key": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
	"description": "Theo dõi đơn hàng",
	"created_at": "2026-11-26T20:31:05.123Z",
	"updated_at": "2026-11-26T21:00:00.000Z",
	"last_triggered_at": "2026-11-26T21:05:00.500Z",
	"health_status": {
		"status": "warning",
		"success_rate": 92.31,
		"last_failure_reason": "HTTP 500",
		"last_success_at": "2026-11-26T21:04:00.000Z",
		"last_failure_at": "2026-11-26T21:05:00.500Z",
		"consecutive_failures": 1
	},
	"disabled_reason": "endpoint answered 410 Gone"
}`

func wantWebhook(t *testing.T) *pancake.Webhook {
	return &pancake.Webhook{
		ID:              "wh_01JD8X",
		URL:             "https://shop.example/webhooks/orders",
		Events:          []pancake.WebhookEvent{pancake.EventOrderCreated, pancake.EventOrderStatusChanged},
		IsActive:        true,
		SecretKey:       "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
		Description:     "Theo dõi đơn hàng",
		CreatedAt:       ts(t, "2026-11-26T20:31:05.123Z"),
		UpdatedAt:       ts(t, "2026-11-26T21:00:00Z"),
		LastTriggeredAt: tsp(t, "2026-11-26T21:05:00.5Z"),
		HealthStatus: pancake.WebhookHealthStatus{
			Status:              pancake.HealthWarning,
			SuccessRate:         92.31,
			LastFailureReason:   "HTTP 500",
			LastSuccessAt:       tsp(t, "2026-11-26T21:04:00Z"),
			LastFailureAt:       tsp(t, "2026-11-26T21:05:00.5Z"),
			ConsecutiveFailures: 1,
		},
		DisabledReason: "endpoint answered 410 Gone",
	}
}

func TestWebhooksService_List(t *testing.T) {
	t.Parallel()
	client, bundle := setup(t)
	bundle.mux.HandleFunc(shopPath+"/webhooks", func(w http.ResponseWriter, r *http.Request) {
		testRequest(t, r, "GET")
		testQuery(t, r, "")
		testNoBody(t, r)
		writeJSON(w, 200, `{"data":[
			{"id":"wh_1","url":"https://a.example/h","events":["product.deleted"],"is_active":false,
			 "created_at":"2026-01-02T03:04:05.000Z","updated_at":"2026-01-02T03:04:05.000Z",
			 "health_status":{"status":"healthy","success_rate":100,"consecutive_failures":0}},
			`+webhookJSON+`],"total":2}`)
	})

	got, err := client.Webhooks.List(t.Context())
	if err != nil {
		t.Fatalf("Webhooks.List returned error: %v", err)
	}
	want := &pancake.WebhookList{
		Data: []pancake.Webhook{
			{
				ID: "wh_1", URL: "https://a.example/h", Events: []pancake.WebhookEvent{pancake.EventProductDeleted},
				CreatedAt: ts(t, "2026-01-02T03:04:05Z"), UpdatedAt: ts(t, "2026-01-02T03:04:05Z"),
				HealthStatus: pancake.WebhookHealthStatus{Status: pancake.HealthHealthy, SuccessRate: 100},
			},
			*wantWebhook(t),
		},
		Total: 2,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Webhooks.List returned diff (-want +got):\n%s", diff)
	}
}

func TestWebhooksService_GetByID(t *testing.T) {
	t.Parallel()
	client, bundle := setup(t)
	bundle.mux.HandleFunc(shopPath+"/webhooks/wh_01JD8X", func(w http.ResponseWriter, r *http.Request) {
		testRequest(t, r, "GET")
		testQuery(t, r, "")
		writeJSON(w, 200, webhookJSON)
	})

	got, err := client.Webhooks.GetByID(t.Context(), "wh_01JD8X")
	if err != nil {
		t.Fatalf("Webhooks.GetByID returned error: %v", err)
	}
	if diff := cmp.Diff(wantWebhook(t), got); diff != "" {
		t.Errorf("Webhooks.GetByID returned diff (-want +got):\n%s", diff)
	}
}

func TestWebhooksService_Create(t *testing.T) {
	t.Parallel()

	t.Run("AllFields", func(t *testing.T) {
		t.Parallel()
		client, bundle := setup(t)
		bundle.mux.HandleFunc(shopPath+"/webhooks", func(w http.ResponseWriter, r *http.Request) {
			testRequest(t, r, "POST")
			testBody(t, r, `{"url":"https://shop.example/webhooks/orders","events":["order.created","order.status_changed"],
				"description":"Theo dõi đơn hàng","is_active":false}`)
			writeJSON(w, 201, webhookJSON)
		})
		got, err := client.Webhooks.Create(t.Context(), pancake.CreateWebhookRequest{
			URL:         "https://shop.example/webhooks/orders",
			Events:      []pancake.WebhookEvent{pancake.EventOrderCreated, pancake.EventOrderStatusChanged},
			Description: "Theo dõi đơn hàng",
			IsActive:    pancake.Bool(false),
		})
		if err != nil {
			t.Fatalf("Webhooks.Create returned error: %v", err)
		}
		if diff := cmp.Diff(wantWebhook(t), got); diff != "" {
			t.Errorf("Webhooks.Create returned diff (-want +got):\n%s", diff)
		}
	})

	t.Run("OptionalFieldsLeftOut", func(t *testing.T) {
		t.Parallel()
		client, bundle := setup(t)
		bundle.mux.HandleFunc(shopPath+"/webhooks", func(w http.ResponseWriter, r *http.Request) {
			testRequest(t, r, "POST")
			testBody(t, r, `{"url":"https://x.example/h","events":["order.created"]}`)
			writeJSON(w, 201, webhookJSON)
		})
		if _, err := client.Webhooks.Create(t.Context(), pancake.CreateWebhookRequest{
			URL: "https://x.example/h", Events: []pancake.WebhookEvent{pancake.EventOrderCreated},
		}); err != nil {
			t.Fatalf("Webhooks.Create returned error: %v", err)
		}
	})
}

func TestWebhooksService_Update(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		req  pancake.UpdateWebhookRequest
		body string
	}{
		{"EmptyKeepsEverything", pancake.UpdateWebhookRequest{}, `{}`},
		{"URLAndEvents", pancake.UpdateWebhookRequest{
			URL:    pancake.String("https://new.example/h"),
			Events: []pancake.WebhookEvent{pancake.EventOrderCreated, pancake.EventCustomerCreated},
		}, `{"url":"https://new.example/h","events":["order.created","customer.created"]}`},
		{"ClearDescriptionAndDisable", pancake.UpdateWebhookRequest{
			Description: pancake.String(""), IsActive: pancake.Bool(false),
		}, `{"description":"","is_active":false}`},
		// A non-nil empty Events is sent, for the server to refuse, rather
		// than dropped into an update that changes nothing.
		{"EmptyEventsSentAsEmptyList", pancake.UpdateWebhookRequest{
			Events: []pancake.WebhookEvent{},
		}, `{"events":[]}`},
		{"EveryZeroValueSent", pancake.UpdateWebhookRequest{
			URL: pancake.String(""), Events: []pancake.WebhookEvent{}, Description: pancake.String(""), IsActive: pancake.Bool(false),
		}, `{"url":"","events":[],"description":"","is_active":false}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			client, bundle := setup(t)
			bundle.mux.HandleFunc(shopPath+"/webhooks/wh_01JD8X", func(w http.ResponseWriter, r *http.Request) {
				testRequest(t, r, "PUT")
				testBody(t, r, tc.body)
				writeJSON(w, 200, webhookJSON)
			})
			got, err := client.Webhooks.Update(t.Context(), "wh_01JD8X", tc.req)
			if err != nil {
				t.Fatalf("Webhooks.Update returned error: %v", err)
			}
			if diff := cmp.Diff(wantWebhook(t), got); diff != "" {
				t.Errorf("Webhooks.Update returned diff (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWebhooksService_Delete(t *testing.T) {
	t.Parallel()
	client, bundle := setup(t)
	bundle.mux.HandleFunc(shopPath+"/webhooks/wh_1", func(w http.ResponseWriter, r *http.Request) {
		testRequest(t, r, "DELETE")
		testNoBody(t, r)
		writeJSON(w, 200, `{"success":true}`)
	})
	if err := client.Webhooks.Delete(t.Context(), "wh_1"); err != nil {
		t.Fatalf("Webhooks.Delete returned error: %v", err)
	}
}

func TestWebhooksService_SetActive(t *testing.T) {
	t.Parallel()
	for _, active := range []bool{true, false} {
		client, bundle := setup(t)
		bundle.mux.HandleFunc(shopPath+"/webhooks/wh_01JD8X/set-active", func(w http.ResponseWriter, r *http.Request) {
			testRequest(t, r, "PUT")
			if active {
				testBody(t, r, `{"is_active":true}`)
			} else {
				testBody(t, r, `{"is_active":false}`)
			}
			writeJSON(w, 200, webhookJSON)
		})
		got, err := client.Webhooks.SetActive(t.Context(), "wh_01JD8X", active)
		if err != nil {
			t.Fatalf("Webhooks.SetActive returned error: %v", err)
		}
		if diff := cmp.Diff(wantWebhook(t), got); diff != "" {
			t.Errorf("Webhooks.SetActive returned diff (-want +got):\n%s", diff)
		}
	}
}

func TestWebhooksService_Test(t *testing.T) {
	t.Parallel()

	t.Run("Success", func(t *testing.T) {
		t.Parallel()
		client, bundle := setup(t)
		bundle.mux.HandleFunc(shopPath+"/webhooks/wh_1/test", func(w http.ResponseWriter, r *http.Request) {
			testRequest(t, r, "POST")
			testBody(t, r, `{"event":"order.created","payload":{"order_id":"test-123","total_amount":1000000}}`)
			writeJSON(w, 200, `{"delivery_id":"dlv_1","status":"success","response":{"status_code":200,"body":"ok"}}`)
		})
		got, err := client.Webhooks.Test(t.Context(), "wh_1", pancake.EventOrderCreated, map[string]any{
			"order_id": "test-123", "total_amount": 1000000,
		})
		if err != nil {
			t.Fatalf("Webhooks.Test returned error: %v", err)
		}
		want := &pancake.DeliveryResult{DeliveryID: "dlv_1", Status: pancake.StatusSuccess,
			Response: &pancake.AttemptResponse{StatusCode: 200, Body: "ok"}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Webhooks.Test returned diff (-want +got):\n%s", diff)
		}
	})

	// What our server answers when no HTTP response came: a response
	// with status_code 0, not a missing one.
	t.Run("NoResponseIsStatusCodeZero", func(t *testing.T) {
		t.Parallel()
		client, bundle := setup(t)
		bundle.mux.HandleFunc(shopPath+"/webhooks/wh_1/test", func(w http.ResponseWriter, r *http.Request) {
			testRequest(t, r, "POST")
			testBody(t, r, `{"event":"product.updated"}`)
			writeJSON(w, 200, `{"delivery_id":"dlv_2","status":"failed","response":{"status_code":0},"failure_reason":"connection refused"}`)
		})
		got, err := client.Webhooks.Test(t.Context(), "wh_1", pancake.EventProductUpdated, nil)
		if err != nil {
			t.Fatalf("Webhooks.Test returned error: %v", err)
		}
		want := &pancake.DeliveryResult{DeliveryID: "dlv_2", Status: pancake.StatusFailed,
			Response: &pancake.AttemptResponse{StatusCode: 0}, FailureReason: "connection refused"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Webhooks.Test returned diff (-want +got):\n%s", diff)
		}
	})

	// The contract makes response optional; a server that leaves it out
	// gives a nil Response.
	t.Run("ResponseLeftOutIsNil", func(t *testing.T) {
		t.Parallel()
		client, bundle := setup(t)
		bundle.mux.HandleFunc(shopPath+"/webhooks/wh_1/test", func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, 200, `{"delivery_id":"dlv_3","status":"failed","failure_reason":"connection refused"}`)
		})
		got, err := client.Webhooks.Test(t.Context(), "wh_1", pancake.EventProductUpdated, nil)
		if err != nil {
			t.Fatalf("Webhooks.Test returned error: %v", err)
		}
		want := &pancake.DeliveryResult{DeliveryID: "dlv_3", Status: pancake.StatusFailed, FailureReason: "connection refused"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Webhooks.Test returned diff (-want +got):\n%s", diff)
		}
	})
}

func TestWebhooksService_RotateSecret(t *testing.T) {
	t.Parallel()
	client, bundle := setup(t)
	bundle.mux.HandleFunc(shopPath+"/webhooks/wh_1/rotate-secret", func(w http.ResponseWriter, r *http.Request) {
		testRequest(t, r, "POST")
		testBody(t, r, `{}`)
		writeJSON(w, 200, `{"secret_key":"whsec_bmV3LXNlY3JldA=="}`)
	})
	got, err := client.Webhooks.RotateSecret(t.Context(), "wh_1")
	if err != nil {
		t.Fatalf("Webhooks.RotateSecret returned error: %v", err)
	}
	if diff := cmp.Diff(&pancake.RotateSecretResult{SecretKey: "whsec_bmV3LXNlY3JldA=="}, got); diff != "" {
		t.Errorf("Webhooks.RotateSecret returned diff (-want +got):\n%s", diff)
	}
}

func TestWebhooksService_GetStats(t *testing.T) {
	t.Parallel()
	const statsJSON = `{"total_deliveries":13,"success_count":11,"failure_count":2,"average_duration_ms":41.5,
		"event_counts":{"order.created":10,"order.status_changed":3},
		"hourly_stats":[{"hour":"2024-04-01T10:00:00.000Z","total":10,"success":9,"failed":1},
		                {"hour":"2024-04-02T00:00:00.000Z","total":3,"success":2,"failed":1}]}`
	want := &pancake.WebhookStats{
		TotalDeliveries: 13, SuccessCount: 11, FailureCount: 2, AverageDurationMS: 41.5,
		EventCounts: map[pancake.WebhookEvent]int{pancake.EventOrderCreated: 10, pancake.EventOrderStatusChanged: 3},
		HourlyStats: []pancake.HourlyStat{
			{Hour: ts(t, "2024-04-01T10:00:00Z"), Total: 10, Success: 9, Failed: 1},
			{Hour: ts(t, "2024-04-02T00:00:00Z"), Total: 3, Success: 2, Failed: 1},
		},
	}
	for _, tc := range []struct {
		name   string
		params pancake.StatsParams
		query  string
	}{
		{"BothDates", pancake.StatsParams{FromDate: "2024-04-01", ToDate: "2024-04-29"}, "from_date=2024-04-01&to_date=2024-04-29"},
		{"FromOnly", pancake.StatsParams{FromDate: "2024-04-01"}, "from_date=2024-04-01"},
		{"NoDatesNoQuery", pancake.StatsParams{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			client, bundle := setup(t)
			bundle.mux.HandleFunc(shopPath+"/webhooks/wh_1/stats", func(w http.ResponseWriter, r *http.Request) {
				testRequest(t, r, "GET")
				testQuery(t, r, tc.query)
				writeJSON(w, 200, statsJSON)
			})
			got, err := client.Webhooks.GetStats(t.Context(), "wh_1", tc.params)
			if err != nil {
				t.Fatalf("Webhooks.GetStats returned error: %v", err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Webhooks.GetStats returned diff (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWebhooksService_ClearDeliveryHistory(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		params pancake.ClearHistoryParams
		body   string
	}{
		{"BeforeDateAndStatus", pancake.ClearHistoryParams{BeforeDate: "2024-04-01", Status: pancake.StatusFailed}, `{"before_date":"2024-04-01","status":"failed"}`},
		{"EverythingFinished", pancake.ClearHistoryParams{}, `{}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			client, bundle := setup(t)
			bundle.mux.HandleFunc(shopPath+"/webhooks/wh_1/clear-history", func(w http.ResponseWriter, r *http.Request) {
				testRequest(t, r, "POST")
				testBody(t, r, tc.body)
				writeJSON(w, 200, `{"deleted_count":42}`)
			})
			got, err := client.Webhooks.ClearDeliveryHistory(t.Context(), "wh_1", tc.params)
			if err != nil {
				t.Fatalf("Webhooks.ClearDeliveryHistory returned error: %v", err)
			}
			if diff := cmp.Diff(&pancake.ClearHistoryResult{DeletedCount: 42}, got); diff != "" {
				t.Errorf("Webhooks.ClearDeliveryHistory returned diff (-want +got):\n%s", diff)
			}
		})
	}
}
