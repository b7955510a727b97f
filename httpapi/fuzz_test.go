package httpapi_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"time"

	webhooks "github.com/pancake-pos/pancake-webhooks"
	"github.com/pancake-pos/pancake-webhooks/httpapi"
)

// More seeds live in testdata/fuzz/<FuzzName>.

// wantClientError fails unless err is nil or a 400 *webhooks.Error.
func wantClientError(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	var e *webhooks.Error
	if !errors.As(err, &e) || (e.Code != webhooks.EINVALID && e.Code != webhooks.EINVALIDJSON) {
		t.Fatalf("error %v is not a client error", err)
	}
	if e.Code == webhooks.EINVALID && len(e.Details) == 0 {
		t.Fatalf("validation error without details: %v", err)
	}
}

func FuzzDecodeCreateWebhook(f *testing.F) {
	f.Add([]byte(`{"url":"https://example.com/h","events":["order.created"],"description":"d","is_active":false}`), true)
	f.Add([]byte(`{"url":null,"events":null}`), false)
	f.Add([]byte(`{"events":["order.created","order.created"]} `), false)
	f.Add([]byte(`{"url":"https://example.com"} {}`), true)
	f.Fuzz(func(t *testing.T, body []byte, create bool) {
		err := httpapi.DecodeWebhookParams(body, create)
		wantClientError(t, err)
		if err == nil && len(bytes.TrimSpace(body)) > 0 && !json.Valid(body) {
			t.Fatalf("accepted invalid JSON %q", body)
		}
	})
}

func FuzzDecodeTest(f *testing.F) {
	f.Add([]byte(`{"event":"order.created","payload":{"a":1}}`))
	f.Add([]byte(`{"event":"order.created","payload":null}`))
	f.Add([]byte(`{"event":"x","payload":[]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		payload, err := httpapi.DecodeTest(body)
		wantClientError(t, err)
		if err != nil {
			return
		}
		var m map[string]any
		if json.Unmarshal(payload, &m) != nil || m == nil {
			t.Fatalf("accepted payload %q that is not an object", payload)
		}
	})
}

func FuzzDecodePublishBatch(f *testing.F) {
	f.Add([]byte(`{"events":[{"event":"order.created","data":{},"id":"k1"}]}`))
	f.Add([]byte(`{"events":[{"event":"order.created"},7,{"event":"x","data":[]}]}`))
	f.Add([]byte(`{"events":[]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		ins, err := httpapi.DecodePublishBatch(body)
		wantClientError(t, err)
		if err != nil {
			return
		}
		if len(ins) < 1 || len(ins) > webhooks.MaxBatchEvents {
			t.Fatalf("accepted %d events", len(ins))
		}
		for _, in := range ins {
			var m map[string]any
			if !webhooks.IsEventType(in.Event) || json.Unmarshal(in.Data, &m) != nil || m == nil {
				t.Fatalf("accepted %+v", in)
			}
			if len(in.IdempotencyKey) > webhooks.MaxIdempotencyKeyLen {
				t.Fatalf("accepted a key of %d bytes", len(in.IdempotencyKey))
			}
		}
	})
}

func FuzzDecodeClearHistory(f *testing.F) {
	f.Add([]byte(`{"before_date":"2026-11-26","status":"failed"}`))
	f.Add([]byte(`{"before_date":"2026-11-26T10:00:00Z"}`))
	f.Add([]byte(`{"before_date":null,"status":""}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		wantClientError(t, httpapi.DecodeClearHistory(body))
	})
}

func FuzzParseDeliveryQuery(f *testing.F) {
	f.Add("page_size=10&page_number=2&status=failed&event=order.created", false)
	f.Add("from_date=2026-01-01&to_date=2026-01-31&webhook_id=wh_01jq0c9z7k3m4n5p6q7r8s9t0v", false)
	f.Add("page_size=abc&status=ok&from_date=2024-13-01", true)
	f.Add("page_size=%zz", false)
	f.Fuzz(func(t *testing.T, raw string, pending bool) {
		filter, err := httpapi.ParseDeliveryQuery(raw, pending)
		wantClientError(t, err)
		if err != nil {
			return
		}
		if filter.Limit < 1 || filter.Limit > httpapi.MaxPageSize || filter.Offset < 0 || filter.Offset%filter.Limit != 0 {
			t.Fatalf("limit %d offset %d", filter.Limit, filter.Offset)
		}
		if !filter.From.IsZero() && !filter.To.IsZero() && !filter.From.Before(filter.To) {
			t.Fatalf("from %v not before to %v", filter.From, filter.To)
		}
		if pending && filter.Status != webhooks.StatusPending {
			t.Fatalf("pending list with status %q", filter.Status)
		}
	})
}

func FuzzParseStatsQuery(f *testing.F) {
	f.Add("from_date=2026-11-01&to_date=2026-11-30")
	f.Add("from_date=2030-01-01")
	f.Add("to_date=2000-02-29")
	f.Add("to_date=2026-11-19&from_date=2026-11-20")
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, raw string) {
		from, to, err := httpapi.ParseStatsQuery(raw, now)
		wantClientError(t, err)
		if err == nil && !from.Before(to) {
			t.Fatalf("from %v not before to %v", from, to)
		}
	})
}
