// Package httpapi serves the HTTP API of Pancake Webhooks: the shop API the
// pancake-client-sdk talks to, event publishing, the admin API, health
// checks, metrics and the OpenAPI description, with the contract's JSON
// error envelope, API-key authentication and per-key rate limits.
//
// Where the contract is silent, the API behaves as follows.
//
//   - Checks run in this order: route (404/405), API key (401), rate limit
//     (429), shop (403), then the body (413, 400) and the handler. A path
//     shop_id that is not the key's shop is 403 even when it is malformed.
//     On admin paths a malformed shop_id or key_id is 404.
//   - The admin API with no AdminToken configured answers 404 not_found
//     "admin API disabled", so that it does not advertise itself.
//   - An authenticated key is cached in process for AuthCacheTTL (5 s): a key
//     revoked through this server stops at once, one revoked elsewhere (the
//     CLI, another replica) as soon as the store tells ForgetKeys, and within
//     the TTL in any case. Unknown keys are not cached, so a new key works at
//     once.
//   - Runs of slashes in a path count as one ("/api/v1//shops/…", as the
//     TypeScript SDK asks with a base URL ending in "/"); paths with "/./"
//     or "/../" are 404, not the mux's redirects.
//   - CORS: a browser may call the API from any origin, without
//     credentials (the API key authenticates, never a cookie); a
//     preflight is answered 204 with the methods and the Authorization
//     and Content-Type headers allowed.
//   - A malformed webhook or delivery id in a path is 404, without a read.
//   - Bodies: empty means {}; JSON that is not an object is
//     validation_failed naming "body"; trailing data is invalid_json.
//     Management bodies are limited to 64 KiB, publish and test to
//     MaxBodyBytes (256 KiB).
//   - Query parameters: an empty value counts as absent; a parameter given
//     twice is a 400; a page past the last is empty; a webhook_id filter
//     (up to 64 letters, digits, _ and -) that names no webhook of the
//     shop lists nothing, whether it looks like an ID of ours or not.
//   - Bodies that are not UTF-8 are invalid_json, as JSON must be UTF-8.
//   - Dates before 1970-01-01 count as that day: nothing is older.
//   - Stats: with only from_date the range runs through today (or through
//     from_date when that is later); with only to_date it covers the 7 days
//     ending then.
//   - Update: a null description clears it; null url, events or is_active
//     is a 400. clear-history also accepts an RFC 3339 before_date.
//   - Publish: "data" is required and must be an object; "id" is 1 to 255
//     bytes of printable UTF-8 ("" is a 400, null is no key).
//   - A pending delivery has no response (the contract's "no response
//     yet", though the SDK's type marks it required) and has scheduled_at;
//     next_retry_at is present only on failed attempts, null when none
//     will come.
//   - Admin shop creation answers key_id besides shop_id and api_key.
package httpapi

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"
	"golang.org/x/time/rate"

	webhooks "github.com/pancake-pos/pancake-webhooks"
)

// Defaults of Config.
const (
	// DefaultRequestTimeout bounds how long a request waits for the
	// database (test sends, manual retries and history clears aside).
	DefaultRequestTimeout = 30 * time.Second
	// DefaultListWait is how long a delivery list waits for its shop's
	// turn before it is a 429 (Config.ListWait).
	DefaultListWait = 10 * time.Second
	// DefaultSecretOverlap is how long a rotated-out secret keeps signing.
	DefaultSecretOverlap = webhooks.DefaultSecretOverlap
	// NoSecretOverlap as Config.SecretOverlap ends a rotated-out secret at
	// once: after a leak, the old secret must stop signing now.
	NoSecretOverlap time.Duration = -1
	// DefaultMaxBodyBytes limits publish and test bodies (256 KiB).
	DefaultMaxBodyBytes = 256 << 10
	// DefaultMaxManagementBodyBytes limits the other request bodies (64 KiB).
	DefaultMaxManagementBodyBytes = 64 << 10
	// DefaultRateLimit is the per-key rate on management endpoints.
	DefaultRateLimit rate.Limit = 100
	// DefaultRateBurst is the per-key burst on management endpoints.
	DefaultRateBurst = 200
	// DefaultAuthCacheTTL is how long a key looked up in the store is
	// trusted without asking again; a revoked key stops working at most
	// this long after its revocation.
	DefaultAuthCacheTTL = 5 * time.Second
	// DefaultReadyTimeout bounds the readiness check.
	DefaultReadyTimeout = 2 * time.Second
)

// Config configures a Server. Zero fields take the default named in their
// comment; the services are required.
type Config struct {
	// Logger logs requests and internal errors (default: discard).
	Logger *slog.Logger
	// Now is the one clock (default time.Now).
	Now func() time.Time

	// Shops, Webhooks, Deliveries, Events and Attempter are the services
	// the handlers call. Required.
	Shops      webhooks.ShopService
	Webhooks   webhooks.WebhookService
	Deliveries webhooks.DeliveryService
	Events     webhooks.EventService
	Attempter  webhooks.Attempter

	// Ready reports whether the service can serve (database reachable,
	// migrations applied), for GET /readyz. Nil: always ready.
	Ready func(ctx context.Context) error
	// Unavailable says an error of the services is the database's passing
	// unavailability (unreachable, restarting, full: store.Unavailable).
	// Such a request is answered 503 unavailable with Retry-After instead
	// of 500 internal, so that clients send it again. Nil: none is.
	Unavailable func(error) bool
	// Registerer receives the HTTP metrics (nil: none are kept).
	Registerer prometheus.Registerer
	// Metrics is served at GET /metrics without auth when non-nil.
	Metrics http.Handler

	// AdminToken is the bearer token of the admin API; "" turns the admin
	// API off (its routes answer 404 not_found "admin API disabled").
	AdminToken string
	// URLPolicy says which webhook URLs are acceptable.
	URLPolicy webhooks.URLPolicy
	// MaxWebhooksPerShop caps a shop's webhooks (default
	// webhooks.DefaultMaxWebhooks); one more is 409 conflict.
	MaxWebhooksPerShop int
	// SecretOverlap is how long the previous secret keeps signing after a
	// rotation (default 24h; NoSecretOverlap: not at all).
	SecretOverlap time.Duration
	// RequestTimeout bounds a request (test sends, manual retries and
	// history clears aside): one still waiting then, on a database lock
	// say, is answered 503 unavailable (default 30 s; keep it below the
	// http.Server's WriteTimeout, which cuts the connection with no
	// answer). A publish answered so may still have been stored: its
	// sender repeats it with its id.
	RequestTimeout time.Duration
	// MaxBodyBytes limits publish and test request bodies (default 256 KiB);
	// a larger body is 413 payload_too_large.
	MaxBodyBytes int64
	// MaxManagementBodyBytes limits every other request body (default 64 KiB).
	MaxManagementBodyBytes int64
	// RateLimit is the per-API-key request rate on management endpoints
	// (default 100/s; rate.Inf turns it off).
	RateLimit rate.Limit
	// RateBurst is the burst of RateLimit (default 200).
	RateBurst int
	// PublishRateLimit is the per-API-key rate on publish endpoints
	// (default 0: off).
	PublishRateLimit rate.Limit
	// PublishRateBurst is the burst of PublishRateLimit (default: twice the
	// rate, at least 1).
	PublishRateBurst int
	// MaxSyncAttemptsPerShop bounds the test sends and manual retries
	// under way at once for one shop (default 32); one more waits up to
	// SyncAttemptWait (default 10 s) for a slot, then is a 429.
	MaxSyncAttemptsPerShop int
	// MaxSyncAttempts (default 256) bounds them for all shops together.
	MaxSyncAttempts int
	SyncAttemptWait time.Duration
	// ListWait is how long a delivery list (list or pending) waits while
	// its shop has maxListsPerShop under way (read, or still being written
	// to a client) before it is a 429 (default 10 s).
	ListWait time.Duration
	// AuthCacheTTL is how long an authenticated key is remembered in
	// process (default 5s; negative: no cache). Revoking a key takes effect
	// at once on the server that revoked it, on others when they are told
	// (ForgetKeys), and within AuthCacheTTL in any case.
	AuthCacheTTL time.Duration
	// Version is shown in the OpenAPI description.
	Version string
}

func (c *Config) validate() error {
	switch {
	case c.Shops == nil:
		return errors.New("Shops must be set")
	case c.Webhooks == nil:
		return errors.New("Webhooks must be set")
	case c.Deliveries == nil:
		return errors.New("Deliveries must be set")
	case c.Events == nil:
		return errors.New("Events must be set")
	case c.Attempter == nil:
		return errors.New("Attempter must be set")
	case c.MaxWebhooksPerShop < 0:
		return errors.New("MaxWebhooksPerShop cannot be less than zero")
	case c.RequestTimeout < 0:
		return errors.New("RequestTimeout cannot be less than zero")
	case c.SecretOverlap < 0 && c.SecretOverlap != NoSecretOverlap:
		return errors.New("SecretOverlap cannot be less than zero (NoSecretOverlap: none)")
	case c.MaxBodyBytes < 0:
		return errors.New("MaxBodyBytes cannot be less than zero")
	case c.MaxManagementBodyBytes < 0:
		return errors.New("MaxManagementBodyBytes cannot be less than zero")
	case c.RateLimit < 0:
		return errors.New("RateLimit cannot be less than zero")
	case c.RateBurst < 0:
		return errors.New("RateBurst cannot be less than zero")
	case c.PublishRateLimit < 0:
		return errors.New("PublishRateLimit cannot be less than zero")
	case c.PublishRateBurst < 0:
		return errors.New("PublishRateBurst cannot be less than zero")
	case c.MaxSyncAttemptsPerShop < 0:
		return errors.New("MaxSyncAttemptsPerShop cannot be less than zero")
	case c.MaxSyncAttempts < 0:
		return errors.New("MaxSyncAttempts cannot be less than zero")
	case c.SyncAttemptWait < 0:
		return errors.New("SyncAttemptWait cannot be less than zero")
	case c.ListWait < 0:
		return errors.New("ListWait cannot be less than zero")
	}
	return nil
}

// Server is the HTTP API. It is an http.Handler; create it with NewServer
// and stop it with Close.
type Server struct {
	cfg      Config
	logger   *slog.Logger
	now      func() time.Time
	mux      *http.ServeMux
	auth     *authCache
	limiter  *limiterSet // management endpoints
	plimiter *limiterSet // publish endpoints, nil when off
	metrics  *httpMetrics
	openAPI  []byte
	sync     *syncGate // test sends and manual retries
	// listReads holds a token for each delivery list being read and
	// encoded (see maxListReads).
	listReads chan struct{}
	lists     *syncGate           // a shop's delivery lists, from their read until written (maxListsPerShop)
	listBytes *semaphore.Weighted // encoded delivery lists being written, all shops together (maxListBytes)

	closeOnce sync.Once
	draining  atomic.Bool // Drain was called: /readyz answers 503
}

// NewServer returns a Server for cfg, or an error naming the bad field.
func NewServer(cfg Config) (*Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.Logger = cmp.Or(cfg.Logger, slog.New(slog.DiscardHandler))
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.MaxWebhooksPerShop = cmp.Or(cfg.MaxWebhooksPerShop, webhooks.DefaultMaxWebhooks)
	cfg.SecretOverlap = cmp.Or(cfg.SecretOverlap, DefaultSecretOverlap)
	cfg.RequestTimeout = cmp.Or(cfg.RequestTimeout, DefaultRequestTimeout)
	cfg.MaxBodyBytes = cmp.Or(cfg.MaxBodyBytes, DefaultMaxBodyBytes)
	cfg.MaxManagementBodyBytes = cmp.Or(cfg.MaxManagementBodyBytes, DefaultMaxManagementBodyBytes)
	cfg.RateLimit = cmp.Or(cfg.RateLimit, DefaultRateLimit)
	cfg.RateBurst = cmp.Or(cfg.RateBurst, DefaultRateBurst)
	if cfg.PublishRateLimit > 0 && cfg.PublishRateBurst == 0 {
		cfg.PublishRateBurst = max(1, int(min(2*float64(cfg.PublishRateLimit), 1e9)))
	}
	cfg.AuthCacheTTL = cmp.Or(cfg.AuthCacheTTL, DefaultAuthCacheTTL)

	s := &Server{
		cfg:    cfg,
		logger: cfg.Logger,
		now:    cfg.Now,
		mux:    http.NewServeMux(),
		auth:   newAuthCache(cfg.AuthCacheTTL, cfg.Now),

		listReads: make(chan struct{}, maxListReads),
		listBytes: semaphore.NewWeighted(maxListBytes),
	}
	s.limiter = newLimiterSet(cfg.RateLimit, cfg.RateBurst, cfg.Now)
	s.sync = newSyncGate("test sends and retries", cmp.Or(cfg.MaxSyncAttemptsPerShop, DefaultMaxSyncAttemptsPerShop),
		cmp.Or(cfg.MaxSyncAttempts, DefaultMaxSyncAttempts), cmp.Or(cfg.SyncAttemptWait, DefaultSyncAttemptWait))
	// The byte budget, not a count, bounds the lists of all shops together.
	s.lists = newSyncGate("delivery lists", maxListsPerShop, 0, cmp.Or(cfg.ListWait, DefaultListWait))
	if cfg.PublishRateLimit > 0 {
		s.plimiter = newLimiterSet(cfg.PublishRateLimit, cfg.PublishRateBurst, cfg.Now)
	}
	if cfg.Registerer != nil {
		m, err := newHTTPMetrics(cfg.Registerer)
		if err != nil {
			return nil, fmt.Errorf("register HTTP metrics: %w", err)
		}
		s.metrics = m
	}
	for _, rt := range routes {
		if rt.optional == optionalMetrics && cfg.Metrics == nil {
			continue
		}
		s.mux.Handle(rt.Method+" "+rt.Path, s.adapt(rt))
	}
	spec, err := buildOpenAPI(cfg.Version)
	if err != nil {
		return nil, fmt.Errorf("build OpenAPI description: %w", err)
	}
	s.openAPI = spec
	return s, nil
}

// Close stops what the Server runs in the background. Requests still in
// flight are not affected; it is safe to call more than once.
// Drain makes /readyz answer 503 from now on, so that a load balancer
// stops sending requests here; every other route is served as before. A
// server about to stop calls it, then waits for the balancer to notice.
func (s *Server) Drain() { s.draining.Store(true) }

func (s *Server) Close() {
	s.closeOnce.Do(func() {
		// Limiters and the auth cache evict lazily, on use: nothing runs in
		// the background today. Close stays so that callers need not change
		// when something does.
	})
}

// ServeHTTP routes a request, answering unknown paths with 404 not_found
// and known paths with the wrong method with 405 method_not_allowed.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := s.now()
	sw := &statusWriter{ResponseWriter: w}
	h := sw.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")

	route := "unmatched"
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.logger.LogAttrs(r.Context(), slog.LevelError, "panic in handler",
				slog.String("method", r.Method), slog.String("url", s.logURL(r.URL)),
				slog.Any("panic", v))
			if !sw.wrote {
				s.writeError(sw, r, webhooks.Errorf(webhooks.EINTERNAL, "Internal error"))
			}
		}
		s.observe(r, route, sw.code(), s.now().Sub(start))
	}()

	if p := r.URL.EscapedPath(); strings.Contains(p, "//") {
		r = withSlashesFolded(r)
	}
	if p := r.URL.EscapedPath(); p == "" || p[0] != '/' || !isCleanPath(p) {
		s.writeError(sw, r, webhooks.Errorf(webhooks.ENOTFOUND, "No such path"))
		return
	}
	if strings.HasPrefix(r.URL.Path, "/api/") {
		if preflight := allowCORS(h, r); preflight {
			sw.WriteHeader(http.StatusNoContent)
			route = "preflight"
			return
		}
	}
	handler, pattern := s.mux.Handler(r)
	if pattern == "" {
		// Not found or method not allowed: ask the mux which, quietly.
		rec := &headerRecorder{header: http.Header{}}
		handler.ServeHTTP(rec, r)
		if rec.status == http.StatusMethodNotAllowed {
			route = "method_not_allowed"
			sw.Header().Set("Allow", rec.header.Get("Allow"))
			s.writeError(sw, r, webhooks.Errorf(webhooks.EMETHOD, "Method %s is not allowed here", sanitizeMethod(r.Method)))
			return
		}
		s.writeError(sw, r, webhooks.Errorf(webhooks.ENOTFOUND, "No such path"))
		return
	}
	route = pattern
	s.mux.ServeHTTP(sw, r)
}

func (s *Server) observe(r *http.Request, route string, status int, d time.Duration) {
	if s.metrics != nil {
		s.metrics.observe(route, status, d)
	}
	level := slog.LevelDebug
	if status >= 500 {
		level = slog.LevelWarn
	}
	s.logger.LogAttrs(r.Context(), level, "http request",
		slog.String("method", r.Method), slog.String("route", route),
		slog.String("path", s.logPath(r.URL.Path)), slog.Int("status", status),
		slog.Duration("duration", d))
}

// withSlashesFolded returns r with each run of slashes in its path folded
// into one: the TypeScript SDK given a base URL that ends in a slash asks
// for /api/v1//shops/…, which the mux would redirect (a POST lost).
func withSlashesFolded(r *http.Request) *http.Request {
	fold := func(p string) string {
		for strings.Contains(p, "//") {
			p = strings.ReplaceAll(p, "//", "/")
		}
		return p
	}
	r2 := new(http.Request)
	*r2 = *r
	u := *r.URL
	u.Path, u.RawPath = fold(u.Path), fold(u.RawPath)
	r2.URL = &u
	return r2
}

// CORS: the API authenticates by key (query or Authorization), never by
// cookie, so any origin may call it from a browser (no credentials), as
// the TypeScript SDK does; the key is what must stay secret.
const (
	corsMethods = "GET, POST, PUT, DELETE"
	corsHeaders = "Authorization, Content-Type"
	corsMaxAge  = "7200" // seconds: Chromium's most
)

// allowCORS sets the CORS headers of a request from a browser (one with an
// Origin) and says whether it is a preflight (OPTIONS asking whether a
// method may be used), which the caller answers with 204 alone. A plain
// OPTIONS goes on to the 405 every route gives it.
func allowCORS(h http.Header, r *http.Request) (preflight bool) {
	if r.Header.Get("Origin") == "" {
		return false
	}
	h.Set("Access-Control-Allow-Origin", "*")
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		h.Set("Access-Control-Allow-Methods", corsMethods)
		h.Set("Access-Control-Allow-Headers", corsHeaders)
		h.Set("Access-Control-Max-Age", corsMaxAge)
		return true
	}
	h.Set("Access-Control-Expose-Headers", "Retry-After")
	return false
}

// isCleanPath reports whether p needs no cleaning: no "//", "/./", "/../"
// and no trailing "/." or "/..". Uncleaned paths are 404s here rather than
// the mux's redirects, which are not JSON.
func isCleanPath(p string) bool {
	return !strings.Contains(p, "//") && !strings.Contains(p, "/./") && !strings.Contains(p, "/../") &&
		!strings.HasSuffix(p, "/.") && !strings.HasSuffix(p, "/..")
}

// sanitizeMethod shortens a method for an error message; net/http has
// already refused methods that are not HTTP tokens.
func sanitizeMethod(m string) string {
	if len(m) > 16 {
		m = m[:16]
	}
	return m
}

// statusWriter remembers the status written.
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status = code
		w.wrote = true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.status = http.StatusOK
		w.wrote = true
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) code() int {
	if !w.wrote {
		return http.StatusOK
	}
	return w.status
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// headerRecorder captures what the mux's own 404/405 handlers write.
type headerRecorder struct {
	header http.Header
	status int
}

func (r *headerRecorder) Header() http.Header { return r.header }
func (r *headerRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}
func (r *headerRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return len(b), nil
}
