// Package egress is the one outbound HTTP client of Pancake Webhooks, used
// for deliveries, test sends and manual retries. It checks the resolved
// address at connect time (so DNS re-binding can't pass), follows no
// redirects, ignores proxy settings from the environment, bounds every
// attempt in time and the response body in size, and turns every way an
// attempt can fail into a short reason a user can act on.
package egress

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"
)

// Defaults of Config.
const (
	DefaultTimeout             = 15 * time.Second
	DefaultConnectTimeout      = 5 * time.Second
	DefaultMaxResponseBody     = 64 << 10
	DefaultMaxIdleConnsPerHost = 64
	MaxRetryAfter              = time.Hour
)

// Config tunes the client. Zero values take the defaults.
type Config struct {
	Timeout              time.Duration  // total per attempt; default 15s
	ConnectTimeout       time.Duration  // dial and TLS handshake; default 5s, never more than Timeout
	MaxResponseBody      int64          // bytes of response body kept; default 64 KiB
	AllowPrivateNetworks bool           // allow every non-public destination (development, tests)
	AllowCIDRs           []netip.Prefix // open chosen ranges only
	UserAgent            string         // default "PancakeWebhooks"; the server sends "PancakeWebhooks/<version>"
	MaxIdleConnsPerHost  int            // keep-alive pool per host; default 64
}

// Client sends webhook attempts.
type Client struct {
	http      *http.Client
	transport *http.Transport
	cfg       Config
}

// NewClient returns a client for cfg.
func NewClient(cfg Config) (*Client, error) {
	switch {
	case cfg.Timeout < 0:
		return nil, errors.New("egress: Timeout cannot be less than zero")
	case cfg.ConnectTimeout < 0:
		return nil, errors.New("egress: ConnectTimeout cannot be less than zero")
	case cfg.MaxResponseBody < 0:
		return nil, errors.New("egress: MaxResponseBody cannot be less than zero")
	case cfg.MaxIdleConnsPerHost < 0:
		return nil, errors.New("egress: MaxIdleConnsPerHost cannot be less than zero")
	}
	cfg.Timeout = cmp.Or(cfg.Timeout, DefaultTimeout)
	cfg.ConnectTimeout = min(cmp.Or(cfg.ConnectTimeout, DefaultConnectTimeout), cfg.Timeout)
	cfg.MaxResponseBody = cmp.Or(cfg.MaxResponseBody, DefaultMaxResponseBody)
	cfg.MaxIdleConnsPerHost = cmp.Or(cfg.MaxIdleConnsPerHost, DefaultMaxIdleConnsPerHost)
	cfg.UserAgent = cmp.Or(cfg.UserAgent, "PancakeWebhooks")
	g := &guard{allowAll: cfg.AllowPrivateNetworks, allow: cfg.AllowCIDRs}
	dialer := &net.Dialer{Timeout: cfg.ConnectTimeout, KeepAlive: 30 * time.Second, Control: g.control}
	t := &http.Transport{
		Proxy:                  nil, // never a proxy from the environment
		DialContext:            dialer.DialContext,
		TLSHandshakeTimeout:    cfg.ConnectTimeout,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           cfg.MaxIdleConnsPerHost * 16,
		MaxIdleConnsPerHost:    cfg.MaxIdleConnsPerHost,
		IdleConnTimeout:        90 * time.Second,
		MaxResponseHeaderBytes: 64 << 10,
		ExpectContinueTimeout:  0,
	}
	c := &Client{
		transport: t,
		cfg:       cfg,
		http: &http.Client{
			Transport: t,
			Timeout:   cfg.Timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
	}
	return c, nil
}

// Request is one attempt to make.
type Request struct {
	URL    string
	Header http.Header // extra headers; Content-Type and User-Agent are set by the client
	Body   []byte
}

// Result is what came of an attempt. Every failure is a FailureReason.
type Result struct {
	StatusCode    int         // 0 when no HTTP response came
	Header        http.Header // response headers, nil if none
	Body          string      // up to MaxResponseBody bytes
	BodyTruncated bool        // the body was cut at MaxResponseBody
	Duration      time.Duration
	FailureReason string        // "" on a 2xx
	RetryAfter    time.Duration // a 429/503's Retry-After, capped at 1h
	Gone          bool          // 410
}

// Success reports whether the receiver answered 2xx.
func (r Result) Success() bool {
	return r.StatusCode >= 200 && r.StatusCode < 300 && r.FailureReason == ""
}

// CloseIdleConnections closes kept-alive connections.
func (c *Client) CloseIdleConnections() { c.transport.CloseIdleConnections() }

// Send POSTs req.Body to req.URL. It never panics and never returns an
// error: every failure is described in Result.FailureReason.
func (c *Client) Send(ctx context.Context, req Request) Result {
	start := time.Now()
	res := c.send(ctx, req)
	res.Duration = time.Since(start)
	return res
}

func (c *Client) send(ctx context.Context, req Request) Result {
	u, err := url.Parse(req.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Result{FailureReason: "invalid URL"}
	}
	if u.User != nil {
		return Result{FailureReason: "invalid URL: user and password are not allowed"}
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), strings.NewReader(string(req.Body)))
	if err != nil {
		return Result{FailureReason: "invalid URL"}
	}
	for k, v := range req.Header {
		hr.Header[k] = v
	}
	hr.Header.Set("Content-Type", "application/json")
	if c.cfg.UserAgent != "" {
		hr.Header.Set("User-Agent", c.cfg.UserAgent)
	}
	resp, err := c.http.Do(hr)
	if err != nil {
		return Result{FailureReason: c.reason(err)}
	}
	defer resp.Body.Close()
	res := Result{StatusCode: resp.StatusCode, Header: resp.Header}
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.cfg.MaxResponseBody+1))
	if int64(len(body)) > c.cfg.MaxResponseBody {
		body, res.BodyTruncated = body[:c.cfg.MaxResponseBody], true
	}
	res.Body = validUTF8(body)
	switch {
	case err != nil && !res.BodyTruncated:
		res.FailureReason = "reading the response failed: " + c.reason(err)
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		res.FailureReason = fmt.Sprintf("redirect not followed (HTTP %d)", resp.StatusCode)
	case resp.StatusCode < 200 || resp.StatusCode >= 300:
		res.FailureReason = fmt.Sprintf("HTTP %d", resp.StatusCode)
	}
	res.Gone = resp.StatusCode == http.StatusGone
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		res.RetryAfter = ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	return res
}

// validUTF8 keeps a body readable: cut multi-byte runes are dropped.
func validUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// ParseRetryAfter reads a Retry-After value (seconds or an HTTP date),
// capped at one hour; 0 when absent or unreadable.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		if n > int64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter
		}
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return max(0, min(d, MaxRetryAfter))
}

// reason turns a transport error into a short user-facing reason that
// never echoes the URL (it may carry a token in its query).
func (c *Client) reason(err error) string {
	var blocked *blockedError
	var dnsErr *net.DNSError
	var certErr *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var recErr tls.RecordHeaderError
	var netErr net.Error
	switch {
	case errors.As(err, &blocked):
		return blocked.Error()
	case errors.As(err, &dnsErr):
		if dnsErr.IsNotFound {
			return "dns lookup failed: no such host"
		}
		if dnsErr.IsTimeout {
			return "dns lookup failed: timeout"
		}
		return "dns lookup failed"
	case errors.As(err, &certErr), errors.As(err, &unknownAuth), errors.As(err, &hostErr):
		return "tls handshake failed: certificate not trusted for this host"
	case errors.As(err, &recErr):
		return "tls handshake failed: the server did not answer TLS"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return fmt.Sprintf("timeout after %s", c.cfg.Timeout)
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection reset by the receiver"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "host unreachable"
	case strings.Contains(err.Error(), "tls:"):
		return "tls handshake failed"
	default:
		return "request failed"
	}
}
