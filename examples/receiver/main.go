// Command receiver is a small, complete receiver of Pancake webhooks: it
// verifies the signature of each delivery, drops the ones it has already
// handled (by webhook-id, the same on every attempt of an event) and logs
// the events as JSON lines.
//
//	PANCAKE_WEBHOOK_SECRET=whsec_… go run ./examples/receiver -addr 127.0.0.1:8081
//
// Point a webhook at http://127.0.0.1:8081/webhooks/pancake (a server in
// --dev mode allows http and private addresses). PANCAKE_WEBHOOK_SECRET may
// hold several secrets separated by commas: during a rotation, list the old
// and the new one, and remove the old one when the overlap is over.
//
// The de-duplication set lives in memory, bounded in size and time: a
// restart forgets it, and a receiver with several replicas needs a shared
// store instead (a table with a unique key on the webhook-id).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/pancake-pos/pancake-webhooks/pancake"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "receiver:", err)
		os.Exit(1)
	}
}

// Defaults of the flags.
const (
	defaultAddr     = "127.0.0.1:8081"
	defaultPath     = "/webhooks/pancake"
	defaultDedupMax = 100_000
	// defaultDedupTTL outlasts the server's retry schedule (about 28
	// hours) so that a late retry of a handled event is still dropped.
	defaultDedupTTL = 48 * time.Hour
)

// config is what run needs, from flags and the environment.
type config struct {
	Addr     string
	Path     string
	Secrets  []string
	DedupMax int
	DedupTTL time.Duration
}

// parseConfig reads the flags in args and PANCAKE_WEBHOOK_SECRET through
// getenv. Every secret is checked here, so that a typo fails at start and
// not at the first delivery.
func parseConfig(args []string, getenv func(string) string, output io.Writer) (*config, error) {
	cfg := &config{}
	fs := flag.NewFlagSet("receiver", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.StringVar(&cfg.Addr, "addr", defaultAddr, "address to listen on")
	fs.StringVar(&cfg.Path, "path", defaultPath, "path that receives deliveries")
	fs.IntVar(&cfg.DedupMax, "dedup-max", defaultDedupMax, "how many webhook-ids to remember")
	fs.DurationVar(&cfg.DedupTTL, "dedup-ttl", defaultDedupTTL, "how long to remember a webhook-id")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: PANCAKE_WEBHOOK_SECRET=whsec_…[,whsec_…] receiver [flags]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if cfg.DedupMax < 1 || cfg.DedupTTL <= 0 {
		return nil, errors.New("-dedup-max and -dedup-ttl must be positive")
	}
	if !strings.HasPrefix(cfg.Path, "/") {
		return nil, errors.New("-path must start with /")
	}
	for s := range strings.SplitSeq(getenv("PANCAKE_WEBHOOK_SECRET"), ",") {
		if s = strings.TrimSpace(s); s != "" {
			cfg.Secrets = append(cfg.Secrets, s)
		}
	}
	if len(cfg.Secrets) == 0 {
		return nil, errors.New("PANCAKE_WEBHOOK_SECRET is not set (the webhook's whsec_… secret; several separated by commas)")
	}
	for i, s := range cfg.Secrets {
		if _, err := pancake.Sign(s, "", time.Time{}, nil); err != nil {
			return nil, fmt.Errorf("PANCAKE_WEBHOOK_SECRET, secret %d: %w", i+1, err)
		}
	}
	return cfg, nil
}

// run listens as the flags say and serves until ctx is done.
func run(ctx context.Context, args []string, getenv func(string) string, logOut io.Writer) error {
	cfg, err := parseConfig(args, getenv, logOut)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewJSONHandler(logOut, nil))
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	rc := &receiver{
		Secrets: cfg.Secrets,
		Seen:    newSeenSet(cfg.DedupMax, cfg.DedupTTL, time.Now),
		Logger:  logger,
		HandleFunc: func(ctx context.Context, e *pancake.Envelope) error {
			logger.InfoContext(ctx, "event",
				slog.String("id", e.ID), slog.String("event", string(e.Event)),
				slog.String("shop_id", e.ShopID), slog.Time("created_at", e.CreatedAt),
				slog.Bool("test", e.Test), slog.Int("data_bytes", len(e.Data)))
			return nil
		},
	}
	mux := http.NewServeMux()
	mux.Handle("POST "+cfg.Path, rc)
	logger.Info("listening", slog.String("addr", ln.Addr().String()), slog.String("path", cfg.Path),
		slog.Int("secrets", len(cfg.Secrets)))
	return serve(ctx, ln, mux)
}

// serve serves h on ln until ctx is done, then shuts down gracefully.
func serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	err := srv.Shutdown(shutdownCtx)
	if serveErr := <-errc; !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	return err
}

// receiver handles deliveries: verify, de-duplicate, handle.
type receiver struct {
	Secrets []string
	Seen    *seenSet
	Logger  *slog.Logger
	// HandleFunc handles a new event; an error makes the server retry it.
	HandleFunc func(ctx context.Context, e *pancake.Envelope) error
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, pancake.MaxWebhookBodyBytes))
	if err != nil {
		rc.Logger.Warn("rejected", slog.String("reason", "body too large or unreadable"))
		http.Error(w, "payload too large", http.StatusRequestEntityTooLarge)
		return
	}
	e, err := pancake.Verify(rc.Secrets, r.Header, body, 0)
	if err != nil {
		rc.Logger.Warn("rejected", slog.String("reason", err.Error()))
		http.Error(w, "invalid webhook", http.StatusBadRequest)
		return
	}
	// The signature covers webhook-id, so it can be trusted here.
	id := r.Header.Get(pancake.HeaderWebhookID)
	if !rc.Seen.Add(id) {
		rc.Logger.Info("duplicate", slog.String("webhook_id", id), slog.String("event", string(e.Event)))
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if err := rc.HandleFunc(r.Context(), e); err != nil {
		rc.Seen.Remove(id) // so that the retry is handled
		rc.Logger.Error("handle failed", slog.String("webhook_id", id), slog.String("error", err.Error()))
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
