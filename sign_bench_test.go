package webhooks_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	webhooks "github.com/pancake-pos/pancake-webhooks"
)

// benchData is about 1 KiB of event data, the size the load benchmark uses.
var benchData = json.RawMessage(`{"order_id":"ord_01JD8Z6K3Q","total":"129.50","currency":"EUR","note":"` + strings.Repeat("x", 960) + `"}`)

// BenchmarkSign signs a 1 KiB envelope with one secret, and with two (a
// rotation's overlap).
func BenchmarkSign(b *testing.B) {
	e, err := webhooks.NewEvent("shop-1", "order.created", benchData, "", false, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	msgID := webhooks.NewID(webhooks.PrefixDelivery, time.Now())
	ts := time.Now().Unix()
	for _, n := range []int{1, 2} {
		secrets := make([]string, n)
		for i := range secrets {
			secrets[i] = webhooks.NewSecret()
		}
		b.Run(map[int]string{1: "OneSecret", 2: "TwoSecrets"}[n], func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(e.Envelope)))
			for b.Loop() {
				if _, err := webhooks.Sign(secrets, msgID, ts, e.Envelope); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkNewEvent builds an event with a fresh id and encodes its 1 KiB
// envelope, as every publish does.
func BenchmarkNewEvent(b *testing.B) {
	now := time.Now()
	b.ReportAllocs()
	b.SetBytes(int64(len(benchData)))
	for b.Loop() {
		if _, err := webhooks.NewEvent("shop-1", "order.created", benchData, "", false, now); err != nil {
			b.Fatal(err)
		}
	}
}
