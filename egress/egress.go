// Package egress is the one outbound HTTP client of Pancake Webhooks, used
// for deliveries, test sends and manual retries.
//
// It checks the resolved address at connect time (so DNS re-binding can't
// pass), follows no redirects, ignores proxy settings from the environment,
// bounds every attempt in time and the response body in size, reuses
// kept-alive connections per host, and turns every way an attempt can fail
// into a short reason a user can act on (Result.FailureReason). Reasons never
// echo the request URL, whose query may carry a token.
package egress

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	webhooks "github.com/pancake-pos/pancake-webhooks"
)

// Defaults of Config, and the cap on Result.RetryAfter.
const (
	DefaultTimeout             = 15 * time.Second
	DefaultConnectTimeout      = 5 * time.Second
	DefaultMaxResponseBody     = 64 << 10
	DefaultMaxIdleConnsPerHost = 64
	DefaultUserAgent           = "PancakeWebhooks"
	MaxRetryAfter              = time.Hour
)

// Config tunes a Client. Zero values take the documented defaults.
type Config struct {
	// Timeout bounds a whole attempt: connect, TLS, sending, waiting for the
	// headers and reading the body, even when the receiver trickles them.
	// Default 15s.
	Timeout time.Duration

	// ConnectTimeout bounds the DNS lookup and TCP connect, and separately
	// the TLS handshake. Default 5s, never more than Timeout.
	ConnectTimeout time.Duration

	// MaxResponseBody is how many bytes of a response body are kept; the
	// rest is not read. Default 64 KiB.
	MaxResponseBody int64

	// AllowPrivateNetworks allows every non-public destination (loopback,
	// private, link-local, …). For local development and tests only.
	AllowPrivateNetworks bool

	// AllowCIDRs opens chosen non-public ranges, e.g. 10.1.0.0/16 for
	// receivers inside the operator's network.
	AllowCIDRs []netip.Prefix

	// RequireHTTPS refuses plain http:// URLs ("invalid URL: must use
	// https"). A server that stops allowing http must not go on sending
	// to the http webhooks made while it did.
	RequireHTTPS bool

	// UserAgent is sent on every request. Default "PancakeWebhooks"; the
	// server sets "PancakeWebhooks/<version>".
	UserAgent string

	// MaxIdleConnsPerHost sizes the keep-alive pool per host. Default 64.
	MaxIdleConnsPerHost int

	// NowFunc is the wall clock, used for a Retry-After HTTP date when the
	// response carries no Date header. Default time.Now.
	NowFunc func() time.Time
}

// validate checks cfg; its errors name the field.
func (cfg *Config) validate() error {
	switch {
	case cfg.Timeout < 0:
		return errors.New("Timeout cannot be less than zero")
	case cfg.ConnectTimeout < 0:
		return errors.New("ConnectTimeout cannot be less than zero")
	case cfg.MaxResponseBody < 0:
		return errors.New("MaxResponseBody cannot be less than zero")
	case cfg.MaxIdleConnsPerHost < 0:
		return errors.New("MaxIdleConnsPerHost cannot be less than zero")
	case strings.ContainsAny(cfg.UserAgent, "\r\n"):
		return errors.New("UserAgent cannot contain a line break")
	}
	for i, p := range cfg.AllowCIDRs {
		if !p.IsValid() {
			return fmt.Errorf("AllowCIDRs[%d] is not a valid prefix", i)
		}
	}
	return nil
}

// Client sends webhook attempts. It is safe for concurrent use; build one
// per process and share it.
type Client struct {
	http      *http.Client
	transport *http.Transport
	cfg       Config
}

// NewClient returns a client for cfg. It fails only on an invalid Config,
// with an error that names the field ("egress: Timeout cannot be less than
// zero").
func NewClient(cfg Config) (*Client, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("egress: %w", err)
	}
	cfg.Timeout = cmp.Or(cfg.Timeout, DefaultTimeout)
	cfg.ConnectTimeout = min(cmp.Or(cfg.ConnectTimeout, DefaultConnectTimeout), cfg.Timeout)
	cfg.MaxResponseBody = cmp.Or(cfg.MaxResponseBody, DefaultMaxResponseBody)
	cfg.MaxIdleConnsPerHost = cmp.Or(cfg.MaxIdleConnsPerHost, DefaultMaxIdleConnsPerHost)
	cfg.UserAgent = cmp.Or(cfg.UserAgent, DefaultUserAgent)
	if cfg.NowFunc == nil {
		cfg.NowFunc = time.Now
	}

	g := newGuard(cfg.AllowPrivateNetworks, cfg.AllowCIDRs)
	dialer := &net.Dialer{
		Timeout:   cfg.ConnectTimeout,
		KeepAlive: 30 * time.Second,
		Control:   g.control, // on the resolved address, just before connect
	}
	t := &http.Transport{
		Proxy:                  nil, // never a proxy from the environment
		DialContext:            dialer.DialContext,
		TLSHandshakeTimeout:    cfg.ConnectTimeout,
		ForceAttemptHTTP2:      true, // custom DialContext would otherwise turn it off
		MaxIdleConns:           cfg.MaxIdleConnsPerHost * 16,
		MaxIdleConnsPerHost:    cfg.MaxIdleConnsPerHost,
		IdleConnTimeout:        90 * time.Second,
		MaxResponseHeaderBytes: 64 << 10,
		// Go would ask for gzip (a header the attempt's recorded request
		// headers do not show) and unpack the answer itself, dropping the
		// headers that describe it; a body that claimed gzip and was not
		// then failed an attempt the receiver had accepted (audit). A
		// receiver's body is kept as it came, to be read by a person.
		DisableCompression: true,
	}
	return &Client{
		transport: t,
		cfg:       cfg,
		http: &http.Client{
			Transport: t,
			Timeout:   cfg.Timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse // a 3xx is the answer, not a hop
			},
		},
	}, nil
}

// Request is one attempt to make.
type Request struct {
	URL    string
	Header http.Header // extra headers (signature etc.); Content-Type: application/json and User-Agent are set by the client
	Body   []byte
}

// Result is what came of an attempt. Every failure is a FailureReason.
type Result struct {
	StatusCode    int           // 0 when no HTTP response came
	Header        http.Header   // response headers, nil if none
	Body          string        // up to MaxResponseBody bytes, made valid UTF-8
	BodyTruncated bool          // the body was cut at MaxResponseBody
	Duration      time.Duration // from Send's start to its end
	FailureReason string        // "" on a 2xx; otherwise short and user-facing
	RetryAfter    time.Duration // a 429's or 503's Retry-After, capped at MaxRetryAfter; 0 if absent
	Gone          bool          // the receiver answered 410 Gone
}

// Success reports whether the receiver answered 2xx within the timeout
// (the contract's definition of a delivered attempt).
func (r Result) Success() bool {
	return r.StatusCode >= 200 && r.StatusCode < 300 && r.FailureReason == ""
}

// Outcome classifies the attempt into a small fixed set, for metric
// labels: success, http_error, timeout, refused, dns, tls, blocked, other.
// It reads the failure reasons this package writes, so it lives beside them.
func (r Result) Outcome() string {
	switch reason := r.FailureReason; {
	case r.Success():
		return "success"
	case r.StatusCode != 0:
		return "http_error"
	case strings.Contains(reason, "timeout"):
		return "timeout"
	case strings.Contains(reason, "refused"):
		return "refused"
	case strings.HasPrefix(reason, "dns"):
		return "dns"
	case strings.HasPrefix(reason, "tls"):
		return "tls"
	case strings.HasPrefix(reason, "destination not allowed"):
		return "blocked"
	default:
		return "other"
	}
}

// UserAgent is the User-Agent header every request carries.
func (c *Client) UserAgent() string { return c.cfg.UserAgent }

// CloseIdleConnections closes kept-alive connections that are not in use.
// The server calls it on shutdown; tests call it in cleanup.
func (c *Client) CloseIdleConnections() { c.transport.CloseIdleConnections() }

// Send POSTs req.Body to req.URL with Content-Type: application/json and
// the configured User-Agent. It never panics and never returns an error:
// every failure, including an invalid URL or a refused destination, is
// described in Result.FailureReason. Cancelling ctx ends the attempt
// ("cancelled").
//
// Deliveries are at least once and carry webhook-id for de-duplication, so a
// request that fails on a kept-alive connection the receiver had just closed
// is re-sent on another connection, within the same Timeout.
func (c *Client) Send(ctx context.Context, req Request) (res Result) {
	start := time.Now() // monotonic: measures, never stamps
	defer func() {
		if p := recover(); p != nil {
			res = Result{FailureReason: "internal error"}
		}
		res.Duration = time.Since(start)
	}()
	return c.send(ctx, req, start)
}

func (c *Client) send(ctx context.Context, req Request, start time.Time) Result {
	u, err := checkURL(req.URL)
	if err != nil {
		return Result{FailureReason: err.Error()}
	}
	if c.cfg.RequireHTTPS && u.Scheme != "https" {
		return Result{FailureReason: "invalid URL: must use https"}
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, req.URL, bytes.NewReader(req.Body))
	if err != nil {
		return Result{FailureReason: "invalid request"}
	}
	hr.Header = make(http.Header, len(req.Header)+3)
	for k, v := range req.Header {
		hr.Header[k] = v
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("User-Agent", c.cfg.UserAgent)
	// Not marked replayable (an Idempotency-Key): the transport would send
	// it again, unrecorded, on each kept-alive connection that fails after
	// the request was written, as when a receiver's handler read it and
	// then dropped the connection. Only a request not written at all (the
	// connection found closed) goes out on another.

	resp, err := c.http.Do(hr)
	if err != nil {
		return Result{FailureReason: c.reason(ctx, err, time.Since(start))}
	}
	defer resp.Body.Close() // not drained: a long rest closes the connection

	if resp.StatusCode < 100 || resp.StatusCode > 599 {
		// Go reads any three digits; the contract's status_code is 0 when
		// no valid HTTP response came.
		return Result{FailureReason: fmt.Sprintf("invalid HTTP response: status %03d", resp.StatusCode)}
	}
	res := Result{StatusCode: resp.StatusCode, Header: resp.Header, Gone: resp.StatusCode == http.StatusGone}
	body, readErr := io.ReadAll(io.LimitReader(resp.Body, c.cfg.MaxResponseBody+1))
	res.Body, res.BodyTruncated = clip(body, c.cfg.MaxResponseBody)
	// The status decides: a 2xx is the receiver's acceptance, whatever
	// becomes of the body after it (cut by the timeout, the connection
	// closed before its end). Counted as failed, such deliveries were sent
	// again on the whole schedule to a receiver that had taken them. The
	// body read so far is kept, marked cut.
	res.BodyTruncated = res.BodyTruncated || readErr != nil
	switch {
	case resp.StatusCode >= 300 && resp.StatusCode < 400 && resp.Header.Get("Location") != "":
		res.FailureReason = fmt.Sprintf("redirect not followed (HTTP %d)", resp.StatusCode)
	case resp.StatusCode < 200 || resp.StatusCode >= 300:
		res.FailureReason = fmt.Sprintf("HTTP %d", resp.StatusCode)
	}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		now, err := http.ParseTime(resp.Header.Get("Date"))
		if err != nil {
			now = c.cfg.NowFunc()
		}
		res.RetryAfter = ParseRetryAfter(resp.Header.Get("Retry-After"), now)
	}
	return res
}

// CheckURL reports whether raw is a URL Send will try: absolute http or
// https, with a host and a valid port, without user information. The
// error's text is the FailureReason Send would give ("invalid URL: …"); it
// never repeats the URL. Whether the destination is allowed is only known at
// connect time.
func CheckURL(raw string) error {
	_, err := checkURL(raw)
	return err
}

// checkURL is CheckURL, returning the parsed URL (its scheme lower case).
func checkURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return nil, errors.New("invalid URL")
	case webhooks.QueryHasSpace(u):
		// net/http would put it on the request line as it is.
		return nil, errors.New("invalid URL: a space in the query")
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, errors.New("invalid URL: scheme must be http or https")
	case u.User != nil:
		return nil, errors.New("invalid URL: user and password are not allowed")
	case u.Opaque != "" || u.Hostname() == "":
		return nil, errors.New("invalid URL: no host")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, errors.New("invalid URL: bad port")
		}
	}
	return u, nil
}

// clip cuts b to at most limit bytes of storable text (see
// webhooks.StorableText): a rune cut at the limit is dropped, other invalid
// bytes and NULs become U+FFFD (and the result is cut again if that made it
// longer).
func clip(b []byte, limit int64) (string, bool) {
	cut := int64(len(b)) > limit
	if cut {
		b = b[:limit]
		// Drop a multi-byte rune the limit cut in two.
		for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
			if utf8.RuneStart(b[i]) {
				if !utf8.FullRune(b[i:]) {
					b = b[:i]
				}
				break
			}
		}
	}
	s := webhooks.StorableText(string(b))
	if int64(len(s)) > limit {
		n := int(limit)
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s, cut = s[:n], true
	}
	return s, cut
}

// ParseRetryAfter reads a Retry-After value, either delay-seconds or an
// HTTP date taken relative to now, capped at MaxRetryAfter (a number of
// seconds too large to read included); 0 when absent, unreadable or in the
// past.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if errors.Is(err, strconv.ErrRange) && v[0] != '-' {
		// More seconds than an int64 holds is still a valid delay
		// (RFC 9110's 1*DIGIT), and the longest: RFC 9111 §1.2.2 has a
		// cache read it as the largest value it can.
		return MaxRetryAfter
	}
	if err == nil {
		if n <= 0 {
			return 0
		}
		return time.Duration(min(n, int64(MaxRetryAfter/time.Second))) * time.Second
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	return max(0, min(t.Sub(now), MaxRetryAfter))
}
