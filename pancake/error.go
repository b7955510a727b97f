package pancake

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Error is a non-2xx answer of the API: its HTTP status and the contract's
// error envelope {"success": false, "error": {"code", "message", "details"}}.
// Compare it with errors.Is against ErrNotFound, ErrUnauthorized,
// ErrForbidden, ErrValidation, ErrRateLimited and ErrUnavailable, or get it
// with errors.As.
type Error struct {
	// StatusCode is the HTTP status, e.g. 404.
	StatusCode int
	// Code is the contract's error code, e.g. "not_found"; "" when the body
	// was not the error envelope (a proxy's error page).
	Code string
	// Message is the server's human-readable message (the HTTP status text
	// when it gave none); never empty.
	Message string
	// Details names, for validation_failed, each bad field and why.
	Details map[string]any
	// RetryAfter is how long to wait before trying again, from the
	// Retry-After header (429, 503); 0 when absent.
	RetryAfter time.Duration
}

// Error returns "pancake: 404 not_found: Webhook not found" and, when set,
// the wait RetryAfter asks for. It never contains the API key.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("pancake: ")
	b.WriteString(strconv.Itoa(e.StatusCode))
	if e.Code != "" {
		b.WriteByte(' ')
		b.WriteString(e.Code)
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.RetryAfter > 0 {
		b.WriteString(" (retry after ")
		b.WriteString(e.RetryAfter.String())
		b.WriteByte(')')
	}
	return b.String()
}

// Is reports whether e is of the kind of target, one of the sentinels, by
// HTTP status or error code: ErrNotFound (404, not_found), ErrUnauthorized
// (401, unauthorized), ErrForbidden (403, forbidden), ErrValidation (400,
// validation_failed, invalid_json), ErrRateLimited (429, rate_limited) and
// ErrUnavailable (503, unavailable).
func (e *Error) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.StatusCode == http.StatusNotFound || e.Code == CodeNotFound
	case ErrUnauthorized:
		return e.StatusCode == http.StatusUnauthorized || e.Code == CodeUnauthorized
	case ErrForbidden:
		return e.StatusCode == http.StatusForbidden || e.Code == CodeForbidden
	case ErrValidation:
		return e.StatusCode == http.StatusBadRequest || e.Code == CodeValidationFailed || e.Code == CodeInvalidJSON
	case ErrRateLimited:
		return e.StatusCode == http.StatusTooManyRequests || e.Code == CodeRateLimited
	case ErrUnavailable:
		return e.StatusCode == http.StatusServiceUnavailable || e.Code == CodeUnavailable
	}
	return false
}

// Sentinels for errors.Is(err, …) on the errors of a Client; see Error.Is.
var (
	ErrNotFound     = errors.New("pancake: not found")
	ErrUnauthorized = errors.New("pancake: unauthorized")
	ErrForbidden    = errors.New("pancake: forbidden")
	ErrValidation   = errors.New("pancake: validation failed")
	ErrRateLimited  = errors.New("pancake: rate limited")
	// ErrUnavailable: the server cannot serve for now (its database is
	// unreachable or full, or a request waited too long); try again after
	// Error.RetryAfter. A publish so answered may have been stored: send
	// it again with the same ID.
	ErrUnavailable = errors.New("pancake: unavailable")
	// ErrInvalidID: a shop, webhook or delivery ID that cannot be part of
	// a path ("", "." or ".."); no request was sent.
	ErrInvalidID = errors.New("pancake: invalid ID")
)

// Error codes of the contract, as found in Error.Code.
const (
	CodeValidationFailed = "validation_failed"
	CodeInvalidJSON      = "invalid_json"
	CodeUnauthorized     = "unauthorized"
	CodeForbidden        = "forbidden"
	CodeNotFound         = "not_found"
	CodeMethodNotAllowed = "method_not_allowed"
	CodeConflict         = "conflict"
	CodePayloadTooLarge  = "payload_too_large"
	CodeRateLimited      = "rate_limited"
	CodeInternal         = "internal"
	CodeUnavailable      = "unavailable"
)

// newError reads a non-2xx response whose body (already read, bounded) is
// body. apiKey is cut out of the message.
func newError(resp *http.Response, body []byte, apiKey string) *Error {
	e := &Error{StatusCode: resp.StatusCode}
	var env struct {
		Error *struct {
			Code    string         `json:"code"`
			Message string         `json:"message"`
			Details map[string]any `json:"details"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &env) == nil && env.Error != nil {
		e.Code = env.Error.Code
		e.Message = env.Error.Message
		e.Details = env.Error.Details
	}
	if e.Message == "" {
		e.Message = http.StatusText(resp.StatusCode)
	}
	if e.Message == "" {
		e.Message = "HTTP status " + strconv.Itoa(resp.StatusCode)
	}
	// Error() prints Code and Message: the key is cut out of both, before
	// they are shortened, so that no part of it is left.
	e.Code = shorten(redact(e.Code, apiKey), maxErrorCode)
	e.Message = shorten(redact(e.Message, apiKey), maxErrorMessage)
	e.RetryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	if e.RetryAfter == 0 && e.StatusCode == http.StatusTooManyRequests {
		if secs, ok := e.Details["retry_after_seconds"].(float64); ok && secs > 0 && secs < 1e6 {
			e.RetryAfter = time.Duration(secs * float64(time.Second))
		}
	}
	return e
}

// parseRetryAfter reads a Retry-After value: seconds or an HTTP date. It
// returns 0 when the value is absent, bad or past.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(min(secs, math.MaxInt64/int64(time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// redact replaces key in s.
func redact(s, key string) string {
	if key == "" {
		return s
	}
	return strings.ReplaceAll(s, key, "REDACTED")
}

// shorten cuts s to at most n bytes of valid UTF-8 and an ellipsis.
func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}
