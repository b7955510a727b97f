package pancake_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/pancake-pos/pancake-webhooks/pancake"
)

// fuzzSecret signs the deliveries of FuzzVerify.
const fuzzSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// FuzzVerify feeds Verify arbitrary headers and bodies. Properties: it never
// panics; whatever it accepts, the official Standard Webhooks library
// accepts too; and a body signed correctly is never rejected for its
// signature, whatever garbage shares the header, and yields an envelope
// with an id and an event or ErrInvalidPayload. Seeds: testdata/fuzz/FuzzVerify.
func FuzzVerify(f *testing.F) {
	f.Add("evt_1", "1614265330", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", []byte(`{"test": 2432232314}`))
	f.Add("evt_1", "", "v1,", []byte(envelopeJSON))
	f.Add("", "+1", "v2,x v1,,, v1", []byte("null"))

	wh, err := standardwebhooks.NewWebhook(fuzzSecret)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, id, timestamp, signature string, body []byte) {
		h := http.Header{}
		h.Set("webhook-id", id)
		h.Set("webhook-timestamp", timestamp)
		h.Set("webhook-signature", signature)
		env, err := pancake.Verify([]string{fuzzSecret}, h, body, 0)
		if err == nil {
			if env == nil || env.ID == "" || env.Event == "" {
				t.Fatalf("accepted without an envelope: %+v", env)
			}
			if err := wh.VerifyIgnoringTimestamp(body, h); err != nil {
				t.Fatalf("we accept what the library rejects: %v", err)
			}
		}

		// The same with a valid signature added.
		now := time.Now()
		sig, err := pancake.Sign(fuzzSecret, id, now, body)
		if err != nil {
			t.Fatal(err)
		}
		h.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
		h.Set("webhook-signature", signature+" "+sig)
		env, err = pancake.Verify([]string{fuzzSecret}, h, body, 0)
		switch {
		case id == "":
			if !errors.Is(err, pancake.ErrMissingHeaders) {
				t.Fatalf("empty id: err = %v", err)
			}
		case len(id) > 1024 || len(h.Get("webhook-signature")) > 16<<10:
			if !errors.Is(err, pancake.ErrInvalidHeaders) {
				t.Fatalf("long header: err = %v", err)
			}
		case err == nil:
			if env == nil || env.ID == "" || env.Event == "" {
				t.Fatalf("accepted without an envelope: %+v", env)
			}
			if err := wh.Verify(body, h); err != nil {
				t.Fatalf("library rejects a delivery we accept: %v", err)
			}
		case !errors.Is(err, pancake.ErrInvalidPayload):
			t.Fatalf("correctly signed delivery rejected: %v", err)
		}
	})
}

// FuzzSecret feeds Sign and Verify arbitrary secrets. Properties: a secret
// Sign accepts gives the official library's signature and verifies; one it
// refuses is ErrInvalidSecret with a fixed message that cannot repeat it. Seeds:
// testdata/fuzz/FuzzSecret.
func FuzzSecret(f *testing.F) {
	f.Add(fuzzSecret, "evt_1", []byte(envelopeJSON))
	f.Add("whsec_", "x", []byte{})
	f.Add("whsec_not base64!", "x", []byte("{}"))
	f.Add("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "evt_2", []byte("{}"))

	at := time.Unix(1_700_000_000, 0)
	f.Fuzz(func(t *testing.T, secret, id string, body []byte) {
		sig, err := pancake.Sign(secret, id, at, body)
		if err != nil {
			if !errors.Is(err, pancake.ErrInvalidSecret) {
				t.Fatalf("Sign error %v is not ErrInvalidSecret", err)
			}
			// The message is one of a few fixed ones: it cannot repeat the secret.
			switch err.Error() {
			case `pancake: invalid webhook secret: not base64 after "whsec_"`,
				"pancake: invalid webhook secret: empty key",
				"pancake: invalid webhook secret: longer than 1024 bytes":
			default:
				t.Fatalf("unexpected error message %q", err)
			}
			if _, err := pancake.Verify([]string{secret}, http.Header{}, body, 0); !errors.Is(err, pancake.ErrInvalidSecret) {
				t.Fatalf("Verify with a bad secret: err = %v", err)
			}
			return
		}
		wh, err := standardwebhooks.NewWebhook(secret)
		if err != nil {
			t.Fatalf("library refuses a secret we accept: %v", err)
		}
		theirs, err := wh.Sign(id, at, body)
		if err != nil || theirs != sig {
			t.Fatalf("Sign = %q, library = %q (%v)", sig, theirs, err)
		}
		if id == "" || len(id) > 1024 {
			return
		}
		now := time.Now()
		h := signedHeader(t, id, now, body, secret)
		if _, err := pancake.Verify([]string{secret}, h, body, 0); err != nil && !errors.Is(err, pancake.ErrInvalidPayload) {
			t.Fatalf("Verify of our own signature: %v", err)
		}
	})
}

// FuzzErrorResponse feeds the client arbitrary answers. Properties: no
// panic; a non-2xx is a *Error with its status and a non-negative
// RetryAfter; the API key never shows in an error string. Seeds:
// testdata/fuzz/FuzzErrorResponse.
func FuzzErrorResponse(f *testing.F) {
	f.Add(429, "120", []byte(`{"success":false,"error":{"code":"rate_limited","message":"slow","details":{"retry_after_seconds":120}}}`))
	f.Add(404, "", []byte(`{"success":false,"error":{"code":"not_found","message":"`+testKey+`","details":null}}`))
	f.Add(503, "Wed, 21 Oct 2015 07:28:00 GMT", []byte(`<html>`))
	f.Add(200, "", []byte(`{"data":[{"id":"wh_1","created_at":"bad"}],"total":1}`))
	f.Add(429, "99999999999999999999", []byte(`{"error":{"details":{"retry_after_seconds":1e300}}}`))

	f.Fuzz(func(t *testing.T, status int, retryAfter string, body []byte) {
		status = 200 + int(uint(status)%400)
		client := pancake.NewClient(testKey, testShop, pancake.WithRetry(0, 0, 0), pancake.WithHTTPClient(&http.Client{
			Transport: roundTripFunc(func(*http.Request) (*http.Response, error) {
				return &http.Response{
					StatusCode: status,
					Header:     http.Header{"Retry-After": {retryAfter}},
					Body:       io.NopCloser(bytes.NewReader(body)),
				}, nil
			}),
		}))
		list, err := client.Webhooks.List(t.Context())
		if err != nil && strings.Contains(err.Error(), testKey) {
			t.Fatalf("error shows the key: %v", err)
		}
		if status <= 299 {
			if (err == nil) == (list == nil) {
				t.Fatalf("List = %v, %v", list, err)
			}
			return
		}
		var apiErr *pancake.Error
		if !errors.As(err, &apiErr) {
			t.Fatalf("err = %T %v, want *pancake.Error", err, err)
		}
		if apiErr.StatusCode != status || apiErr.RetryAfter < 0 || apiErr.Message == "" {
			t.Fatalf("bad *Error %+v for status %d", apiErr, status)
		}
	})
}
