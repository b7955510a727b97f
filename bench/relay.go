package bench

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	webhooks "github.com/pancake-pos/pancake-webhooks"
	"github.com/pancake-pos/pancake-webhooks/dispatch"
	"github.com/pancake-pos/pancake-webhooks/egress"
)

// Relay is what --relay starts in place of the server: a webhook server
// that keeps nothing. It answers the calls the benchmark makes (creating a
// shop and its webhooks; single and batch publishes) and, for each event
// published, does only the work no webhook server can skip: it decodes the
// request, builds the envelope (webhooks.NewEvent), answers 202, then signs
// the envelope with the server's headers (dispatch.SignedHeaders) and POSTs it through the delivery client
// (package egress) to each webhook of the shop. Nothing is stored, retried
// or recorded, and no API key is checked. Its rates, measured like the
// server's, are the machine's limit for the two HTTP exchanges an event
// costs: what the server would reach if its own work cost nothing.
//
// Deliveries wait in memory, at most queue of them; a publish waits for
// room, so ingest never runs further ahead of the deliveries than that.
//
// With a journal (RelayOptions.Journal) it also does the least a server
// durable at the 202 must do: each accepted event's envelope is appended
// to one file and fsynced, with the others that came in meanwhile, before
// the publish is answered, and each attempt's result is appended after it
// (see journal). Its rates are then the machine's limit for a durable
// server with no index to keep and nothing to read back.
type Relay struct {
	jobs     chan relayJob
	client   *egress.Client
	wg       sync.WaitGroup
	quit     chan struct{} // closed by Close
	once     sync.Once
	closeErr error        // the journal's, set by Close
	failed   atomic.Int64 // attempts that did not get a 2xx
	jrnl     *journal     // nil without RelayOptions.Journal
	// Events and attempt results appended to the journal.
	journaled, results atomic.Int64

	mu    sync.RWMutex
	hooks map[string][]relayHook // by shop
}

type relayHook struct{ url, secret string }

type relayJob struct {
	ev   *webhooks.Event
	hook relayHook
}

// Relay's defaults: the server's bound of attempts in flight to one
// webhook, and ~1.3 GB of 1 KiB events waiting at most.
const (
	DefaultRelayWorkers = 32
	DefaultRelayQueue   = 1 << 20
)

// RelayOptions configures a Relay.
type RelayOptions struct {
	Workers int // deliveries in flight at once
	Queue   int // deliveries waiting at most
	// Journal, if set, is a file to create (it must not exist) that the
	// relay appends each event to, fsynced before the 202, and each
	// attempt's result to.
	Journal string
}

// NewRelay starts a Relay's workers; Close stops them.
func NewRelay(o RelayOptions) (*Relay, error) {
	workers, queue := o.Workers, o.Queue
	if workers < 1 || queue < 1 {
		return nil, errors.New("relay: workers and queue must be positive")
	}
	// Loopback only: the sink is there, and the relay checks no key.
	c, err := egress.NewClient(egress.Config{AllowCIDRs: []netip.Prefix{
		netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}})
	if err != nil {
		return nil, fmt.Errorf("relay: %w", err)
	}
	r := &Relay{jobs: make(chan relayJob, queue), client: c, quit: make(chan struct{}), hooks: map[string][]relayHook{}}
	if o.Journal != "" {
		if r.jrnl, err = openJournal(o.Journal); err != nil {
			return nil, err
		}
	}
	for range workers {
		r.wg.Go(r.work)
	}
	return r, nil
}

// Close stops the workers once they have made the deliveries waiting,
// then closes the journal, returning its first failure to write; every
// call waits for the first and returns the same. A publish still running
// then is refused, or its deliveries may be dropped: stop serving first.
func (r *Relay) Close() error {
	r.once.Do(func() {
		close(r.quit)
		r.wg.Wait()
		if r.jrnl != nil {
			r.closeErr = r.jrnl.close()
		}
	})
	return r.closeErr
}

// Failed is how many attempts did not get a 2xx answer.
func (r *Relay) Failed() int64 { return r.failed.Load() }

// Journaled is how many events and attempt results were appended to the
// journal, and in how many fsyncs (all 0 without one).
func (r *Relay) Journaled() (events, results, syncs int64) {
	if r.jrnl == nil {
		return 0, 0, 0
	}
	return r.journaled.Load(), r.results.Load(), r.jrnl.syncs.Load()
}

func (r *Relay) work() {
	for {
		select {
		case j := <-r.jobs:
			r.deliver(j)
		case <-r.quit:
			for {
				select {
				case j := <-r.jobs:
					r.deliver(j)
				default:
					return
				}
			}
		}
	}
}

func (r *Relay) deliver(j relayJob) {
	now := time.Now()
	did := webhooks.NewID(webhooks.PrefixDelivery, now)
	h, err := dispatch.SignedHeaders([]string{j.hook.secret}, j.ev.ID, did,
		j.ev.ShopID, string(j.ev.Type), now, j.ev.Envelope)
	if err != nil {
		r.failed.Add(1)
		return
	}
	res := r.client.Send(context.Background(), egress.Request{URL: j.hook.url, Header: h, Body: j.ev.Envelope})
	if !res.Success() {
		r.failed.Add(1)
	}
	if r.jrnl != nil {
		line := fmt.Appendf(nil, "{\"delivery\":%q,\"event\":%q,\"status\":%d,\"ms\":%d}\n",
			did, j.ev.ID, res.StatusCode, res.Duration.Milliseconds())
		if r.jrnl.append(line, false) == nil { // fails only once the journal is closed
			r.results.Add(1)
		}
	}
}

// relayPublish is one event of a publish request.
type relayPublish struct {
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
}

func (r *Relay) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, 1<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
		return
	}
	// /api/v1/shops/{shop}/webhooks, …/events, …/events/batch
	parts := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
	shop := ""
	if len(parts) >= 5 && parts[0] == "api" && parts[1] == "v1" && parts[2] == "shops" {
		shop = parts[3]
	}
	switch {
	case req.Method == http.MethodGet && (req.URL.Path == "/readyz" || req.URL.Path == "/healthz"):
		writeRelayJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	case req.Method == http.MethodPost && req.URL.Path == "/api/v1/admin/shops":
		var in struct {
			ShopID string `json:"shop_id"`
		}
		if json.Unmarshal(body, &in) != nil || in.ShopID == "" {
			http.Error(w, "want {shop_id}", http.StatusBadRequest)
			return
		}
		writeRelayJSON(w, http.StatusCreated, map[string]string{"shop_id": in.ShopID, "api_key": "relay"})
	case req.Method == http.MethodPost && shop != "" && len(parts) == 5 && parts[4] == "webhooks":
		r.createWebhook(w, shop, body)
	case req.Method == http.MethodPost && shop != "" && len(parts) == 5 && parts[4] == "events":
		var in relayPublish
		if err := json.Unmarshal(body, &in); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		ev, err := newRelayEvent(shop, in)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := r.journalEvents(ev); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		res, err := r.queue(req.Context(), ev)
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		writeRelayJSON(w, http.StatusAccepted, res)
	case req.Method == http.MethodPost && shop != "" && len(parts) == 6 && parts[4] == "events" && parts[5] == "batch":
		var in struct {
			Events []relayPublish `json:"events"`
		}
		if err := json.Unmarshal(body, &in); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		evs := make([]*webhooks.Event, len(in.Events))
		for i, e := range in.Events {
			if evs[i], err = newRelayEvent(shop, e); err != nil {
				http.Error(w, fmt.Sprintf("events[%d]: %v", i, err), http.StatusBadRequest)
				return
			}
		}
		if err := r.journalEvents(evs...); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		out := make([]webhooks.PublishResult, len(evs))
		for i, ev := range evs {
			if out[i], err = r.queue(req.Context(), ev); err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		writeRelayJSON(w, http.StatusAccepted, map[string]any{"results": out})
	default:
		http.NotFound(w, req)
	}
}

func (r *Relay) createWebhook(w http.ResponseWriter, shop string, body []byte) {
	var in struct {
		URL string `json:"url"`
	}
	if json.Unmarshal(body, &in) != nil {
		http.Error(w, "want {url}", http.StatusBadRequest)
		return
	}
	if u, err := url.Parse(in.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || !isLoopbackHost(u.Hostname()) {
		http.Error(w, "the relay sends to loopback only: want an http(s)://127.0.0.1 url", http.StatusBadRequest)
		return
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	h := relayHook{url: in.URL, secret: "whsec_" + base64.StdEncoding.EncodeToString(key)}
	r.mu.Lock()
	r.hooks[shop] = append(r.hooks[shop], h)
	r.mu.Unlock()
	writeRelayJSON(w, http.StatusCreated, map[string]string{
		"id": webhooks.NewID(webhooks.PrefixWebhook, time.Now()), "url": h.url, "secret_key": h.secret})
}

// newRelayEvent builds the event of e, with its envelope.
func newRelayEvent(shop string, e relayPublish) (*webhooks.Event, error) {
	if e.Event == "" || len(e.Data) == 0 || e.Data[0] != '{' {
		return nil, errors.New(`want {"event": "...", "data": {...}}`)
	}
	return webhooks.NewEvent(shop, webhooks.EventType(e.Event), e.Data, "", false, time.Now())
}

// journalEvents appends the envelopes of evs to the journal, a line each,
// and returns once they are on disk; without a journal it does nothing.
func (r *Relay) journalEvents(evs ...*webhooks.Event) error {
	if r.jrnl == nil {
		return nil
	}
	n := 0
	for _, ev := range evs {
		n += len(ev.Envelope) + 1
	}
	b := make([]byte, 0, n)
	for _, ev := range evs {
		b = append(append(b, ev.Envelope...), '\n')
	}
	if err := r.jrnl.append(b, true); err != nil {
		return err
	}
	r.journaled.Add(int64(len(evs)))
	return nil
}

// queue queues a delivery of ev to each of its shop's webhooks, waiting
// for room.
func (r *Relay) queue(ctx context.Context, ev *webhooks.Event) (webhooks.PublishResult, error) {
	r.mu.RLock()
	hooks := r.hooks[ev.ShopID]
	r.mu.RUnlock()
	for _, h := range hooks {
		select {
		case r.jobs <- relayJob{ev, h}:
		case <-ctx.Done():
			return webhooks.PublishResult{}, ctx.Err()
		case <-r.quit:
			return webhooks.PublishResult{}, errors.New("relay: stopped")
		}
	}
	return webhooks.PublishResult{EventID: ev.ID, Deliveries: len(hooks)}, nil
}

func writeRelayJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// ServeRelay serves a Relay on addr (loopback only) until ctx ends, then
// stops accepting, lets requests in flight finish (at most 10 s) and
// makes the deliveries waiting. logf receives a line when it is ready.
func ServeRelay(ctx context.Context, addr string, o RelayOptions, logf func(string, ...any)) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || !isLoopbackHost(host) {
		return fmt.Errorf("relay: --addr must be a loopback host:port, got %q", addr)
	}
	r, err := NewRelay(o)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		_ = r.Close()
		return fmt.Errorf("relay: %w", err)
	}
	srv := &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	what := "it stores nothing"
	if o.Journal != "" {
		what = "it journals to " + o.Journal
	}
	logf("relay: serving on %s (%d workers, at most %d deliveries waiting); %s", ln.Addr(), o.Workers, o.Queue, what)
	select {
	case err = <-served:
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err = srv.Shutdown(sctx); err != nil {
			_ = srv.Close() // publishes still waiting for room are refused below
		}
		cancel()
		<-served
	}
	jerr := r.Close()
	if o.Journal != "" {
		ev, res, syncs := r.Journaled()
		logf("relay: journaled %d events and %d attempt results in %d fsyncs", ev, res, syncs)
	}
	logf("relay: stopped; %d attempts failed", r.Failed())
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return errors.Join(err, jerr)
}
