package pancake_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/pancake-pos/pancake-webhooks/pancake"
)

// envelopeJSON is a delivery body as the server makes it.
const envelopeJSON = `{"id":"evt_01JD8Z","event":"order.created","shop_id":"shop_1","created_at":"2026-11-26T20:31:05.123Z","data":{"order_id":"123","total_amount":1000000,"order_no":9007199254740993}}`

func wantEnvelope(t *testing.T) *pancake.Envelope {
	return &pancake.Envelope{
		ID: "evt_01JD8Z", Event: pancake.EventOrderCreated, ShopID: "shop_1",
		CreatedAt: ts(t, "2026-11-26T20:31:05.123Z"),
		// As signed, every digit kept.
		Data: json.RawMessage(`{"order_id":"123","total_amount":1000000,"order_no":9007199254740993}`),
	}
}

// newSecret returns a fresh whsec_ secret, as the server makes them.
func newSecret(t testing.TB) string {
	t.Helper()
	b := make([]byte, 32)
	rand.Read(b)
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

// signedHeader returns the headers of a delivery signed with each secret.
func signedHeader(t testing.TB, id string, at time.Time, body []byte, secrets ...string) http.Header {
	t.Helper()
	var sigs []string
	for _, s := range secrets {
		sig, err := pancake.Sign(s, id, at, body)
		if err != nil {
			t.Fatal(err)
		}
		sigs = append(sigs, sig)
	}
	h := http.Header{}
	h.Set("webhook-id", id)
	h.Set("webhook-timestamp", strconv.FormatInt(at.Unix(), 10))
	h.Set("webhook-signature", strings.Join(sigs, " "))
	return h
}

func TestVerify(t *testing.T) {
	t.Parallel()

	type testBundle struct {
		secret string
		body   []byte
		header http.Header
	}
	setup := func(t *testing.T) *testBundle {
		t.Helper()
		secret := newSecret(t)
		body := []byte(envelopeJSON)
		return &testBundle{secret: secret, body: body, header: signedHeader(t, "evt_01JD8Z", time.Now(), body, secret)}
	}

	t.Run("AcceptsOwnSignature", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		got, err := pancake.Verify([]string{b.secret}, b.header, b.body, 0)
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		if diff := cmp.Diff(wantEnvelope(t), got); diff != "" {
			t.Errorf("Verify returned diff (-want +got):\n%s", diff)
		}
	})

	t.Run("AcceptsStandardWebhooksLibrarySignature", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		wh, err := standardwebhooks.NewWebhook(b.secret)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		sig, err := wh.Sign("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W", now, b.body)
		if err != nil {
			t.Fatal(err)
		}
		h := http.Header{}
		h.Set(standardwebhooks.HeaderWebhookID, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W")
		h.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(now.Unix(), 10))
		h.Set(standardwebhooks.HeaderWebhookSignature, sig)
		if _, err := pancake.Verify([]string{b.secret}, h, b.body, 0); err != nil {
			t.Errorf("Verify of the library's signature: %v", err)
		}
	})

	t.Run("StandardWebhooksLibraryAcceptsOurSignature", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		wh, err := standardwebhooks.NewWebhook(b.secret)
		if err != nil {
			t.Fatal(err)
		}
		if err := wh.Verify(b.body, b.header); err != nil {
			t.Errorf("library Verify of our signature: %v", err)
		}
		// And the two sign alike.
		at := time.Unix(1_700_000_000, 0)
		ours, err := pancake.Sign(b.secret, "evt_1", at, b.body)
		if err != nil {
			t.Fatal(err)
		}
		theirs, err := wh.Sign("evt_1", at, b.body)
		if err != nil {
			t.Fatal(err)
		}
		if ours != theirs {
			t.Errorf("Sign = %q, library = %q", ours, theirs)
		}
	})

	t.Run("KnownVectorOfTheSpecification", func(t *testing.T) {
		t.Parallel()
		// The example of the Standard Webhooks specification and its
		// libraries' tests.
		sig, err := pancake.Sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
			time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
		if err != nil {
			t.Fatal(err)
		}
		if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; sig != want {
			t.Errorf("Sign = %q, want %q", sig, want)
		}
	})

	t.Run("SecretPrefixIsOptional", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		if _, err := pancake.Verify([]string{strings.TrimPrefix(b.secret, "whsec_")}, b.header, b.body, 0); err != nil {
			t.Errorf("Verify with a bare base64 secret: %v", err)
		}
	})

	t.Run("RotationAnySecretMatches", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		oldS, newS, other := b.secret, newSecret(t), newSecret(t)
		both := signedHeader(t, "evt_01JD8Z", time.Now(), b.body, newS, oldS) // the server during an overlap
		onlyNew := signedHeader(t, "evt_01JD8Z", time.Now(), b.body, newS)
		for _, tc := range []struct {
			name    string
			secrets []string
			header  http.Header
			ok      bool
		}{
			{"ReceiverStillOnOld", []string{oldS}, both, true},
			{"ReceiverOnNew", []string{newS}, both, true},
			{"ReceiverOnBoth", []string{oldS, newS}, both, true},
			{"ReceiverOnBothAfterOverlap", []string{oldS, newS}, onlyNew, true},
			{"ReceiverOnOldAfterOverlap", []string{oldS}, onlyNew, false},
			{"ReceiverOnAnother", []string{other}, both, false},
		} {
			_, err := pancake.Verify(tc.secrets, tc.header, b.body, 0)
			if tc.ok && err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			if !tc.ok && !errors.Is(err, pancake.ErrInvalidSignature) {
				t.Errorf("%s: err = %v, want ErrInvalidSignature", tc.name, err)
			}
		}
	})

	t.Run("UnknownVersionsAndGarbageEntriesSkipped", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.header.Set("webhook-signature", "v2,abc v1a,xyz , v1,!!!! v1 v1,"+strings.Repeat("A", 60)+" "+b.header.Get("webhook-signature")+"  ")
		if _, err := pancake.Verify([]string{b.secret}, b.header, b.body, 0); err != nil {
			t.Errorf("Verify: %v", err)
		}
	})

	t.Run("Tolerance", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		now := time.Now()
		for _, tc := range []struct {
			name      string
			at        time.Time
			tolerance time.Duration
			want      error
		}{
			{"DefaultAcceptsFourMinutesOld", now.Add(-4 * time.Minute), 0, nil},
			{"DefaultAcceptsFourMinutesAhead", now.Add(4 * time.Minute), 0, nil},
			{"DefaultRejectsSixMinutesOld", now.Add(-6 * time.Minute), 0, pancake.ErrTimestampTooOld},
			{"DefaultRejectsSixMinutesAhead", now.Add(6 * time.Minute), 0, pancake.ErrTimestampTooNew},
			{"CustomRejectsOld", now.Add(-2 * time.Minute), time.Minute, pancake.ErrTimestampTooOld},
			{"CustomAcceptsLonger", now.Add(-time.Hour), 2 * time.Hour, nil},
			{"NegativeIsDefault", now.Add(-6 * time.Minute), -time.Hour, pancake.ErrTimestampTooOld},
			{"Epoch", time.Unix(0, 0), 0, pancake.ErrTimestampTooOld},
		} {
			h := signedHeader(t, "evt_01JD8Z", tc.at, b.body, b.secret)
			_, err := pancake.Verify([]string{b.secret}, h, b.body, tc.tolerance)
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
			}
		}
	})

	t.Run("TamperingDetected", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		tampered := bytes.Replace(b.body, []byte("1000000"), []byte("1"), 1)
		if _, err := pancake.Verify([]string{b.secret}, b.header, tampered, 0); !errors.Is(err, pancake.ErrInvalidSignature) {
			t.Errorf("tampered body: err = %v, want ErrInvalidSignature", err)
		}
		h := b.header.Clone()
		h.Set("webhook-id", "evt_other")
		if _, err := pancake.Verify([]string{b.secret}, h, b.body, 0); !errors.Is(err, pancake.ErrInvalidSignature) {
			t.Errorf("tampered id: err = %v, want ErrInvalidSignature", err)
		}
		h = b.header.Clone()
		tsv, _ := strconv.ParseInt(h.Get("webhook-timestamp"), 10, 64)
		h.Set("webhook-timestamp", strconv.FormatInt(tsv+1, 10))
		if _, err := pancake.Verify([]string{b.secret}, h, b.body, 0); !errors.Is(err, pancake.ErrInvalidSignature) {
			t.Errorf("tampered timestamp: err = %v, want ErrInvalidSignature", err)
		}
		h = b.header.Clone()
		sig := []byte(h.Get("webhook-signature"))
		sig[5] ^= 1
		h.Set("webhook-signature", string(sig))
		if _, err := pancake.Verify([]string{b.secret}, h, b.body, 0); !errors.Is(err, pancake.ErrInvalidSignature) {
			t.Errorf("tampered signature: err = %v, want ErrInvalidSignature", err)
		}
	})

	t.Run("BadHeaders", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, tc := range []struct {
			name  string
			key   string
			value string
			want  error
		}{
			{"NoID", "webhook-id", "", pancake.ErrMissingHeaders},
			{"NoTimestamp", "webhook-timestamp", "", pancake.ErrMissingHeaders},
			{"NoSignature", "webhook-signature", "", pancake.ErrMissingHeaders},
			{"TimestampWithSign", "webhook-timestamp", "+" + b.header.Get("webhook-timestamp"), pancake.ErrInvalidHeaders},
			{"NegativeTimestamp", "webhook-timestamp", "-5", pancake.ErrInvalidHeaders},
			{"TimestampNotNumber", "webhook-timestamp", "12a", pancake.ErrInvalidHeaders},
			{"TimestampInMilliseconds", "webhook-timestamp", strconv.FormatInt(time.Now().UnixMilli(), 10), pancake.ErrTimestampTooNew},
			{"TimestampHuge", "webhook-timestamp", strings.Repeat("9", 19), pancake.ErrInvalidHeaders},
			{"IDTooLong", "webhook-id", strings.Repeat("x", 1025), pancake.ErrInvalidHeaders},
			{"SignatureTooLong", "webhook-signature", strings.Repeat("v1,AAAA ", 3000), pancake.ErrInvalidHeaders},
			{"SignatureOnlyGarbage", "webhook-signature", "v1,", pancake.ErrInvalidSignature},
		} {
			h := b.header.Clone()
			if tc.value == "" {
				h.Del(tc.key)
			} else {
				h.Set(tc.key, tc.value)
			}
			if _, err := pancake.Verify([]string{b.secret}, h, b.body, 0); !errors.Is(err, tc.want) {
				t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
			}
		}
	})

	t.Run("BadSecrets", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, tc := range []struct {
			name    string
			secrets []string
		}{
			{"None", nil},
			{"Empty", []string{""}},
			{"PrefixOnly", []string{"whsec_"}},
			{"NotBase64", []string{"whsec_not*base64"}},
			{"OneBadAmongGood", []string{b.secret, "whsec_%%%"}},
			{"Huge", []string{"whsec_" + strings.Repeat("A", 2000)}},
		} {
			_, err := pancake.Verify(tc.secrets, b.header, b.body, 0)
			if !errors.Is(err, pancake.ErrInvalidSecret) {
				t.Errorf("%s: err = %v, want ErrInvalidSecret", tc.name, err)
			}
			for _, s := range tc.secrets {
				if len(s) > len("whsec_") && strings.Contains(err.Error(), strings.TrimPrefix(s, "whsec_")) {
					t.Errorf("%s: error %q contains the secret", tc.name, err)
				}
			}
			if len(tc.secrets) == 1 {
				if _, err := pancake.Sign(tc.secrets[0], "id", time.Now(), nil); !errors.Is(err, pancake.ErrInvalidSecret) {
					t.Errorf("%s: Sign err = %v, want ErrInvalidSecret", tc.name, err)
				}
			}
		}
	})

	t.Run("BadPayload", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for _, body := range []string{"", "null", "[]", `"x"`, "{", `{"id":"evt_1"}`, `{"event":"order.created"}`, `{"id":1,"event":"order.created"}`,
			`{"id":"evt_1","event":"order.created"}`, `{"id":"evt_1","event":"order.created","data":null}`,
			`{"id":"evt_1","event":"order.created","data":[1]}`, `{"id":"evt_1","event":"order.created","data":"x"}`} {
			h := signedHeader(t, "evt_1", time.Now(), []byte(body), b.secret)
			if _, err := pancake.Verify([]string{b.secret}, h, []byte(body), 0); !errors.Is(err, pancake.ErrInvalidPayload) {
				t.Errorf("body %q: err = %v, want ErrInvalidPayload", body, err)
			}
		}
	})

	t.Run("TestSendEnvelope", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		body := []byte(`{"id":"evt_2","event":"product.updated","shop_id":"s","created_at":"2026-11-26T20:31:05.123Z","data":{},"test":true}`)
		got, err := pancake.Verify([]string{b.secret}, signedHeader(t, "evt_2", time.Now(), body, b.secret), body, 0)
		if err != nil {
			t.Fatal(err)
		}
		want := &pancake.Envelope{ID: "evt_2", Event: pancake.EventProductUpdated, ShopID: "s",
			CreatedAt: ts(t, "2026-11-26T20:31:05.123Z"), Data: json.RawMessage(`{}`), Test: true}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Verify returned diff (-want +got):\n%s", diff)
		}
	})
}

func TestWebhookHandler(t *testing.T) {
	t.Parallel()

	type testBundle struct {
		secret string
		got    []*pancake.Envelope
		fnErr  error
	}
	setup := func(t *testing.T) (http.Handler, *testBundle) {
		t.Helper()
		b := &testBundle{secret: newSecret(t)}
		h := pancake.WebhookHandler([]string{b.secret}, func(ctx context.Context, e *pancake.Envelope) error {
			if ctx == nil {
				t.Error("nil context")
			}
			b.got = append(b.got, e)
			return b.fnErr
		})
		return h, b
	}
	post := func(h http.Handler, header http.Header, body []byte) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, "/webhooks", bytes.NewReader(body))
		for k, v := range header {
			r.Header[k] = v
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}

	t.Run("ValidDeliveryIs204", func(t *testing.T) {
		t.Parallel()
		h, b := setup(t)
		body := []byte(envelopeJSON)
		w := post(h, signedHeader(t, "evt_01JD8Z", time.Now(), body, b.secret), body)
		if w.Code != http.StatusNoContent {
			t.Errorf("status = %d, want 204 (%s)", w.Code, w.Body)
		}
		if diff := cmp.Diff([]*pancake.Envelope{wantEnvelope(t)}, b.got); diff != "" {
			t.Errorf("handled envelopes diff (-want +got):\n%s", diff)
		}
	})

	t.Run("BadSignatureIs400", func(t *testing.T) {
		t.Parallel()
		h, b := setup(t)
		body := []byte(envelopeJSON)
		w := post(h, signedHeader(t, "evt_01JD8Z", time.Now(), body, newSecret(t)), body)
		if w.Code != http.StatusBadRequest {
			t.Errorf("status = %d, want 400", w.Code)
		}
		if w = post(h, nil, body); w.Code != http.StatusBadRequest {
			t.Errorf("no headers: status = %d, want 400", w.Code)
		}
		if len(b.got) != 0 {
			t.Errorf("fn called %d times", len(b.got))
		}
	})

	t.Run("FailingFuncIs500", func(t *testing.T) {
		t.Parallel()
		h, b := setup(t)
		b.fnErr = errors.New("database down: password=hunter2")
		body := []byte(envelopeJSON)
		w := post(h, signedHeader(t, "evt_01JD8Z", time.Now(), body, b.secret), body)
		if w.Code != http.StatusInternalServerError {
			t.Errorf("status = %d, want 500", w.Code)
		}
		if strings.Contains(w.Body.String(), "hunter2") {
			t.Errorf("body leaks fn's error: %q", w.Body)
		}
	})

	t.Run("BadSecretIs500", func(t *testing.T) {
		t.Parallel()
		h := pancake.WebhookHandler([]string{"whsec_???"}, func(context.Context, *pancake.Envelope) error { return nil })
		body := []byte(envelopeJSON)
		w := post(h, signedHeader(t, "evt_01JD8Z", time.Now(), body, newSecret(t)), body)
		if w.Code != http.StatusInternalServerError {
			t.Errorf("status = %d, want 500", w.Code)
		}
	})

	t.Run("LargeBodyIs413", func(t *testing.T) {
		t.Parallel()
		h, b := setup(t)
		body := append([]byte(`{"id":"evt_1","event":"order.created","data":{"x":"`), bytes.Repeat([]byte("a"), pancake.MaxWebhookBodyBytes)...)
		body = append(body, `"}}`...)
		w := post(h, signedHeader(t, "evt_1", time.Now(), body, b.secret), body)
		if w.Code != http.StatusRequestEntityTooLarge {
			t.Errorf("status = %d, want 413", w.Code)
		}
	})

	t.Run("OtherMethodsAre405", func(t *testing.T) {
		t.Parallel()
		h, _ := setup(t)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/webhooks", nil))
		if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "POST" {
			t.Errorf("status = %d, Allow = %q; want 405, POST", w.Code, w.Header().Get("Allow"))
		}
	})

	t.Run("SecretsCopied", func(t *testing.T) {
		t.Parallel()
		secret := newSecret(t)
		secrets := []string{secret}
		h := pancake.WebhookHandler(secrets, func(context.Context, *pancake.Envelope) error { return nil })
		secrets[0] = "changed"
		body := []byte(envelopeJSON)
		if w := post(h, signedHeader(t, "evt_01JD8Z", time.Now(), body, secret), body); w.Code != http.StatusNoContent {
			t.Errorf("status = %d, want 204", w.Code)
		}
	})
}
