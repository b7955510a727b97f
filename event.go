package webhooks

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// EventType is the name of a thing that happened in a shop, e.g. "order.created".
type EventType = string

// EventTypeInfo describes one event type for GET /api/v1/event-types.
type EventTypeInfo struct {
	Name        string `json:"name"`
	Description string `json:"description"`
}

// EventTypes lists every event type the contract knows, in the contract's order.
var EventTypes = []EventTypeInfo{
	{"order.created", "A new order was created"},
	{"order.updated", "An order was updated"},
	{"order.status_changed", "An order's status changed"},
	{"order.cancelled", "An order was cancelled"},
	{"customer.created", "A new customer was created"},
	{"customer.updated", "A customer's details were updated"},
	{"inventory.updated", "Stock levels were updated"},
	{"product.created", "A new product was created"},
	{"product.updated", "A product was updated"},
	{"product.deleted", "A product was deleted"},
	{"transaction.created", "A new payment transaction was created"},
	{"loyalty.points_earned", "A customer earned loyalty points"},
	{"loyalty.points_redeemed", "A customer redeemed loyalty points"},
}

// EventTypeNames returns the names of EventTypes.
func EventTypeNames() []string {
	names := make([]string, len(EventTypes))
	for i, t := range EventTypes {
		names[i] = t.Name
	}
	return names
}

// IsEventType reports whether name is a known event type.
func IsEventType(name string) bool {
	return slices.ContainsFunc(EventTypes, func(t EventTypeInfo) bool { return t.Name == name })
}

// Limits on what a publisher may send.
const (
	MaxIdempotencyKeyLen = 255
	MaxBatchEvents       = 500
	IdempotencyWindow    = 24 * time.Hour
)

// Event is one published event with its wire envelope.
type Event struct {
	ID             string
	ShopID         string
	Type           EventType
	IdempotencyKey string // "" when the publisher gave none
	Test           bool
	CreatedAt      time.Time
	// Envelope is the exact JSON body receivers get.
	Envelope json.RawMessage
	// Deliveries is how many webhooks the event was queued for.
	Deliveries int
}

// Envelope is the body POSTed to a receiver.
type Envelope struct {
	ID        string          `json:"id"`
	Event     EventType       `json:"event"`
	ShopID    string          `json:"shop_id"`
	CreatedAt string          `json:"created_at"`
	Data      json.RawMessage `json:"data"`
	Test      bool            `json:"test,omitempty"`
}

// NewEvent builds an Event with a fresh id and its encoded envelope. data must
// be a JSON object (the caller validates it).
func NewEvent(shopID string, typ EventType, data json.RawMessage, idemKey string, test bool, now time.Time) (*Event, error) {
	e := &Event{
		ID:             NewID(PrefixEvent, now),
		ShopID:         shopID,
		Type:           typ,
		IdempotencyKey: idemKey,
		Test:           test,
		CreatedAt:      now.UTC(),
	}
	if len(data) == 0 {
		data = json.RawMessage("{}")
	}
	// Envelope's fields in its order, written directly: json.Marshal would
	// reflect over the struct and scan data twice (validate, then compact
	// with HTML escaping); Compact validates and compacts it in one pass
	// and keeps the publisher's characters as they were.
	buf := bytes.NewBuffer(make([]byte, 0, len(data)+192))
	buf.WriteString(`{"id":`)
	writeJSONString(buf, e.ID)
	buf.WriteString(`,"event":`)
	writeJSONString(buf, typ)
	buf.WriteString(`,"shop_id":`)
	writeJSONString(buf, shopID)
	buf.WriteString(`,"created_at":`)
	writeJSONString(buf, FormatTime(e.CreatedAt))
	buf.WriteString(`,"data":`)
	if err := json.Compact(buf, data); err != nil {
		return nil, fmt.Errorf("event data: %w", err)
	}
	if test {
		buf.WriteString(`,"test":true`)
	}
	buf.WriteByte('}')
	e.Envelope = buf.Bytes()
	return e, nil
}

// writeJSONString writes s as a JSON string. Ids, event types and times
// are plain ASCII and written as they are; anything else goes through
// encoding/json.
func writeJSONString(buf *bytes.Buffer, s string) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s) // a string always encodes
			buf.Write(b)
			return
		}
	}
	buf.WriteByte('"')
	buf.WriteString(s)
	buf.WriteByte('"')
}

// PublishInput is one event a publisher sends.
type PublishInput struct {
	Event          EventType
	Data           json.RawMessage
	IdempotencyKey string
}

// PublishResult answers one published event.
type PublishResult struct {
	EventID    string `json:"event_id"`
	Deliveries int    `json:"deliveries"`
}

// EventService accepts events from the POS.
type EventService interface {
	// Publish durably stores the events of one shop, and one queued delivery
	// per subscribed active webhook, all in one commit; when it returns
	// without error everything is on disk. An input whose IdempotencyKey was
	// seen in the last 24 hours gets the first answer and queues nothing.
	Publish(ctx context.Context, shopID string, in []PublishInput) ([]PublishResult, error)
}
