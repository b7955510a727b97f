package webhooks

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/go-json-experiment/json/jsontext"
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
	// with HTML escaping). jsontext validates and compacts data in one
	// pass and, with these options, keeps the publisher's characters as
	// they were, as json.Compact does (a fuzz test holds them equal) but
	// several times faster.
	buf := make([]byte, 0, len(data)+192)
	buf = append(buf, `{"id":`...)
	buf = appendJSONString(buf, e.ID)
	buf = append(buf, `,"event":`...)
	buf = appendJSONString(buf, typ)
	buf = append(buf, `,"shop_id":`...)
	buf = appendJSONString(buf, shopID)
	buf = append(buf, `,"created_at":`...)
	buf = appendJSONString(buf, FormatTime(e.CreatedAt))
	buf = append(buf, `,"data":`...)
	var err error
	if buf, err = appendCompact(buf, data); err != nil {
		return nil, fmt.Errorf("event data: %w", err)
	}
	if test {
		buf = append(buf, `,"test":true`...)
	}
	buf = append(buf, '}')
	e.Envelope = buf
	return e, nil
}

// appendJSONString appends s as a JSON string. Ids, event types and times
// are plain ASCII and written as they are; anything else goes through
// encoding/json.
func appendJSONString(buf []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s) // a string always encodes
			return append(buf, b...)
		}
	}
	buf = append(buf, '"')
	buf = append(buf, s...)
	return append(buf, '"')
}

// compactOptions make jsontext accept what json.Compact accepts and keep
// strings and numbers byte for byte.
var compactOptions = []jsontext.Options{
	jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true), jsontext.PreserveRawStrings(true),
}

// appendCompact appends data without its insignificant whitespace, as
// json.Compact does. Where jsontext refuses data, json.Compact has the
// last word (and its error is the one returned).
func appendCompact(dst, data []byte) ([]byte, error) {
	out, err := jsontext.AppendFormat(dst, data, compactOptions...)
	if err == nil {
		return out, nil
	}
	b := bytes.NewBuffer(dst[:len(dst):len(dst)])
	if err := json.Compact(b, data); err != nil {
		return dst, err
	}
	return b.Bytes(), nil
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
