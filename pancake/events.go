package pancake

import (
	"context"
	"net/http"
)

// WebhookEvent is the name of a thing that happened in a shop, e.g.
// "order.created". The server answers 400 validation_failed to any name
// other than the 13 constants.
type WebhookEvent string

// The event types of the contract.
const (
	EventOrderCreated          WebhookEvent = "order.created"
	EventOrderUpdated          WebhookEvent = "order.updated"
	EventOrderStatusChanged    WebhookEvent = "order.status_changed"
	EventOrderCancelled        WebhookEvent = "order.cancelled"
	EventCustomerCreated       WebhookEvent = "customer.created"
	EventCustomerUpdated       WebhookEvent = "customer.updated"
	EventInventoryUpdated      WebhookEvent = "inventory.updated"
	EventProductCreated        WebhookEvent = "product.created"
	EventProductUpdated        WebhookEvent = "product.updated"
	EventProductDeleted        WebhookEvent = "product.deleted"
	EventTransactionCreated    WebhookEvent = "transaction.created"
	EventLoyaltyPointsEarned   WebhookEvent = "loyalty.points_earned"
	EventLoyaltyPointsRedeemed WebhookEvent = "loyalty.points_redeemed"
)

// AllEvents returns the 13 event types, in the contract's order.
func AllEvents() []WebhookEvent {
	return []WebhookEvent{
		EventOrderCreated, EventOrderUpdated, EventOrderStatusChanged, EventOrderCancelled,
		EventCustomerCreated, EventCustomerUpdated, EventInventoryUpdated,
		EventProductCreated, EventProductUpdated, EventProductDeleted,
		EventTransactionCreated, EventLoyaltyPointsEarned, EventLoyaltyPointsRedeemed,
	}
}

// EventsService publishes events: the POS side of the API, which the
// TypeScript SDK does not have. Get it from Client.Events.
type EventsService service

// PublishRequest is one event to publish.
type PublishRequest struct {
	// Event is the event type.
	Event WebhookEvent `json:"event"`
	// Data is the event's data, the envelope's "data"; nil sends {}.
	Data map[string]any `json:"data"`
	// ID, when set, is an idempotency key: the same ID again within 24
	// hours gives the first answer and queues nothing. It also makes
	// Publish safe to retry.
	ID string `json:"id,omitempty"`
}

// PublishResult answers Publish.
type PublishResult struct {
	// EventID is the event's id (evt_…), the webhook-id receivers get.
	EventID string `json:"event_id"`
	// Deliveries is how many webhooks the event was queued for.
	Deliveries int `json:"deliveries"`
}

// Publish publishes an event of the client's shop; it is durable when
// Publish returns. A request with an ID is retried like an idempotent one;
// one without is sent once. Errors: ErrValidation (unknown event type, bad
// data or ID), ErrUnauthorized, ErrForbidden, ErrRateLimited, ErrUnavailable
// (with an ID, only once its retries are spent), and a *Error with
// StatusCode 413 for a body over the server's limit (256 KiB by default).
//
// API: POST /api/v1/shops/{shop_id}/events
func (s *EventsService) Publish(ctx context.Context, req PublishRequest) (*PublishResult, error) {
	path, err := s.client.shopPath("events")
	if err != nil {
		return nil, err
	}
	if req.Data == nil {
		req.Data = map[string]any{}
	}
	out := new(PublishResult)
	r := &request{method: http.MethodPost, path: path, body: req, retryPOST: req.ID != ""}
	if err := s.client.do(ctx, r, out); err != nil {
		return nil, err
	}
	return out, nil
}
