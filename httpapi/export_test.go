package httpapi

import (
	"encoding/json"
	"time"

	webhooks "github.com/pancake-pos/pancake-webhooks"
)

// RouteTable lists the method and path of every route the mux may serve,
// for the OpenAPI test.
func RouteTable() [][2]string {
	out := make([][2]string, 0, len(routes))
	for _, rt := range routes {
		out = append(out, [2]string{rt.Method, rt.Path})
	}
	return out
}

// SyncAttemptsWaiting returns how many test sends and manual retries of
// shop wait for a slot of the server's gate.
func SyncAttemptsWaiting(s *Server, shop string) int {
	s.sync.mu.Lock()
	defer s.sync.mu.Unlock()
	if slots := s.sync.shops[shop]; slots != nil {
		return slots.waiting
	}
	return 0
}

// Parsers under fuzzing.

func DecodeWebhookParams(body []byte, create bool) error {
	_, err := decodeWebhookParams(body, webhooks.URLPolicy{}, create)
	return err
}

func DecodeTest(body []byte) (json.RawMessage, error) {
	p, err := decodeTest(body)
	return p.Payload, err
}

func DecodePublishBatch(body []byte) ([]webhooks.PublishInput, error) {
	return decodePublishBatch(body)
}

func DecodeClearHistory(body []byte) error {
	_, err := decodeClearHistory(body)
	return err
}

func ParseDeliveryQuery(rawQuery string, pending bool) (webhooks.DeliveryFilter, error) {
	dq, err := parseDeliveryQuery(rawQuery, "shop", pending)
	return dq.Filter, err
}

func ParseStatsQuery(rawQuery string, now time.Time) (time.Time, time.Time, error) {
	return parseStatsQuery(rawQuery, now)
}

func DecodePublish(body []byte) (webhooks.PublishInput, error) {
	return decodePublish(body)
}

// MaxListsPerShop is how many delivery lists of a shop may be under way.
const MaxListsPerShop = maxListsPerShop

// ListsUnderWay returns how many delivery lists of shop are read, written
// or waiting for their turn.
func ListsUnderWay(s *Server, shop string) int {
	s.lists.mu.Lock()
	defer s.lists.mu.Unlock()
	if slots := s.lists.shops[shop]; slots != nil {
		return slots.users
	}
	return 0
}
