package pancake

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Headers of a delivery, per the Standard Webhooks specification.
const (
	HeaderWebhookID        = "webhook-id"
	HeaderWebhookTimestamp = "webhook-timestamp"
	HeaderWebhookSignature = "webhook-signature"
)

// Receiver defaults and bounds.
const (
	// DefaultTolerance is how far a delivery's webhook-timestamp may be
	// from now when Verify is given a tolerance of 0.
	DefaultTolerance = 5 * time.Minute
	// MaxWebhookBodyBytes is the largest body WebhookHandler reads; a
	// larger one gets 413.
	MaxWebhookBodyBytes = 1 << 20
	// SecretPrefix starts a secret in the Standard Webhooks format.
	SecretPrefix = "whsec_"

	maxIDLen           = 1024
	maxTimestampLen    = 18 // digits; fits int64 and any real time
	maxSignatureHeader = 16 << 10
	maxSecretLen       = 1024
)

// Errors of Verify and Sign. Verify wraps them with what was wrong, so test
// them with errors.Is.
var (
	// ErrMissingHeaders: webhook-id, webhook-timestamp or
	// webhook-signature is absent or empty.
	ErrMissingHeaders = errors.New("pancake: missing webhook headers")
	// ErrInvalidHeaders: a webhook header is malformed or too long.
	ErrInvalidHeaders = errors.New("pancake: invalid webhook headers")
	// ErrInvalidSecret: no secret was given, or one is not a base64 key
	// (with or without the "whsec_" prefix). It is the receiver's
	// configuration that is wrong, not the request.
	ErrInvalidSecret = errors.New("pancake: invalid webhook secret")
	// ErrTimestampTooOld: webhook-timestamp is further in the past than
	// the tolerance (a replay, or a very slow delivery).
	ErrTimestampTooOld = errors.New("pancake: webhook timestamp too old")
	// ErrTimestampTooNew: webhook-timestamp is further in the future than
	// the tolerance.
	ErrTimestampTooNew = errors.New("pancake: webhook timestamp too new")
	// ErrInvalidSignature: no v1 signature matches any of the secrets.
	ErrInvalidSignature = errors.New("pancake: no matching webhook signature")
	// ErrInvalidPayload: the signed body is not a Pancake envelope (a JSON
	// object with id, event and a data object).
	ErrInvalidPayload = errors.New("pancake: invalid webhook payload")
)

// Envelope is the body of a delivery: one event.
type Envelope struct {
	// ID is the event's id (evt_…); it equals the webhook-id header and is
	// the same on every attempt, so receivers de-duplicate on it.
	ID     string       `json:"id"`
	Event  WebhookEvent `json:"event"`
	ShopID string       `json:"shop_id"`
	// CreatedAt is when the event was published.
	CreatedAt time.Time `json:"created_at"`
	// Data is the event's data, a JSON object, as it was signed:
	// json.Unmarshal it into your own type. Being raw, its numbers keep
	// every digit (an order id above 2^53 stays exact).
	Data json.RawMessage `json:"data"`
	// Test is true for a test send (WebhooksService.Test).
	Test bool `json:"test,omitempty"`
}

// Verify checks that body and header are a delivery signed with one of
// secrets (several during a rotation; any one may match), made within
// tolerance of now (0: DefaultTolerance), and returns its envelope.
// Signatures are compared in constant time. Errors, wrapped: ErrInvalidSecret
// (the receiver's configuration), ErrMissingHeaders, ErrInvalidHeaders,
// ErrTimestampTooOld, ErrTimestampTooNew, ErrInvalidSignature and
// ErrInvalidPayload. No error contains a secret.
func Verify(secrets []string, header http.Header, body []byte, tolerance time.Duration) (*Envelope, error) {
	keys, err := decodeSecrets(secrets)
	if err != nil {
		return nil, err
	}
	id := header.Get(HeaderWebhookID)
	ts := header.Get(HeaderWebhookTimestamp)
	sigs := header.Get(HeaderWebhookSignature)
	if id == "" || ts == "" || sigs == "" {
		return nil, ErrMissingHeaders
	}
	if len(id) > maxIDLen {
		return nil, fmt.Errorf("%w: %s longer than %d bytes", ErrInvalidHeaders, HeaderWebhookID, maxIDLen)
	}
	if len(sigs) > maxSignatureHeader {
		return nil, fmt.Errorf("%w: %s longer than %d bytes", ErrInvalidHeaders, HeaderWebhookSignature, maxSignatureHeader)
	}
	unix, ok := parseTimestamp(ts)
	if !ok {
		return nil, fmt.Errorf("%w: %s is not Unix seconds", ErrInvalidHeaders, HeaderWebhookTimestamp)
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	now := time.Now().Unix()
	tol := int64(tolerance / time.Second)
	switch {
	case now-unix > tol:
		return nil, ErrTimestampTooOld
	case unix-now > tol:
		return nil, ErrTimestampTooNew
	}

	if !matchSignature(keys, id, ts, body, sigs) {
		return nil, ErrInvalidSignature
	}

	env, err := parseEnvelope(body)
	if err != nil {
		return nil, err
	}
	return env, nil
}

// Sign returns the webhook-signature entry ("v1,<base64>") of a delivery
// with id msgID, time ts and body, signed with secret, as the server makes
// it. It serves tests of receivers. Errors: ErrInvalidSecret.
func Sign(secret string, msgID string, ts time.Time, body []byte) (string, error) {
	key, err := decodeSecret(secret)
	if err != nil {
		return "", err
	}
	sum := mac(key, msgID, fmt.Sprint(ts.Unix()), body)
	return "v1," + base64.StdEncoding.EncodeToString(sum), nil
}

// decodeSecrets decodes every secret; one bad secret is an error, so that a
// misconfigured receiver fails loudly instead of rejecting half its
// deliveries.
func decodeSecrets(secrets []string) ([][]byte, error) {
	if len(secrets) == 0 {
		return nil, fmt.Errorf("%w: no secrets", ErrInvalidSecret)
	}
	keys := make([][]byte, 0, len(secrets))
	for i, s := range secrets {
		k, err := decodeSecret(s)
		if err != nil {
			return nil, fmt.Errorf("%w (secret %d of %d)", err, i+1, len(secrets))
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// decodeSecret returns the key of a "whsec_<base64>" secret; the prefix is
// optional, as in the Standard Webhooks libraries.
func decodeSecret(secret string) ([]byte, error) {
	if len(secret) > maxSecretLen {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrInvalidSecret, maxSecretLen)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, SecretPrefix))
	if err != nil {
		return nil, fmt.Errorf("%w: not base64 after %q", ErrInvalidSecret, SecretPrefix)
	}
	if len(key) == 0 {
		return nil, fmt.Errorf("%w: empty key", ErrInvalidSecret)
	}
	return key, nil
}

// parseTimestamp reads Unix seconds: 1 to maxTimestampLen ASCII digits.
func parseTimestamp(s string) (int64, bool) {
	if len(s) == 0 || len(s) > maxTimestampLen {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// mac returns HMAC-SHA256(key, id.ts.body).
func mac(key []byte, id, ts string, body []byte) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(id))
	h.Write([]byte{'.'})
	h.Write([]byte(ts))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// matchSignature reports whether one of the space-separated "v1,<base64>"
// entries of header is the HMAC of id.ts.body under one of keys. Entries of
// other versions and malformed ones are skipped. Work is bounded by the
// header's length, checked by the caller.
func matchSignature(keys [][]byte, id, ts string, body []byte, header string) bool {
	want := make([][]byte, len(keys))
	for i, k := range keys {
		want[i] = mac(k, id, ts, body)
	}
	got := make([]byte, sha256.Size+3) // room to notice a longer value
	found := false
	// Entries are separated by single spaces, as the specification says;
	// empty ones (repeated spaces) are skipped.
	for entry := range strings.SplitSeq(header, " ") {
		version, sig, ok := strings.Cut(entry, ",")
		if !ok || version != "v1" || base64.StdEncoding.DecodedLen(len(sig)) > len(got) {
			continue
		}
		// Strict: one signature has one encoding.
		n, err := base64.StdEncoding.Strict().Decode(got, []byte(sig))
		if err != nil {
			continue
		}
		for _, w := range want {
			// Every entry and key is compared, so the time taken does
			// not say which matched.
			if hmac.Equal(got[:n], w) {
				found = true
			}
		}
	}
	return found
}

// parseEnvelope decodes a signed body.
func parseEnvelope(body []byte) (*Envelope, error) {
	if b := bytes.TrimLeft(body, " \t\r\n"); len(b) == 0 || b[0] != '{' {
		return nil, fmt.Errorf("%w: not a JSON object", ErrInvalidPayload)
	}
	env := new(Envelope)
	if err := json.Unmarshal(body, env); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidPayload, err)
	}
	if env.ID == "" || env.Event == "" {
		return nil, fmt.Errorf("%w: id and event are required", ErrInvalidPayload)
	}
	if len(env.Data) == 0 || env.Data[0] != '{' {
		return nil, fmt.Errorf("%w: data must be a JSON object", ErrInvalidPayload)
	}
	return env, nil
}

// WebhookHandler returns an http.Handler that receives deliveries: it reads
// a POST body of up to MaxWebhookBodyBytes, checks it with Verify(secrets,
// …, DefaultTolerance) and calls fn with the envelope. It answers 204 when fn
// returns nil; 400 to a bad signature, time stamp or body; 413 to a body too
// large; 405 to another method; and 500 when fn fails or the secrets are
// invalid, so that the sender retries. fn runs with the request's context.
func WebhookHandler(secrets []string, fn func(ctx context.Context, e *Envelope) error) http.Handler {
	secrets = slices.Clone(secrets)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxWebhookBodyBytes))
		if err != nil {
			if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
				http.Error(w, "payload too large", http.StatusRequestEntityTooLarge)
				return
			}
			http.Error(w, "cannot read body", http.StatusBadRequest)
			return
		}
		e, err := Verify(secrets, r.Header, body, 0)
		switch {
		case errors.Is(err, ErrInvalidSecret):
			http.Error(w, "receiver misconfigured", http.StatusInternalServerError)
			return
		case err != nil:
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := fn(r.Context(), e); err != nil {
			http.Error(w, "webhook handler failed", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
}
