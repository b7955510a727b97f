package webhooks_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	webhooks "github.com/pancake-pos/pancake-webhooks"
)

// The envelope is what receivers get and what is signed: exactly the
// contract's fields in order, data compacted but otherwise as published.
func TestNewEventEnvelope(t *testing.T) {
	now := time.Date(2026, 11, 27, 1, 2, 3, 456e6, time.UTC)
	for _, tc := range []struct {
		name, shop string
		data       string
		test       bool
		wantData   string
	}{
		{"plain", "shop-1", `{"order_id":"o-1","total":1000}`, false, `{"order_id":"o-1","total":1000}`},
		{"whitespace", "shop-1", "{ \"a\" : [1, 2,\n3] }", false, `{"a":[1,2,3]}`},
		{"html and unicode kept", "shop-1", `{"note":"<b>&</b> phở \u00e9"}`, true, `{"note":"<b>&</b> phở \u00e9"}`},
		{"odd shop id", "shop \"x\"\\ <é>", `{}`, false, `{}`},
		{"empty data", "s", ``, false, `{}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := webhooks.NewEvent(tc.shop, "order.created", json.RawMessage(tc.data), "", tc.test, now)
			if err != nil {
				t.Fatal(err)
			}
			var env webhooks.Envelope
			dec := json.NewDecoder(bytes.NewReader(e.Envelope))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&env); err != nil {
				t.Fatalf("envelope %s: %v", e.Envelope, err)
			}
			want := webhooks.Envelope{ID: e.ID, Event: "order.created", ShopID: tc.shop, CreatedAt: "2026-11-27T01:02:03.456Z",
				Data: json.RawMessage(tc.wantData), Test: tc.test}
			if env.ID != want.ID || env.Event != want.Event || env.ShopID != want.ShopID || env.CreatedAt != want.CreatedAt ||
				string(env.Data) != tc.wantData || env.Test != want.Test {
				t.Fatalf("envelope = %+v (data %s), want %+v", env, env.Data, want)
			}
			prefix := `{"id":"` + e.ID + `","event":"order.created","shop_id":`
			if !bytes.HasPrefix(e.Envelope, []byte(prefix)) {
				t.Fatalf("envelope %s: fields out of order", e.Envelope)
			}
			if hasTest := bytes.Contains(e.Envelope, []byte(`,"test":true}`)); hasTest != tc.test {
				t.Fatalf("envelope %s: test field", e.Envelope)
			}
		})
	}
	if _, err := webhooks.NewEvent("s", "order.created", json.RawMessage(`{"a":`), "", false, now); err == nil {
		t.Fatal("invalid data accepted")
	}
}
