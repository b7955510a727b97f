package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"golang.org/x/time/rate"

	webhooks "github.com/pancake-pos/pancake-webhooks"
	"github.com/pancake-pos/pancake-webhooks/dispatch"
	"github.com/pancake-pos/pancake-webhooks/egress"
	"github.com/pancake-pos/pancake-webhooks/httpapi"
	"github.com/pancake-pos/pancake-webhooks/store"
)

// ServeConfig is everything `serve` can be told, by flag or environment.
type ServeConfig struct {
	Addr                  string
	DB                    string
	AdminToken            string
	AllowPrivateNetworks  bool
	AllowHTTP             bool
	AllowCIDRs            []string
	Dev                   bool
	LogLevel              string
	LogFormat             string
	MaxWebhooksPerShop    int
	SecretOverlap         time.Duration
	MaxBodyBytes          int64
	RateLimit             float64
	RateBurst             int
	PublishRateLimit      float64
	PublishRateBurst      int
	AttemptTimeout        time.Duration
	RetrySchedule         []time.Duration
	Workers               int
	MaxInFlightPerWebhook int
	MaxInFlightPerShop    int
	LeaseFor              time.Duration
	PollInterval          time.Duration
	Retention             time.Duration
	ShutdownTimeout       time.Duration
	DrainDelay            time.Duration
	DebugAddr             string
}

// serveGCPercent is serve's GOGC when the environment sets none. The
// collector ran at ~8% of the server's CPU samples at the default 100; at
// 300, single publishes went from 0.12–0.13 to 0.14–0.16 × raw (alternating
// runs) and batch ingest from 0.65 to 0.89 × raw (one run each), for 7–16 MB
// more peak RSS (BENCHMARKS.md).
const serveGCPercent = 300

// minAdminToken is the admin token length below which serve warns.
const minAdminToken = 16

func newServeCmd() *cobra.Command {
	var cfg ServeConfig
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve the API and deliver webhooks",
		Long: `Serve the HTTP API and run the delivery engine.

Every flag but --dev can also be set by an environment variable:
--allow-http is PANCAKE_ALLOW_HTTP, --db is PANCAKE_DB, and so on. A flag
given on the command line wins over its variable.

Go's garbage collector runs at GOGC=300 (less CPU per delivered event, a
little more memory) unless the GOGC environment variable is set; GOMEMLIMIT
is honoured as usual.`,
		Example: `  # Try it: a throw-away database, a shop "demo" and its key printed
  pancake-webhooks serve --dev

  # Production on the embedded database
  PANCAKE_ADMIN_TOKEN=$(openssl rand -hex 32) pancake-webhooks serve --addr :8080 --db sqlite:/var/lib/pancake/webhooks.db

  # On PostgreSQL
  pancake-webhooks serve --db postgres://pancake@db.internal/webhooks`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, set := os.LookupEnv("PANCAKE_DEV"); set {
				// --dev has no variable, so that one left in a production
				// environment cannot open private networks; a server
				// started as if it did not exist misled its operator.
				return usageErr("PANCAKE_DEV is set, but development mode is asked for with --dev only: unset it, or pass --dev")
			}
			if cfg.Dev && cmd.Flags().Changed("db") {
				// --dev's database is a new temporary file each time;
				// one named beside it was ignored without a word.
				return usageErr("--dev runs on a throw-away database and does not use --db (or PANCAKE_DB): drop one of the two")
			}
			if _, set := os.LookupEnv("GOGC"); !set {
				debug.SetGCPercent(serveGCPercent)
			}
			m := NewMain(cfg, cmd.OutOrStdout(), cmd.ErrOrStderr())
			defer m.Close()
			if err := m.Run(cmd.Context()); err != nil {
				return err
			}
			// What the standard library logs on its own (net/http's
			// transport: a receiver's bytes after its answer) joins the
			// server's log, at warn, instead of plain text among its lines.
			log.SetFlags(0)
			log.SetOutput(stdlibLog{m.Logger})
			<-cmd.Context().Done()
			return m.Shutdown()
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Addr, "addr", "127.0.0.1:8080", "address to listen on")
	f.StringVar(&cfg.DB, "db", "sqlite:pancake-webhooks.db", "database: sqlite:FILE or a postgres:// URL")
	f.StringVar(&cfg.AdminToken, "admin-token", "", "bearer token of the admin API (none: admin API off)")
	f.BoolVar(&cfg.AllowPrivateNetworks, "allow-private-networks", false, "allow deliveries to loopback and private addresses (development)")
	f.BoolVar(&cfg.AllowHTTP, "allow-http", false, "allow plain http:// webhook URLs and send to them (development)")
	f.StringSliceVar(&cfg.AllowCIDRs, "allow-cidr", nil, "allow deliveries to these otherwise refused ranges (comma-separated CIDRs)")
	f.BoolVar(&cfg.Dev, "dev", false, "development mode: a throw-away SQLite file, a shop \"demo\" whose key is printed, private networks and http allowed")
	f.StringVar(&cfg.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.StringVar(&cfg.LogFormat, "log-format", "json", "log format: json or text")
	f.IntVar(&cfg.MaxWebhooksPerShop, "max-webhooks-per-shop", webhooks.DefaultMaxWebhooks, "most webhooks a shop may have")
	f.DurationVar(&cfg.SecretOverlap, "secret-overlap", webhooks.DefaultSecretOverlap, "how long the previous secret still signs after a rotation (0: not at all, the old secret stops at once)")
	f.Int64Var(&cfg.MaxBodyBytes, "max-body-bytes", 256<<10, "largest publish body accepted")
	f.Float64Var(&cfg.RateLimit, "rate-limit", 100, "requests per second per API key on the management endpoints (0: off)")
	f.IntVar(&cfg.RateBurst, "rate-burst", 200, "burst of --rate-limit")
	f.Float64Var(&cfg.PublishRateLimit, "publish-rate-limit", 0, "publish requests per second per API key (0: off)")
	f.IntVar(&cfg.PublishRateBurst, "publish-rate-burst", 0, "burst of --publish-rate-limit (0: twice the rate)")
	f.DurationVar(&cfg.AttemptTimeout, "attempt-timeout", dispatch.DefaultAttemptTimeout, "total timeout of one delivery attempt")
	f.DurationSliceVar(&cfg.RetrySchedule, "retry-schedule", dispatch.DefaultSchedule, "delays before each retry (comma-separated); its length + 1 is the number of attempts")
	f.IntVar(&cfg.Workers, "workers", dispatch.DefaultWorkers, "delivery attempts in flight to one shop's webhooks at once; an eighth more are kept for the other shops")
	f.IntVar(&cfg.MaxInFlightPerWebhook, "max-in-flight-per-webhook", dispatch.DefaultMaxInFlightPerWebhook, "delivery attempts in flight to one webhook at once")
	f.IntVar(&cfg.MaxInFlightPerShop, "max-in-flight-per-shop", 0, "a shop's share of the workers while other shops' deliveries wait: one holding more starts no attempt until it is back under it (0: a quarter of --workers)")
	f.DurationVar(&cfg.LeaseFor, "lease", 0, "how long a claimed delivery stays taken before another worker may take it (0: sized from the timeout)")
	f.DurationVar(&cfg.PollInterval, "poll-interval", dispatch.DefaultPollInterval, "how often the queue is polled when nothing wakes the engine")
	f.DurationVar(&cfg.Retention, "retention", dispatch.DefaultRetention, "how long finished deliveries are kept, 24h at least (0: the default)")
	f.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "how long a graceful shutdown may take (attempts still in flight then are cut and sent again later); on SQLite also how long a starting server waits for one still stopping")
	f.DurationVar(&cfg.DrainDelay, "drain-delay", 0, "on SIGTERM, how long /readyz answers 503 while everything is still served, before the graceful stop begins: the time a load balancer takes to stop sending here (0: stop at once)")
	f.StringVar(&cfg.DebugAddr, "debug-addr", "", "serve Go's pprof profiles on this address (keep it on loopback; off by default)")
	noEnv(f, "dev")
	return cmd
}

// Main wires the service together: store, delivery engine, HTTP API.
type Main struct {
	Config ServeConfig
	Logger *slog.Logger
	// Addr is the address the API listens on, once Run returned.
	Addr string

	stdout, stderr io.Writer
	db             *store.DB
	client         *egress.Client
	dispatcher     *dispatch.Dispatcher
	maintainer     *dispatch.Maintainer
	api            *httpapi.Server
	server         *http.Server
	serveErr       chan error
	devDir         string
	debug          *http.Server
	debugDone      chan struct{} // closed when debug's Serve has returned
}

// minRetention is the shortest --retention.
const minRetention = 24 * time.Hour

// NewMain returns a Main for cfg that reports to stdout and logs to stderr.
func NewMain(cfg ServeConfig, stdout, stderr io.Writer) *Main {
	return &Main{Config: cfg, stdout: stdout, stderr: stderr}
}

// Run opens the database, starts the engine and the HTTP server, and
// returns once the service is listening.
func (m *Main) Run(ctx context.Context) error {
	cfg := &m.Config
	logger, err := newLogger(m.stderr, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return usageErr("%v", err)
	}
	m.Logger = logger
	if cfg.Dev {
		dir, err := os.MkdirTemp("", "pancake-webhooks-dev-")
		if err != nil {
			return fmt.Errorf("dev: make a temporary directory: %w", err)
		}
		m.devDir = dir
		cfg.DB = "sqlite:" + filepath.Join(dir, "dev.db")
		cfg.AllowPrivateNetworks, cfg.AllowHTTP = true, true
	}
	var cidrs []netip.Prefix
	for _, c := range cfg.AllowCIDRs {
		p, err := netip.ParsePrefix(strings.TrimSpace(c))
		if err != nil {
			return usageErr("--allow-cidr (or PANCAKE_ALLOW_CIDR) %q: %v", c, err)
		}
		cidrs = append(cidrs, p)
	}
	// A publish's id is kept, and health counts attempts, for 24 hours:
	// a shorter retention deleted them sooner (a repeated id queued
	// again; a webhook failing every attempt showed 100 %).
	if cfg.Retention < 0 || cfg.Retention > 0 && cfg.Retention < minRetention {
		return usageErr("--retention (or PANCAKE_RETENTION) must be at least %s: publish ids are kept and health counts the attempts of the last 24 hours", minRetention)
	}
	if err := checkServeConfig(cfg); err != nil {
		return err
	}
	// 0 is no overlap, as an operator rotating after a leak means it.
	overlap := cfg.SecretOverlap
	switch {
	case overlap < 0:
		return usageErr("--secret-overlap (or PANCAKE_SECRET_OVERLAP) cannot be negative")
	case overlap == 0:
		overlap = httpapi.NoSecretOverlap
	}
	if cfg.AdminToken != "" && len(cfg.AdminToken) < minAdminToken {
		// The contract sets no length; a deployment (or a test harness)
		// that chose a short token still starts, warned. The token itself
		// is never logged.
		logger.Warn("--admin-token is short and easy to guess: use a long random one (openssl rand -hex 32)",
			"length", len(cfg.AdminToken), "recommended_min", minAdminToken)
	}

	// A restart may start this server while the old one still stops: on
	// SQLite, wait for it as long as a graceful stop may take.
	reg := prometheus.NewRegistry()
	m.db, err = store.Open(ctx, cfg.DB, store.Options{Logger: logger, Server: true, LockWait: cfg.ShutdownTimeout, DatabaseClock: true,
		Registerer: reg})
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	m.client, err = egress.NewClient(egress.Config{
		Timeout:              cfg.AttemptTimeout,
		AllowPrivateNetworks: cfg.AllowPrivateNetworks,
		AllowCIDRs:           cidrs,
		RequireHTTPS:         !cfg.AllowHTTP,
		UserAgent:            "PancakeWebhooks/" + Version(),
		MaxIdleConnsPerHost:  cfg.MaxInFlightPerWebhook * 2,
	})
	if err != nil {
		return usageErr("%v", err)
	}

	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "pancake_build_info",
			Help:        "Always 1: the running build's version and Go version, as labels.",
			ConstLabels: prometheus.Labels{"version": Version(), "go_version": runtime.Version()},
		}, func() float64 { return 1 }))
	metrics := dispatch.NewMetrics(reg, m.db)
	m.dispatcher, err = dispatch.NewDispatcher(logger, m.db.Now, m.db, m.client, metrics, &dispatch.Config{
		Workers:               cfg.Workers,
		MaxInFlightPerWebhook: cfg.MaxInFlightPerWebhook,
		MaxInFlightPerShop:    cfg.MaxInFlightPerShop,
		LeaseFor:              cfg.LeaseFor,
		PollInterval:          cfg.PollInterval,
		AttemptTimeout:        cfg.AttemptTimeout,
		Schedule:              cfg.RetrySchedule,
		Unavailable:           store.Unavailable,
	})
	if err != nil {
		return usageErr("%v", err)
	}
	m.maintainer, err = dispatch.NewMaintainer(logger, m.db.Now, m.db, &dispatch.MaintenanceConfig{Retention: cfg.Retention, IsLeader: m.db.IsLeader})
	if err != nil {
		return usageErr("%v", err)
	}
	rl := rate.Limit(cfg.RateLimit)
	if cfg.RateLimit <= 0 {
		rl = rate.Inf
	}
	m.api, err = httpapi.NewServer(httpapi.Config{
		Logger:      logger,
		Now:         m.db.Now,
		Shops:       m.db,
		Webhooks:    m.db,
		Deliveries:  m.db,
		Events:      m.db,
		Attempter:   m.dispatcher,
		Ready:       m.db.Ready,
		Unavailable: store.Unavailable,
		Registerer:  reg,
		// A failed read leaves its gauges out (and is logged) rather than
		// answering a 500 that shows the error to whoever scrapes.
		Metrics: promhttp.HandlerFor(reg, promhttp.HandlerOpts{
			ErrorHandling: promhttp.ContinueOnError,
			ErrorLog:      slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		}),
		AdminToken:         cfg.AdminToken,
		URLPolicy:          webhooks.URLPolicy{AllowHTTP: cfg.AllowHTTP},
		MaxWebhooksPerShop: cfg.MaxWebhooksPerShop,
		SecretOverlap:      overlap,
		MaxBodyBytes:       cfg.MaxBodyBytes,
		RateLimit:          rl,
		RateBurst:          cfg.RateBurst,
		PublishRateLimit:   rate.Limit(cfg.PublishRateLimit),
		PublishRateBurst:   cfg.PublishRateBurst,
		Version:            Version(),
	})
	if err != nil {
		return usageErr("%v", err)
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	m.Addr = ln.Addr().String()
	m.db.OnQueued(m.dispatcher.Queued)
	m.db.OnWebhookStopped(m.dispatcher.Stopped)
	m.db.OnWebhookChanged(m.dispatcher.Changed)
	m.db.OnKeysRevoked(m.api.ForgetKeys)
	m.db.SetHandoff(m.dispatcher)
	if err := m.dispatcher.Start(ctx); err != nil {
		ln.Close()
		return err
	}
	if err := m.maintainer.Start(ctx); err != nil {
		ln.Close()
		return err
	}
	m.server = &http.Server{
		Handler:           m.api,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      cfg.AttemptTimeout + httpapi.DefaultSyncAttemptWait + 30*time.Second, // a test send may wait for a slot
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	m.serveErr = make(chan error, 1)
	// The goroutine gets the server, not m: a Run that fails after this
	// point (--debug-addr taken) is followed by a Close that sets m.server
	// to nil, maybe before the goroutine has begun.
	go func(srv *http.Server, errc chan<- error) { errc <- srv.Serve(ln) }(m.server, m.serveErr)
	if cfg.DebugAddr != "" {
		if err := m.startDebug(cfg.DebugAddr); err != nil {
			return err
		}
	}
	logger.Info("serving", "addr", m.Addr, "db", m.db.Dialect(), "version", Version(),
		"admin_api", cfg.AdminToken != "", "allow_private_networks", cfg.AllowPrivateNetworks, "allow_http", cfg.AllowHTTP)
	if cfg.Dev {
		return m.devSetup(ctx)
	}
	return nil
}

// startDebug serves net/http/pprof on its own listener.
func (m *Main) startDebug(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on --debug-addr %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	m.debug = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	m.debugDone = make(chan struct{})
	go func(srv *http.Server, done chan<- struct{}) {
		defer close(done)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			m.Logger.Warn("pprof server stopped", "error", err)
		}
	}(m.debug, m.debugDone)
	m.Logger.Info("serving pprof", "addr", ln.Addr().String())
	if a, ok := ln.Addr().(*net.TCPAddr); ok && !a.IP.IsLoopback() {
		m.Logger.Warn("--debug-addr is not on loopback: whoever reaches it reads the process's profiles and stacks, with no key asked", "addr", ln.Addr().String())
	}
	return nil
}

// maxDrainDelay bounds --drain-delay.
const maxDrainDelay = 10 * time.Minute

// maxStdlibLog bounds a line the standard library logs: net/http's
// "Unsolicited response" quotes up to 4 KiB of what a receiver sent after
// its answer, once an attempt (observability audit).
const maxStdlibLog = 300

// stdlibLog takes the standard library's log lines into the server's log,
// at warn, each cut to maxStdlibLog bytes.
type stdlibLog struct{ l *slog.Logger }

func (w stdlibLog) Write(p []byte) (int, error) {
	msg := strings.TrimRight(string(p), "\n")
	if len(msg) > maxStdlibLog {
		msg = strings.ToValidUTF8(msg[:maxStdlibLog], "") + " …(cut)"
	}
	w.l.Warn(msg)
	return len(p), nil
}

// checkServeConfig refuses, by flag and variable name, the settings the
// engine or the API would refuse, before the database is opened (and a
// SQLite file made, or a schema migrated, for a server that never starts):
// their own checks name Go fields. --poll-interval -1s polled in a busy loop.
func checkServeConfig(cfg *ServeConfig) error {
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{
		{"poll-interval", cfg.PollInterval},
		{"lease", cfg.LeaseFor},
		{"attempt-timeout", cfg.AttemptTimeout},
		{"shutdown-timeout", cfg.ShutdownTimeout},
		{"drain-delay", cfg.DrainDelay},
	} {
		if d.v < 0 {
			return usageErr("%s cannot be negative", flagAndEnv(d.flag))
		}
	}
	for _, n := range []struct {
		flag string
		v    int64
	}{
		{"workers", int64(cfg.Workers)},
		{"max-in-flight-per-webhook", int64(cfg.MaxInFlightPerWebhook)},
		{"max-in-flight-per-shop", int64(cfg.MaxInFlightPerShop)},
		{"max-webhooks-per-shop", int64(cfg.MaxWebhooksPerShop)},
		{"max-body-bytes", cfg.MaxBodyBytes},
		{"rate-burst", int64(cfg.RateBurst)},
		{"publish-rate-burst", int64(cfg.PublishRateBurst)},
	} {
		if n.v < 0 {
			return usageErr("%s cannot be negative", flagAndEnv(n.flag))
		}
	}
	for _, n := range []struct {
		flag string
		v    int
	}{
		{"workers", cfg.Workers},
		{"max-in-flight-per-webhook", cfg.MaxInFlightPerWebhook},
		{"max-in-flight-per-shop", cfg.MaxInFlightPerShop},
	} {
		if n.v > dispatch.MaxWorkers {
			return usageErr("%s cannot be more than %d", flagAndEnv(n.flag), dispatch.MaxWorkers)
		}
	}
	if cfg.DrainDelay > maxDrainDelay {
		return usageErr("%s cannot be more than %s", flagAndEnv("drain-delay"), maxDrainDelay)
	}
	if cfg.AttemptTimeout > dispatch.MaxAttemptTimeout {
		return usageErr("%s cannot be more than %s", flagAndEnv("attempt-timeout"), dispatch.MaxAttemptTimeout)
	}
	for _, r := range []struct {
		flag string
		v    float64
	}{
		{"rate-limit", cfg.RateLimit},
		{"publish-rate-limit", cfg.PublishRateLimit},
	} {
		// A negative rate read as "off" (as 0 is) hid a typo.
		if r.v < 0 || math.IsNaN(r.v) {
			return usageErr("%s must be a number of requests per second, 0 or more (0: off)", flagAndEnv(r.flag))
		}
	}
	for i, d := range cfg.RetrySchedule {
		if d <= 0 {
			return usageErr("%s: delay %d (%s) must be positive", flagAndEnv("retry-schedule"), i+1, d)
		}
	}
	if cfg.LeaseFor > 0 && cfg.LeaseFor <= cmp.Or(cfg.AttemptTimeout, dispatch.DefaultAttemptTimeout) {
		return usageErr("%s must be longer than --attempt-timeout (%s), or a slow attempt would outlive its claim and be sent twice",
			flagAndEnv("lease"), cmp.Or(cfg.AttemptTimeout, dispatch.DefaultAttemptTimeout))
	}
	for _, a := range []struct{ flag, v string }{{"addr", cfg.Addr}, {"debug-addr", cfg.DebugAddr}} {
		if a.v == "" && a.flag == "debug-addr" {
			continue
		}
		if _, _, err := net.SplitHostPort(a.v); err != nil {
			return usageErr("%s %q: want host:port, such as 127.0.0.1:8080 or :8080: %v", flagAndEnv(a.flag), a.v, err)
		}
	}
	return nil
}

// flagAndEnv names a serve flag and its environment variable.
func flagAndEnv(flag string) string {
	return "--" + flag + " (or " + defaultEnvName(flag) + ")"
}

// devSetup creates the shop "demo" and prints its key and a curl line.
func (m *Main) devSetup(ctx context.Context) error {
	now := time.Now()
	key, k := webhooks.NewAPIKey("demo", now)
	if err := m.db.CreateShop(ctx, &webhooks.Shop{ID: "demo", Name: "Demo shop", CreatedAt: now}, k); err != nil {
		return fmt.Errorf("dev: create shop demo: %w", err)
	}
	base := "http://" + m.Addr + "/api/v1"
	fmt.Fprintf(m.stdout, `Pancake Webhooks %s, development mode (throw-away database %s)
Shop:    demo
API key: %s

Try it:
  curl -s %s/shops/demo/webhooks -H 'Authorization: Bearer %s'
`, Version(), strings.TrimPrefix(m.Config.DB, "sqlite:"), key, base, key)
	return nil
}

// Shutdown stops gracefully within the shutdown timeout: no new requests,
// in-flight requests and attempts finish, queued work stays queued. What
// is still in flight when the time is up is cut: requests are closed, and
// attempts' deliveries are given back to be sent again.
func (m *Main) Shutdown() error {
	if m.server == nil {
		return nil
	}
	if d := m.Config.DrainDelay; d > 0 && m.api != nil {
		// A load balancer keeps sending for a moment after the signal:
		// /readyz says 503 first, while requests are still served (a
		// second SIGTERM ends the wait, and the process, at once).
		m.api.Drain()
		m.Logger.Info("draining: /readyz answers 503 while requests are still served", "drain_delay", d.String())
		time.Sleep(d)
	}
	m.Logger.Info("shutting down")
	ctx, cancel := context.WithTimeout(context.Background(), m.Config.ShutdownTimeout)
	defer cancel()
	var err error
	if m.server.Shutdown(ctx) != nil {
		// Time is up: close the connections still active, which ends
		// their requests (a test send's attempt with them). That is the
		// stop asked for, within its bound, not a failure: the exit
		// status stays 0 (it was 1, and systemd marked the unit failed).
		m.Logger.Warn("shutdown timeout: closing the connections of the requests still in flight",
			"shutdown_timeout", m.Config.ShutdownTimeout.String())
		m.server.Close()
	}
	if serr := <-m.serveErr; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		err = fmt.Errorf("http server: %w", serr)
	}
	m.server = nil
	if m.dispatcher != nil {
		m.dispatcher.Shutdown(ctx)
	}
	return err
}

// Close stops everything Run started and releases the database.
func (m *Main) Close() error {
	var errs []error
	if m.server != nil {
		m.server.Close()
		m.server = nil
	}
	if m.debug != nil {
		m.debug.Close()
		<-m.debugDone
		m.debug = nil
	}
	if m.maintainer != nil {
		m.maintainer.Stop()
	}
	if m.dispatcher != nil {
		m.dispatcher.Stop()
	}
	if m.api != nil {
		m.api.Close()
	}
	if m.client != nil {
		m.client.CloseIdleConnections()
	}
	if m.db != nil {
		if err := m.db.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close database: %w", err))
		}
		m.db = nil
	}
	if m.devDir != "" {
		os.RemoveAll(m.devDir)
		m.devDir = ""
	}
	return errors.Join(errs...)
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level (or PANCAKE_LOG_LEVEL) %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("--log-format (or PANCAKE_LOG_FORMAT) %q: use json or text", format)
	}
}
