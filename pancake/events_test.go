package pancake_test

import (
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/pancake-pos/pancake-webhooks/pancake"
)

func TestEventsService_Publish(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		req  pancake.PublishRequest
		body string
	}{
		{"WithIDAndData", pancake.PublishRequest{
			Event: pancake.EventOrderCreated, ID: "order-42-created",
			Data: map[string]any{"order_id": "42", "items": []any{"a", "b"}},
		}, `{"event":"order.created","data":{"order_id":"42","items":["a","b"]},"id":"order-42-created"}`},
		{"NilDataIsEmptyObject", pancake.PublishRequest{Event: pancake.EventLoyaltyPointsEarned},
			`{"event":"loyalty.points_earned","data":{}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			client, bundle := setup(t)
			bundle.mux.HandleFunc(shopPath+"/events", func(w http.ResponseWriter, r *http.Request) {
				testRequest(t, r, "POST")
				testQuery(t, r, "")
				testBody(t, r, tc.body)
				writeJSON(w, 202, `{"event_id":"evt_01JD8Y","deliveries":3}`)
			})
			got, err := client.Events.Publish(t.Context(), tc.req)
			if err != nil {
				t.Fatalf("Events.Publish returned error: %v", err)
			}
			if diff := cmp.Diff(&pancake.PublishResult{EventID: "evt_01JD8Y", Deliveries: 3}, got); diff != "" {
				t.Errorf("Events.Publish returned diff (-want +got):\n%s", diff)
			}
		})
	}
}
