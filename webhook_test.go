package webhooks_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	webhooks "github.com/pancake-pos/pancake-webhooks"
)

func TestHealthStatus(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name                string
		attempts, successes int64
		streak              int
		disabled            string
		want                string
		rate                float64
	}{
		{"NoAttemptsIsHealthy", 0, 0, 0, "", webhooks.HealthHealthy, 100},
		{"AllGood", 100, 100, 0, "", webhooks.HealthHealthy, 100},
		{"At95IsHealthy", 100, 95, 0, "", webhooks.HealthHealthy, 95},
		{"Under95IsWarning", 1000, 949, 0, "", webhooks.HealthWarning, 94.9},
		{"TwoFailuresInARowIsWarning", 100, 98, 2, "", webhooks.HealthWarning, 98},
		{"Under80IsError", 100, 79, 0, "", webhooks.HealthError, 79},
		{"At80IsWarning", 100, 80, 0, "", webhooks.HealthWarning, 80},
		{"FiveFailuresInARowIsError", 100, 95, 5, "", webhooks.HealthError, 95},
		{"DisabledBySystemIsError", 10, 10, 0, webhooks.DisabledReasonGone, webhooks.HealthError, 100},
		{"RateIsRoundedToHundredths", 3, 1, 0, "", webhooks.HealthError, 33.33},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			w := &webhooks.Webhook{DisabledReason: c.disabled, Health: webhooks.Health{
				Attempts24h: c.attempts, Successes24h: c.successes, ConsecutiveFailures: c.streak}}
			got := w.HealthStatus()
			if got.Status != c.want || got.SuccessRate != c.rate {
				t.Fatalf("HealthStatus = %s %.2f, want %s %.2f", got.Status, got.SuccessRate, c.want, c.rate)
			}
		})
	}
}

func TestValidateURL(t *testing.T) {
	t.Parallel()
	strict, dev := webhooks.URLPolicy{}, webhooks.URLPolicy{AllowHTTP: true}
	for raw, want := range map[string]bool{
		"https://shop.example/hooks?x=1":       true,
		"https://shop.example:8443/hooks":      true,
		"https://shop.example:65535/hooks":     true,
		"https://shop.example:99999/hooks":     false,
		"https://shop.example:0/hooks":         false,
		"http://shop.example/hooks":            false,
		"https://user:pw@shop.example/":        false,
		"ftp://shop.example/":                  false,
		"/relative":                            false,
		"":                                     false,
		"https://":                             false,
		"https://shop.example/#frag":           true,
		"https://shop.example/hook?a=b c":      false,
		"https://shop.example/a b#c d":         true, // escaped when sent; the fragment never is
		"https://shop.example/a%20b?c=d%20e":   true,
		"https://shop.example/a\x7fb":          false,
		"https://" + strings.Repeat("a", 2040): true,
		"https://" + strings.Repeat("a", 2041): false,
		// Characters, not bytes: 2,048 of them, 2,084 bytes.
		"https://shop.example/" + strings.Repeat("é", 2027): true,
		"https://shop.example/" + strings.Repeat("é", 2028): false,
	} {
		if got := strict.ValidateURL(raw) == ""; got != want {
			t.Errorf("ValidateURL(%.40q) ok = %v, want %v (%s)", raw, got, want, strict.ValidateURL(raw))
		}
	}
	if r := dev.ValidateURL("http://127.0.0.1:9000/hooks"); r != "" {
		t.Errorf("http refused where allowed: %s", r)
	}
	if r := dev.ValidateURL("ftp://shop.example/"); r != "must use https or http" {
		t.Errorf("ftp where http is allowed: %q", r)
	}
}

func TestNormalizeEvents(t *testing.T) {
	t.Parallel()
	got, reason := webhooks.NormalizeEvents([]string{"order.created", "order.updated", "order.created"})
	if reason != "" || len(got) != 2 || got[0] != "order.created" || got[1] != "order.updated" {
		t.Fatalf("NormalizeEvents = %v, %q; want duplicates folded in order", got, reason)
	}
	if _, reason := webhooks.NormalizeEvents(nil); reason == "" {
		t.Error("an empty list was accepted")
	}
	_, reason = webhooks.NormalizeEvents([]string{"order.created", "order.exploded"})
	if !strings.Contains(reason, `"order.exploded"`) || !strings.Contains(reason, "loyalty.points_redeemed") {
		t.Errorf("reason %q should name the bad value and list the allowed ones", reason)
	}
	if n := len(webhooks.EventTypes); n != 13 {
		t.Errorf("%d event types, want the contract's 13", n)
	}
}

func TestSignIsVerifiedByTheStandardWebhooksLibrary(t *testing.T) {
	t.Parallel()
	old, cur := webhooks.NewSecret(), webhooks.NewSecret()
	body := []byte(`{"id":"evt_1","event":"order.created","shop_id":"s","created_at":"2026-11-26T20:31:05.123Z","data":{}}`)
	ts := time.Now().Unix()
	sig, err := webhooks.Sign([]string{cur, old}, "evt_1", ts, body)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(strings.Fields(sig)); n != 2 {
		t.Fatalf("%d signatures, want one per secret", n)
	}
	h := http.Header{}
	h.Set("webhook-id", "evt_1")
	h.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	h.Set("webhook-signature", sig)
	for _, s := range []string{cur, old} {
		wh, err := standardwebhooks.NewWebhook(s)
		if err != nil {
			t.Fatal(err)
		}
		if err := wh.Verify(body, h); err != nil {
			t.Errorf("standard webhooks library rejects our signature: %v", err)
		}
	}
	other, _ := standardwebhooks.NewWebhook(webhooks.NewSecret())
	if other.Verify(body, h) == nil {
		t.Error("a signature verified under an unrelated secret")
	}
	if _, err := webhooks.Sign([]string{"not-a-secret"}, "evt_1", ts, body); err == nil {
		t.Error("a secret without whsec_ was accepted")
	}
}

func TestIDs(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	a, b := webhooks.NewID(webhooks.PrefixDelivery, t0), webhooks.NewID(webhooks.PrefixDelivery, t0)
	c := webhooks.NewID(webhooks.PrefixDelivery, t0.Add(time.Millisecond))
	if !(a < b && b < c) {
		t.Fatalf("IDs not sortable by creation: %s %s %s", a, b, c)
	}
	if !webhooks.ValidID(webhooks.PrefixDelivery, a) || webhooks.ValidID(webhooks.PrefixWebhook, a) || webhooks.ValidID(webhooks.PrefixDelivery, a[:len(a)-1]) {
		t.Error("ValidID accepts the wrong things")
	}
	if min := webhooks.MinID(webhooks.PrefixDelivery, t0); !(min <= a && min > webhooks.NewID(webhooks.PrefixDelivery, t0.Add(-time.Millisecond))) {
		t.Errorf("MinID(%v) = %s does not split IDs at that time", t0, min)
	}
	for s, want := range map[string]bool{"demo": true, "Shop_42-x": true, "": false, "a b": false, strings.Repeat("a", 65): false, "é": false} {
		if webhooks.ValidShopID(s) != want {
			t.Errorf("ValidShopID(%q) = %v", s, !want)
		}
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	v := webhooks.ValidationErrors{}
	if v.Err() != nil {
		t.Fatal("no field errors gave an error")
	}
	v.Add("url", "must use https")
	v.Add("url", "second reason ignored")
	err := v.Err()
	if webhooks.ErrorCode(err) != webhooks.EINVALID || webhooks.ErrorMessage(err) != "url: must use https" {
		t.Fatalf("got %v", err)
	}
	if webhooks.ErrorCode(strconv.ErrSyntax) != webhooks.EINTERNAL || webhooks.ErrorMessage(strconv.ErrSyntax) != "Internal error" {
		t.Error("a plain error must be internal and not leak its text")
	}
}
