// Package pancake is the Go client of the Pancake Webhooks API, the Go form
// of the TypeScript SDK's `new PancakeClient(apiKey, shopId)`, and the
// receiver-side helpers that verify the signature of a delivery.
//
// Managing webhooks:
//
//	client := pancake.NewClient(apiKey, shopID, pancake.WithBaseURL("https://webhooks.example.com/api/v1"))
//	list, err := client.Webhooks.List(ctx)
//
// Every method returns the contract's shapes. A non-2xx answer is a *Error
// that works with errors.Is and the sentinels ErrNotFound, ErrUnauthorized,
// ErrForbidden, ErrValidation, ErrRateLimited and ErrUnavailable. Idempotent
// requests (GET, PUT, DELETE) are retried on 429, 502, 503, 504 and network
// errors; see WithRetry.
//
// Receiving webhooks:
//
//	http.Handle("/webhooks", pancake.WebhookHandler(secrets, func(ctx context.Context, e *pancake.Envelope) error {
//		return handle(ctx, e)
//	}))
//
// The package uses the standard library only.
package pancake

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// Defaults of a Client.
const (
	// DefaultBaseURL is the API root the TypeScript SDK talks to.
	DefaultBaseURL = "https://pos.pages.fm/api/v1"
	// Version is the version of this package, sent in the User-Agent.
	Version = "0.1.0"
	// DefaultUserAgent is the User-Agent of requests unless WithUserAgent
	// sets another.
	DefaultUserAgent = "pancake-go/" + Version
	// DefaultTimeout bounds one HTTP request of the default *http.Client.
	// A test send waits for the receiver (up to 15 s), so it is generous.
	DefaultTimeout = 60 * time.Second
	// DefaultRetryMax is how many times an idempotent request is retried.
	DefaultRetryMax = 3
	// DefaultRetryBase is the first back-off, doubled on every retry.
	DefaultRetryBase = 250 * time.Millisecond
	// DefaultRetryCap bounds one back-off.
	DefaultRetryCap = 5 * time.Second
	// MaxRetryAfter is the longest Retry-After a request waits for before
	// retrying; a longer one returns the *Error, RetryAfter set, at once.
	MaxRetryAfter = time.Minute
)

// Bounds on what a response may make the client read.
const (
	maxResponseBytes  = 64 << 20 // a page of 100 deliveries with their payloads
	maxErrorBodyBytes = 1 << 20
	maxErrorMessage   = 1000
	maxErrorCode      = 100
)

// Client talks to the Pancake Webhooks API on behalf of one shop. It is safe
// for concurrent use. Create it with NewClient.
type Client struct {
	httpClient *http.Client
	baseURL    string // no trailing slash
	baseErr    error  // a bad WithBaseURL, returned by every call
	apiKey     string
	shopID     string
	userAgent  string
	retry      retryPolicy

	common service

	// Webhooks manages the shop's webhooks and their deliveries.
	Webhooks *WebhooksService
	// Events publishes events (the POS side).
	Events *EventsService
}

type service struct {
	client *Client
}

// NewClient returns a client for the shop shopID that authenticates with
// apiKey (sent as "Authorization: Bearer <key>", never in a URL). Without
// options it talks to DefaultBaseURL with a *http.Client whose timeout is
// DefaultTimeout, and retries as WithRetry's defaults say.
func NewClient(apiKey, shopID string, opts ...Option) *Client {
	c := &Client{
		httpClient: &http.Client{Timeout: DefaultTimeout},
		baseURL:    DefaultBaseURL,
		apiKey:     apiKey,
		shopID:     shopID,
		userAgent:  DefaultUserAgent,
		retry:      retryPolicy{max: DefaultRetryMax, base: DefaultRetryBase, cap: DefaultRetryCap},
	}
	for _, opt := range opts {
		opt(c)
	}
	c.common.client = c
	c.Webhooks = (*WebhooksService)(&c.common)
	c.Events = (*EventsService)(&c.common)
	return c
}

// Option configures a Client in NewClient.
type Option func(*Client)

// WithBaseURL sets the API root, /api/v1 included, e.g.
// "http://localhost:8080/api/v1"; a trailing slash is optional. It must be an
// absolute http or https URL without a query or fragment; otherwise every
// call of the client returns an error.
func WithBaseURL(u string) Option {
	return func(c *Client) {
		c.baseURL, c.baseErr = parseBaseURL(u)
	}
}

func parseBaseURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Opaque != "" ||
		(u.Scheme != "http" && u.Scheme != "https") || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		// The value is left out: it may carry a password.
		return "", errors.New("pancake: invalid base URL: want an absolute http(s) URL without query or fragment")
	}
	return strings.TrimRight(raw, "/"), nil
}

// WithHTTPClient sets the *http.Client requests go through (its Transport,
// Timeout, ...). nil keeps the default.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) {
		if hc != nil {
			c.httpClient = hc
		}
	}
}

// WithRetry sets the retry policy of idempotent requests: at most retries
// retries (0 disables them), after a back-off of base doubled on every retry,
// capped at cap, with jitter (a random wait between half and all of it). A
// Retry-After of the server up to MaxRetryAfter is waited for instead. Zero
// or negative durations keep their defaults, DefaultRetryBase and
// DefaultRetryCap; negative retries are 0.
func WithRetry(retries int, base, cap time.Duration) Option {
	return func(c *Client) {
		c.retry = retryPolicy{max: max(retries, 0), base: base, cap: cap}
		if c.retry.base <= 0 {
			c.retry.base = DefaultRetryBase
		}
		if c.retry.cap <= 0 {
			c.retry.cap = DefaultRetryCap
		}
		if c.retry.cap < c.retry.base {
			c.retry.cap = c.retry.base
		}
	}
}

// WithUserAgent sets the User-Agent of requests (default DefaultUserAgent).
func WithUserAgent(ua string) Option {
	return func(c *Client) {
		if ua != "" {
			c.userAgent = ua
		}
	}
}

// String returns a pointer to s, for the optional fields of requests.
func String(s string) *string { return &s }

// Bool returns a pointer to b, for the optional fields of requests.
func Bool(b bool) *bool { return &b }

// retryPolicy is WithRetry's.
type retryPolicy struct {
	max       int
	base, cap time.Duration
}

// backoff returns the wait before retry n+1 (n from 0): base·2ⁿ capped at
// cap, then a random point of its upper half.
func (p retryPolicy) backoff(n int) time.Duration {
	d := p.base
	for i := 0; i < n && d < p.cap; i++ {
		d *= 2
	}
	d = min(d, p.cap)
	half := d / 2
	return half + rand.N(d-half+1)
}

// request is one API call.
type request struct {
	method string
	path   string // escaped, after the base URL: "/shops/x/webhooks"
	query  url.Values
	body   any // nil: no body
	// retryPOST makes a POST retryable (it carries an idempotency key).
	retryPOST bool
}

func (r *request) idempotent() bool {
	switch r.method {
	case http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete, http.MethodOptions:
		return true
	}
	return r.retryPOST
}

// shopPath returns /shops/{shop_id} followed by segs, each path-escaped.
func (c *Client) shopPath(segs ...string) (string, error) {
	var b strings.Builder
	b.WriteString("/shops/")
	if err := checkSegment("shop ID", c.shopID); err != nil {
		return "", err
	}
	b.WriteString(url.PathEscape(c.shopID))
	for _, s := range segs {
		b.WriteByte('/')
		b.WriteString(s)
	}
	return b.String(), nil
}

// checkSegment refuses an ID that cannot be a path segment.
func checkSegment(what, id string) error {
	if id == "" || id == "." || id == ".." {
		return fmt.Errorf("%w: %s %q", ErrInvalidID, what, id)
	}
	return nil
}

// transportError is a failure to get a response: retryable when idempotent.
type transportError struct{ err error }

func (e *transportError) Error() string { return e.err.Error() }
func (e *transportError) Unwrap() error { return e.err }

// do sends r, retrying as the policy says, and decodes a 2xx JSON answer
// into out (unless out is nil). A non-2xx answer is a *Error.
func (c *Client) do(ctx context.Context, r *request, out any) error {
	if c.baseErr != nil {
		return c.baseErr
	}
	var body []byte
	if r.body != nil {
		var err error
		if body, err = json.Marshal(r.body); err != nil {
			return fmt.Errorf("pancake: %s %s: encode request: %w", r.method, r.path, err)
		}
	}
	u := c.baseURL + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	reached := false // an earlier attempt may have been carried out
	for attempt := 0; ; attempt++ {
		var wrote atomic.Bool // the attempt's request went out on a connection
		tctx := httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{WroteHeaders: func() { wrote.Store(true) }})
		err := c.send(tctx, r.method, u, body, out)
		if err == nil {
			return nil
		}
		if reached && r.method == http.MethodDelete && isNotFound(err) {
			// The earlier attempt deleted it, and its answer was lost.
			return nil
		}
		wait, retry := c.retryAfter(ctx, r, err, attempt)
		if !retry {
			return c.finish(r, err)
		}
		reached = reached || wrote.Load() && mayHaveReached(err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return c.finish(r, ctx.Err())
		case <-t.C:
		}
	}
}

// retryAfter decides whether err of attempt (from 0) is retried, and after
// how long.
func (c *Client) retryAfter(ctx context.Context, r *request, err error, attempt int) (time.Duration, bool) {
	if !r.idempotent() || attempt >= c.retry.max || ctx.Err() != nil {
		return 0, false
	}
	wait := c.retry.backoff(attempt)
	var apiErr *Error
	var te *transportError
	switch {
	case errors.As(err, &apiErr):
		switch apiErr.StatusCode {
		case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		default:
			return 0, false
		}
		if apiErr.RetryAfter > MaxRetryAfter {
			return 0, false
		}
		if apiErr.RetryAfter > 0 {
			wait = apiErr.RetryAfter
		}
	case errors.As(err, &te):
	default:
		return 0, false
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
		return 0, false // the wait would outlast the caller
	}
	return wait, true
}

// mayHaveReached reports whether an attempt whose request was sent and
// that failed with err may still have been carried out by the server: its
// connection failed before the answer came, or a gateway gave up waiting
// for the answer (502, 504). 429 and 503 say the request was not taken.
func mayHaveReached(err error) bool {
	var apiErr *Error
	if errors.As(err, &apiErr) {
		return apiErr.StatusCode == http.StatusBadGateway || apiErr.StatusCode == http.StatusGatewayTimeout
	}
	var te *transportError
	return errors.As(err, &te)
}

// isNotFound reports whether err is the API's own 404 (code not_found),
// not a proxy's.
func isNotFound(err error) bool {
	var apiErr *Error
	return errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusNotFound && apiErr.Code == CodeNotFound
}

// finish gives err its final form: a *Error as it is, anything else prefixed
// with the request and stripped of the API key.
func (c *Client) finish(r *request, err error) error {
	var apiErr *Error
	if errors.As(err, &apiErr) {
		return apiErr
	}
	var te *transportError
	if errors.As(err, &te) {
		err = te.err
	}
	err = fmt.Errorf("pancake: %s %s: %w", r.method, r.path, err)
	if c.apiKey != "" && strings.Contains(err.Error(), c.apiKey) {
		err = &redactedError{msg: strings.ReplaceAll(err.Error(), c.apiKey, "REDACTED"), err: err}
	}
	return err
}

// redactedError hides the API key from the message of an error.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// send makes one attempt.
func (c *Client) send(ctx context.Context, method, u string, body []byte, out any) error {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+c.apiKey)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.httpClient.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its URL and method are said by finish
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &transportError{err}
	}
	defer func() {
		_, _ = io.CopyN(io.Discard, resp.Body, 4<<10) // let the connection be reused
		resp.Body.Close()
	}()

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		data, err := io.ReadAll(io.LimitReader(resp.Body, maxErrorBodyBytes))
		if err != nil && ctx.Err() != nil {
			return ctx.Err()
		}
		return newError(resp, data, c.apiKey)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &transportError{fmt.Errorf("read response: %w", err)}
	}
	if len(data) > maxResponseBytes {
		return fmt.Errorf("response larger than %d bytes", maxResponseBytes)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("decode %d response: %w", resp.StatusCode, err)
	}
	return nil
}
