// Package dispatch is the delivery engine: it claims due deliveries from the
// store with a lease, sends them through the egress client outside any
// transaction, and records each attempt (and the next one, if any) in
// batches. It also makes the API's synchronous attempts (test sends and
// manual retries) and runs the housekeeping (retention, auto-disable).
package dispatch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	webhooks "github.com/pancake-pos/pancake-webhooks"
	"github.com/pancake-pos/pancake-webhooks/egress"
)

// Defaults of Config.
const (
	DefaultWorkers               = 256
	DefaultMaxInFlightPerWebhook = 32
	DefaultClaimBatch            = 64
	DefaultPollInterval          = time.Second
	DefaultAttemptTimeout        = 15 * time.Second
	DefaultMaxRetryAfter         = time.Hour
	DefaultJitter                = 0.2
	DefaultRecordBatch           = 256
	DefaultRecordWait            = 10 * time.Millisecond
)

// Bounds of Config: more workers (or in flight) than MaxWorkers overflowed
// the pool's size (a panic) or took gigabytes; an AttemptTimeout beyond
// MaxAttemptTimeout overflowed the default lease, which then ran out at
// once.
const (
	MaxWorkers        = 100_000
	MaxAttemptTimeout = time.Hour
)

// DefaultSchedule is the contract's retry schedule: the delays before
// attempts 2 to 8.
var DefaultSchedule = []time.Duration{
	5 * time.Second, 5 * time.Minute, 30 * time.Minute, 2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour,
}

// Config tunes the dispatcher. Zero values take the documented defaults.
type Config struct {
	// Workers bounds the attempts in flight to one shop's webhooks; default
	// 256. An eighth more (288 in all) serve the other shops while one
	// has Workers in flight.
	Workers int
	// MaxInFlightPerWebhook bounds the attempts in flight to one webhook,
	// so a slow endpoint can't take every worker; default 32. It also caps
	// one webhook's delivery rate at about the bound divided by its
	// receiver's response time: 32 in flight to a receiver answering in
	// 20 ms made ~1,400 deliveries/s (10 made ~460/s). A webhook not sent
	// to lately starts with 4 in flight, and each success lets it have one
	// more, up to the bound (a slow start, as TCP's); after 5 failed
	// attempts in a row it gets at most 4 until one succeeds.
	MaxInFlightPerWebhook int
	// MaxInFlightPerShop bounds the attempts in flight to all of one
	// shop's webhooks together while another shop's deliveries wait for a
	// worker; default a quarter of Workers. A shop alone may have Workers
	// in flight; an eighth more are kept for the other shops. Without
	// them, a shop whose many endpoints hang (each at 4 attempts, 15 s
	// each) or answer slowly took every worker, and every other shop's
	// deliveries waited minutes behind them.
	MaxInFlightPerShop int
	// ClaimBatch is the most deliveries one claim takes for free workers;
	// default 64. A claim also takes what webhooks at their bound need
	// claimed ahead, up to 4 × ClaimBatch in all.
	ClaimBatch int
	// LeaseFor is how long a claimed delivery stays taken before another
	// worker may take it again; default: long enough for the claimed batch
	// to be sent at the per-webhook bound with every attempt timing out.
	LeaseFor time.Duration
	// PollInterval is how often the queue is polled when nothing woke the
	// dispatcher; default 1s.
	PollInterval time.Duration
	// AttemptTimeout is the egress client's total timeout, used to size the
	// lease; default 15s.
	AttemptTimeout time.Duration
	// Schedule is the delays before each retry; default DefaultSchedule.
	// Its length + 1 is the number of attempts.
	Schedule []time.Duration
	// Jitter spreads each delay by ± this fraction; default 0.2. Negative: none.
	Jitter float64
	// MaxRetryAfter caps a receiver's Retry-After; default 1h.
	MaxRetryAfter time.Duration
	// RecordBatch is the most attempts recorded in one commit; default 256.
	RecordBatch int
	// RecordWait is how long the recorder waits, after a result that came
	// within RecordWait of its last batch, for more to record in the same
	// commit (up to RecordBatch); default 10ms; negative: never. A result
	// after a quiet spell is recorded at once. Each commit of results
	// writes the same few index and counter pages again, so when results
	// trickle in, one a commit, most of what it writes is those pages.
	RecordWait time.Duration
	// OnRecordFunc, when set, is called after each batch of attempts is
	// committed (or given up on, err then saying why: some of the batch may
	// have been written one by one), from the recorder goroutine; it must
	// not keep results.
	OnRecordFunc func(results []webhooks.AttemptResult, err error)
	// Unavailable, when set, says an error of the store is the database's
	// passing unavailability (store.Unavailable): a result it refuses for
	// that reason is kept and written later, even when the database still
	// answers reads (SQLite with its disk full).
	Unavailable func(error) bool
}

func (c *Config) withDefaults() Config {
	out := *c
	out.Workers = cmp.Or(c.Workers, DefaultWorkers)
	out.MaxInFlightPerWebhook = cmp.Or(c.MaxInFlightPerWebhook, DefaultMaxInFlightPerWebhook)
	out.MaxInFlightPerShop = min(cmp.Or(c.MaxInFlightPerShop, max(out.Workers/4, 1)), out.Workers)
	out.ClaimBatch = cmp.Or(c.ClaimBatch, DefaultClaimBatch)
	out.PollInterval = cmp.Or(c.PollInterval, DefaultPollInterval)
	out.AttemptTimeout = cmp.Or(c.AttemptTimeout, DefaultAttemptTimeout)
	if out.Schedule == nil {
		out.Schedule = DefaultSchedule
	}
	if out.Jitter == 0 {
		out.Jitter = DefaultJitter
	} else if out.Jitter < 0 {
		out.Jitter = 0
	}
	out.MaxRetryAfter = cmp.Or(c.MaxRetryAfter, DefaultMaxRetryAfter)
	out.RecordBatch = cmp.Or(c.RecordBatch, DefaultRecordBatch)
	out.RecordWait = cmp.Or(c.RecordWait, DefaultRecordWait)
	if out.LeaseFor == 0 {
		// A claimed delivery may wait behind a webhook's backlog (up to one
		// claim batch plus the bound) before it is sent. A fast webhook
		// keeps more claimed ahead (see ahead), sized to be sent within a
		// few claims; if it turns slow, what is not sent before the lease
		// ends is left to be claimed again.
		rounds := (out.ClaimBatch+out.MaxInFlightPerWebhook)/out.MaxInFlightPerWebhook + 1
		out.LeaseFor = time.Duration(rounds)*out.AttemptTimeout + 30*time.Second
	}
	return out
}

func (c *Config) validate() error {
	switch {
	case c.Workers < 0:
		return errors.New("Workers cannot be less than zero")
	case c.MaxInFlightPerWebhook < 0:
		return errors.New("MaxInFlightPerWebhook cannot be less than zero")
	case c.MaxInFlightPerShop < 0:
		return errors.New("MaxInFlightPerShop cannot be less than zero")
	case c.Workers > MaxWorkers || c.MaxInFlightPerWebhook > MaxWorkers || c.MaxInFlightPerShop > MaxWorkers:
		return fmt.Errorf("Workers, MaxInFlightPerWebhook and MaxInFlightPerShop cannot be more than %d", MaxWorkers)
	case c.AttemptTimeout > MaxAttemptTimeout:
		return fmt.Errorf("AttemptTimeout cannot be more than %s", MaxAttemptTimeout)
	case c.ClaimBatch < 0:
		return errors.New("ClaimBatch cannot be less than zero")
	case c.PollInterval < 0:
		return errors.New("PollInterval cannot be less than zero")
	case c.LeaseFor < 0:
		return errors.New("LeaseFor cannot be less than zero")
	case c.LeaseFor > 0 && c.LeaseFor <= cmp.Or(c.AttemptTimeout, DefaultAttemptTimeout):
		return errors.New("LeaseFor must be longer than AttemptTimeout, or a slow attempt would outlive its claim")
	case c.Jitter >= 1:
		return errors.New("Jitter must be less than 1")
	}
	for i, d := range c.Schedule {
		if d <= 0 {
			return fmt.Errorf("Schedule[%d] must be positive", i)
		}
	}
	return nil
}

// Store is what the dispatcher needs of the store.
type Store interface {
	webhooks.Queue
	webhooks.AttemptRecorder
	webhooks.DeliveryService
	webhooks.WebhookService
}

// Client sends one attempt; *egress.Client is the real one.
type Client interface {
	Send(ctx context.Context, req egress.Request) egress.Result
}

// userAgenter is a Client that says which User-Agent it sends (egress.Client
// does), so that an attempt's request.headers shows it.
type userAgenter interface {
	UserAgent() string
}

// Dispatcher delivers queued deliveries and makes synchronous attempts.
type Dispatcher struct {
	logger  *slog.Logger
	now     func() time.Time
	store   Store
	client  Client
	cfg     Config
	metrics *Metrics

	pool    int // workers: Workers for one shop, and a spare eighth for the others (see shopOver)
	wake    chan struct{}
	jobs    chan *webhooks.Job
	results chan webhooks.AttemptResult

	mu       sync.Mutex
	inFlight map[string]int    // per webhook: slots taken (attempts in flight, paced slots held)
	shopOf   map[string]string // the shop of each webhook in inFlight
	shopLoad map[string]int    // per shop: its webhooks' slots taken
	waiting  map[string]int    // per shop: its jobs in backlog
	probed   time.Time         // the last claim for the shops not crowded (see claimOnce)
	total    int
	backlog  map[string][]*webhooks.Job // claimed beyond a webhook's bound
	queued   int                        // jobs in backlog, all webhooks
	pace     map[string]pace            // per recently busy webhook
	claimDur time.Duration              // claim time, writer wait included, recent peak
	freed    chan struct{}
	stopping bool
	unsent   []*webhooks.Job // claimed, not sent because of Stop
	giveBack []*webhooks.Job // claimed, not sent, of webhooks whose URL or secret changed (Changed)

	// abort is the parent of every attempt's context; Shutdown cancels
	// it when its time is up, to cut the attempts still in flight.
	abort    context.Context
	abortNow context.CancelFunc

	// Hand-over from publishes (Reserve, Take, Cancel): empty is set
	// while the queue holds no due work the claims could take, so a
	// delivery published now may skip it; behind counts the deliveries
	// queued (a claim that began before one of them can't tell that the
	// queue is empty).
	empty  bool
	behind uint64
	// emptyBut, while empty is set, names the webhooks whose due work may
	// still wait in the queue: those the last claim left out (at their
	// bound: a hanging endpoint's backlog) and those whose deliveries were
	// queued behind their own backlog since (the value: butGen then, 0
	// for the claim's). Their deliveries are queued in turn; the other
	// webhooks' are still handed over. (One hanging endpoint with traffic
	// turned off the hand-over of every shop: soak audit, CPU per attempt
	// 1.36 → 2.9 ms.)
	emptyBut map[string]uint64
	butGen   uint64
	// claimWanted says that Reserve turned down a delivery a claim could
	// take now: Queued wakes the claim loop for it. One turned down for a
	// webhook at its bound waits for that webhook's slots, whose freeing
	// claims anyway: a claim per such publish only read the webhook's
	// backlog again (soak audit: claims of a hanging endpoint's queue took
	// a third of the server's CPU).
	claimWanted bool
	held        map[string]int // per webhook: reserved, not yet taken
	heldAll     int
	// gone counts, per webhook, the 410 answers whose disable is not
	// recorded yet: until it is, the store still holds that webhook's
	// queued rows as due, and nothing more may start for it.
	gone     map[string]int
	closing  bool // Stop has begun: no more reservations
	released *sync.Cond

	cancel   context.CancelFunc
	stopOnce sync.Once
	claimWG  sync.WaitGroup
	workWG   sync.WaitGroup
	recordWG sync.WaitGroup
	holdWG   sync.WaitGroup // slots of failing webhooks held (holdSlot)
	started  bool
}

// NewDispatcher returns a dispatcher; Start runs it.
func NewDispatcher(logger *slog.Logger, now func() time.Time, store Store, client Client, metrics *Metrics, cfg *Config) (*Dispatcher, error) {
	if cfg == nil {
		cfg = &Config{}
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("dispatch config: %w", err)
	}
	if store == nil || client == nil {
		return nil, errors.New("dispatch: store and client are required")
	}
	c := cfg.withDefaults()
	if now == nil {
		now = time.Now
	}
	d := &Dispatcher{
		logger:   cmp.Or(logger, slog.New(slog.DiscardHandler)),
		now:      now,
		store:    store,
		client:   client,
		cfg:      c,
		metrics:  metrics,
		wake:     make(chan struct{}, 1),
		pool:     c.Workers + c.Workers/8,
		jobs:     make(chan *webhooks.Job, c.Workers+c.Workers/8),
		results:  make(chan webhooks.AttemptResult, c.Workers*2),
		inFlight: map[string]int{},
		shopOf:   map[string]string{},
		shopLoad: map[string]int{},
		waiting:  map[string]int{},
		backlog:  map[string][]*webhooks.Job{},
		pace:     map[string]pace{},
		freed:    make(chan struct{}, 1),
		held:     map[string]int{},
		emptyBut: map[string]uint64{},
		gone:     map[string]int{},
	}
	d.released = sync.NewCond(&d.mu)
	return d, nil
}

// Wake tells the dispatcher that deliveries were queued for a claim to
// find (not handed over). It never blocks.
func (d *Dispatcher) Wake() {
	d.mu.Lock()
	d.queuedBehind()
	d.mu.Unlock()
	d.wakeClaims()
}

// Queued is the store's OnQueued hook: deliveries were queued for a claim
// to find. When it was told of each (its Reserve said no, and noted why
// they wait: the queue not empty, or their webhook's own backlog), it only
// wakes the claim loop; else it is Wake. (Waking as Wake made one hanging
// endpoint's queued deliveries stop the hand-over of every webhook's.)
func (d *Dispatcher) Queued(told bool) {
	if !told {
		d.Wake()
		return
	}
	d.mu.Lock()
	wanted := d.claimWanted
	d.claimWanted = false
	d.mu.Unlock()
	if wanted {
		d.wakeClaims()
	}
}

// wakeClaims wakes the claim loop without blocking.
func (d *Dispatcher) wakeClaims() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Start runs the claim loop, the workers and the recorder until Stop.
func (d *Dispatcher) Start(ctx context.Context) error {
	if d.started {
		return errors.New("dispatcher already started")
	}
	d.started = true
	ctx, d.cancel = context.WithCancel(context.WithoutCancel(ctx))
	d.abort, d.abortNow = context.WithCancel(context.Background())
	for range d.pool {
		d.workWG.Add(1)
		go d.worker(ctx)
	}
	d.recordWG.Add(1)
	go d.recorder()
	d.claimWG.Add(1)
	go d.claimLoop(ctx)
	return nil
}

// Stop stops claiming, lets the attempts in flight finish (each bounded by
// the client's timeout), records them and returns. Deliveries claimed but
// not sent are given back (see Releaser), or taken again when their lease
// runs out.
func (d *Dispatcher) Stop() {
	d.stopOnce.Do(func() {
		if !d.started {
			return
		}
		defer d.abortNow()
		d.mu.Lock()
		d.closing = true
		d.mu.Unlock()
		d.cancel()
		d.claimWG.Wait()
		d.mu.Lock()
		// Reservations end with their commit: taken, they are sent or
		// given back with the rest below.
		for d.heldAll > 0 {
			d.released.Wait()
		}
		d.stopping = true
		close(d.jobs)
		d.mu.Unlock()
		d.workWG.Wait()
		d.holdWG.Wait()
		close(d.results)
		d.recordWG.Wait()
		d.releaseUnsent()
	})
}

// Shutdown stops as Stop does, but when ctx ends first it cuts the
// attempts still in flight (a receiver that hangs would otherwise hold the
// stop for the whole attempt timeout). A cut attempt is not recorded: its
// delivery is given back with those not sent, to be sent again, so a
// receiver may get it twice (deliveries are at least once).
func (d *Dispatcher) Shutdown(ctx context.Context) {
	if !d.started {
		return
	}
	stopped := make(chan struct{})
	go func() { d.Stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-ctx.Done():
		d.logger.Warn("shutdown: time is up; cutting the attempts in flight, their deliveries are sent again")
		d.abortNow()
		<-stopped
	}
}

// Renewer is implemented by stores that can extend the lease of a claimed
// delivery (see Dispatcher.renew).
type Renewer interface {
	RenewLease(ctx context.Context, j *webhooks.Job, until time.Time) (bool, error)
}

// Releaser is implemented by stores that can give claimed deliveries back
// at once, so a restart need not wait for their lease to run out.
type Releaser interface {
	ReleaseDeliveries(ctx context.Context, jobs []*webhooks.Job) error
}

func (d *Dispatcher) releaseUnsent() {
	jobs := append(d.unsent, d.giveBack...)
	for _, q := range d.backlog {
		jobs = append(jobs, q...)
	}
	r, ok := d.store.(Releaser)
	if !ok || len(jobs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.ReleaseDeliveries(ctx, jobs); err != nil {
		d.logger.Warn("release unsent deliveries; they are taken again when their lease runs out", "error", err, "deliveries", len(jobs))
	}
}

func (d *Dispatcher) claimLoop(ctx context.Context) {
	defer d.claimWG.Done()
	timer := time.NewTimer(0)
	defer timer.Stop()
	hold := time.NewTimer(time.Hour)
	hold.Stop()
	defer hold.Stop()
	for {
		d.releaseChanged(ctx)
		n, saturated, probeIn, err := d.claimOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			d.logger.Error("claim deliveries", "error", err)
		}
		if n > 0 && err == nil {
			continue // there may be more due right now
		}
		wait := d.cfg.PollInterval
		if err == nil {
			if due, err := d.store.NextDue(ctx); err == nil && !due.IsZero() {
				// What is due now belongs to webhooks at their bound (if it
				// were not, the claim would have taken it): wait for a slot
				// to free instead of spinning.
				if until := due.Sub(d.now()); until > 0 || !saturated {
					wait = min(wait, max(until, time.Millisecond))
				}
			}
		}
		if probeIn > 0 {
			wait = min(wait, probeIn)
		}
		timer.Reset(wait)
		woken := d.wake
		if n == 0 && saturated && err == nil {
			// Everything due belongs to webhooks at their bound. A publish
			// may have queued work for another webhook, but looking on every
			// publish costs more than holding wake-ups for a moment; a freed
			// slot still claims at once.
			woken = nil
			hold.Reset(wakeHold)
		}
	sleep:
		select {
		case <-ctx.Done():
			return
		case <-woken:
		case <-hold.C:
			woken = d.wake
			goto sleep
		case <-d.freed:
			if d.queueEmpty() {
				// Nothing is due that a claim could take: the slot waits
				// for a publish to hand it work.
				goto sleep
			}
		case <-timer.C:
		}
		if !hold.Stop() {
			select {
			case <-hold.C:
			default:
			}
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// claimOnce claims as many due deliveries as there are free workers, plus
// what busy webhooks need claimed ahead, and hands them out; a webhook at
// its bound with enough claimed ahead is skipped. When a probe for other
// webhooks' deliveries is wanted but came too soon after the last, it
// says in how long to claim again.
func (d *Dispatcher) claimOnce(ctx context.Context) (int, bool, time.Duration, error) {
	d.mu.Lock()
	free := d.cfg.Workers - d.total
	var exclude []string
	for id := range d.inFlight {
		// Claim ahead: a webhook at its bound keeps waiting what it will
		// send while the next claim commits, so its slots never run dry.
		// A shop held to its share gets nothing more claimed for the
		// webhooks it is sending to: it waits for its own slots.
		if (d.skipped(id) || d.shopCrowding(d.shopOf[id])) && d.gone[id] == 0 {
			exclude = append(exclude, id)
		}
	}
	for id, q := range d.backlog {
		if len(q) > 0 && d.inFlight[id] == 0 && d.shopCrowding(q[0].ShopID) {
			exclude = append(exclude, id) // claimed already, and waiting for its shop
		}
	}
	for id := range d.gone {
		exclude = append(exclude, id)
	}
	// Room for the webhooks that keep more than their bound ahead (fast
	// ones, lately): what they lack of it. The rest of a claim is sized by
	// the free workers, as before.
	room := 0
	for id, p := range d.pace {
		if d.inFlight[id] == 0 && time.Since(p.at) > p.ttl() {
			delete(d.pace, id)
			continue
		}
		if ahead := d.ahead(id); ahead > d.bound(id) {
			room += max(ahead-len(d.backlog[id]), 0)
		}
	}
	limit := min(max(free, 0), d.cfg.ClaimBatch) + room
	limit = min(limit, d.maxAhead(), d.maxQueued()-d.queued-d.heldAll)
	probe := false
	if limit <= 0 {
		// No worker free, or enough claimed: but if a shop holds more than
		// its share, another's deliveries may wait in the queue unseen.
		// Look for them now and then, that shop's webhooks left out; once
		// claimed, they take the next slots that shop frees.
		crowded := d.crowdedWebhooks()
		if free > 0 {
			// Workers are free, but all that may be claimed is, for
			// webhooks that cannot start it now (at their bound, their
			// attempts hanging): other webhooks' deliveries would wait
			// in the queue until those time out (a flaky test showed 5 s).
			// Look past them too.
			for id := range d.backlog {
				crowded = append(crowded, id)
			}
		}
		if len(crowded) == 0 || d.queued+d.heldAll >= 2*d.maxQueued() {
			d.mu.Unlock()
			return 0, true, 0, nil
		}
		if soon := probeEvery - time.Since(d.probed); soon > 0 {
			d.mu.Unlock()
			return 0, true, soon, nil
		}
		d.probed = time.Now()
		exclude, limit, probe = append(exclude, crowded...), min(d.cfg.ClaimBatch, probeLimit), true
	}
	behind, butGen := d.behind, d.butGen
	d.mu.Unlock()
	start := time.Now()
	jobs, err := d.store.ClaimDeliveries(ctx, webhooks.Claim{
		Limit: limit, LeaseFor: d.cfg.LeaseFor, Exclude: exclude, PerWebhook: d.cfg.MaxInFlightPerWebhook,
	})
	took := time.Since(start)
	if err != nil {
		return 0, len(exclude) > 0, 0, err
	}
	d.mu.Lock()
	// Fewer than asked, nothing queued meanwhile: the queue holds no due
	// work but the skipped webhooks', and publishes may hand theirs over.
	// (A probe skips the crowded shops: it tells nothing of their work.)
	if !probe {
		d.empty = len(jobs) < limit && d.behind == behind
		but := make(map[string]uint64, len(exclude))
		for _, id := range exclude {
			but[id] = 0
		}
		for id, gen := range d.emptyBut {
			if gen > butGen { // queued behind its backlog during the claim
				but[id] = gen
			}
		}
		d.emptyBut = but
	}
	// The slowest recent claim, decaying: a fast webhook must not run dry
	// during the claims that wait longest behind the writer.
	d.claimDur = max(took, movingAverage(d.claimDur, took, 8))
	for _, j := range jobs {
		if d.gone[j.WebhookID] > 0 {
			continue // answered 410 during the claim: its disable cancels the row
		}
		d.pushBacklog(j)
	}
	d.dispatchWaiting()
	d.mu.Unlock()
	return len(jobs), len(exclude) > 0, 0, nil
}

// dispatchWaiting hands claimed jobs to the workers while a worker is free
// and their webhook is under its bound. Called with d.mu held.
func (d *Dispatcher) dispatchWaiting() {
	for id := range d.backlog {
		d.dispatchWebhook(id)
	}
}

// dispatchWebhook hands a webhook's claimed jobs to the workers while a
// worker is free and the webhook is under its bound. Called with d.mu
// held.
func (d *Dispatcher) dispatchWebhook(id string) {
	q := d.backlog[id]
	for len(q) > 0 && d.total < d.pool && d.inFlight[id] < d.bound(id) && d.roomFor(q[0].ShopID, id, 0) {
		d.takeSlot(q[0])
		d.total++
		d.queued--
		d.unwait(q[0].ShopID, 1)
		d.jobs <- q[0] // never blocks: at most pool jobs are in flight
		q = q[1:]
	}
	if len(q) == 0 {
		delete(d.backlog, id)
	} else {
		d.backlog[id] = q
	}
}

// takeSlot counts a slot taken for j's webhook, and for its shop. Called
// with d.mu held.
func (d *Dispatcher) takeSlot(j *webhooks.Job) {
	d.inFlight[j.WebhookID]++
	d.shopOf[j.WebhookID] = j.ShopID
	d.shopLoad[j.ShopID]++
}

// freeSlot counts a slot of webhookID's freed, and of its shop. Called
// with d.mu held.
func (d *Dispatcher) freeSlot(webhookID string) {
	shop := d.shopOf[webhookID]
	if d.inFlight[webhookID]--; d.inFlight[webhookID] <= 0 {
		delete(d.inFlight, webhookID)
		delete(d.shopOf, webhookID)
	}
	if d.shopLoad[shop]--; d.shopLoad[shop] <= 0 {
		delete(d.shopLoad, shop)
	}
}

// shopCrowding says whether shop is held to its share of the workers
// (MaxInFlightPerShop), another shop's deliveries waiting: claims and
// hand-overs then take nothing more for it. (A shop alone at Workers
// claims ahead, as every webhook at its bound does.) Called with d.mu
// held.
func (d *Dispatcher) shopCrowding(shop string) bool {
	return d.shopLoad[shop] >= d.cfg.MaxInFlightPerShop && d.contended(shop)
}

// shopOver says whether shop, n of its slots given back, still holds as
// many as it may or more: its share while another shop's deliveries wait
// for a worker, and never more than Workers: the pool's spare eighth is
// kept for the other shops (a shop whose endpoints all hang would
// otherwise hold every worker until its attempts time out, and the next
// shop's deliveries wait that long). Called with d.mu held.
func (d *Dispatcher) shopOver(shop string, n int) bool {
	load := d.shopLoad[shop] - n
	return load >= d.cfg.Workers || load >= d.cfg.MaxInFlightPerShop && d.contended(shop)
}

// roomFor says whether webhookID, of shop, may start one more attempt,
// n of its slots given back (the shop's too): the shop is not over
// (shopOver), and the last eighth of the shop's Workers is kept for its
// webhooks with fewer than startWindow attempts in flight. Endpoints that
// had earned their bound and then hung all at once held every worker of
// their shop until their attempts timed out: 8 of them at 32 each, and a
// healthy endpoint of the same shop got nothing for 13.5 s (audit). Called
// with d.mu held.
func (d *Dispatcher) roomFor(shop, webhookID string, n int) bool {
	if d.shopOver(shop, n) {
		return false
	}
	return d.inFlight[webhookID]-n < startWindow || d.shopLoad[shop]-n < d.cfg.Workers-d.cfg.Workers/8
}

// contended says whether a shop other than shop has jobs waiting for a
// worker. Called with d.mu held.
func (d *Dispatcher) contended(shop string) bool {
	return len(d.waiting) > 1 || len(d.waiting) == 1 && d.waiting[shop] == 0
}

// pushBacklog adds a claimed or handed-over job to its webhook's backlog.
// Called with d.mu held.
func (d *Dispatcher) pushBacklog(j *webhooks.Job) {
	d.backlog[j.WebhookID] = append(d.backlog[j.WebhookID], j)
	d.queued++
	d.waiting[j.ShopID]++
}

// unwait counts n jobs of shop taken out of the backlog. Called with d.mu
// held.
func (d *Dispatcher) unwait(shop string, n int) {
	if d.waiting[shop] -= n; d.waiting[shop] <= 0 {
		delete(d.waiting, shop)
	}
}

// crowdedWebhooks returns the webhooks, in flight or waiting, of the
// shops that hold their share of slots or more. Called with d.mu held.
func (d *Dispatcher) crowdedWebhooks() []string {
	var ids []string
	for shop, n := range d.shopLoad {
		if n < d.cfg.MaxInFlightPerShop {
			continue
		}
		for id, s := range d.shopOf {
			if s == shop {
				ids = append(ids, id)
			}
		}
		for id, q := range d.backlog {
			if len(q) > 0 && d.inFlight[id] == 0 && q[0].ShopID == shop {
				ids = append(ids, id)
			}
		}
	}
	return ids
}

const (
	// probeEvery is how often, at most, a claim looks for other shops'
	// deliveries while no worker is free and a shop holds more than its
	// share; probeLimit is the most it takes.
	probeEvery = 250 * time.Millisecond
	probeLimit = 16
)

// ahead is how many deliveries a webhook at its bound keeps claimed beyond
// it: what its attempts at their recent pace send during four of the
// slowest recent claims (a refill is asked for one claim before it
// arrives; the rest is margin), at least the bound, at most maxAhead, and
// no more than can start before their lease runs short. A
// claim that waits behind a flood of publishes in the writer takes tens of
// milliseconds, and a fast endpoint would otherwise sit idle meanwhile; a
// slow one keeps its bound, and so does one whose last attempt failed: its
// deliveries only go back to the queue for a retry, and refusing them
// faster would take the writer from the publishes. Called with d.mu held.
func (d *Dispatcher) ahead(webhookID string) int {
	bound := d.bound(webhookID)
	pc := d.pace[webhookID]
	p := pc.attempt
	// The last one claimed ahead must still have a whole attempt's time
	// left on its lease when its turn comes; half that budget is used.
	budget := d.cfg.LeaseFor - leaseMargin - d.cfg.AttemptTimeout
	if p <= 0 || pc.streak > 0 || d.claimDur <= 0 || budget <= 0 {
		return bound
	}
	n := float64(bound) * float64(min(4*d.claimDur, budget/2)) / float64(p)
	return int(min(max(n, float64(bound)), float64(d.maxAhead())))
}

// pace is how a webhook's attempts went lately.
type pace struct {
	attempt time.Duration // moving average
	at      time.Time     // of the last attempt
	streak  int           // attempts failed in a row, up to the last one (0: it succeeded)
	window  int           // attempts it may have in flight, before the bound: grown by its successes
}

// allowed is how many attempts p's webhook may have in flight, before the
// configured bound: its window, startWindow for one not sent to lately,
// and failingBound while it is failing.
func (p pace) allowed() int {
	if p.failing() {
		return failingBound
	}
	return max(p.window, startWindow)
}

// failing says whether the webhook's attempts have failed failingStreak
// times in a row.
func (p pace) failing() bool { return p.streak >= failingStreak }

const (
	// paceTTL is how long a webhook's pace is kept after its last attempt.
	paceTTL = 10 * time.Second
	// failingStreak failed attempts in a row make a webhook failing (the
	// contract's health says error after 5): it gets at most failingBound
	// attempts in flight until one succeeds, so endpoints that hang until
	// the timeout can't hold the workers the healthy ones need. Its pace
	// is kept failingTTL after its last attempt, so its next events do not
	// start at the full bound again.
	failingStreak = 5
	failingBound  = 4
	failingTTL    = 10 * time.Minute
	// startWindow is how many attempts a webhook not sent to lately (no
	// pace kept) may have in flight; each success adds one, up to the
	// bound, so a receiver that answers doubles its window every round
	// trip. An endpoint that starts hanging gets startWindow attempts
	// stuck until the timeout, not its bound: with 256 workers and a
	// bound of 32, 8 such endpoints at once would hold every worker.
	startWindow = 4
)

// ttl is how long p is kept after its last attempt.
func (p pace) ttl() time.Duration {
	if p.failing() {
		return failingTTL
	}
	return paceTTL
}

// bound is how many attempts may be in flight to a webhook: the
// configured bound, or less while its window grows or while it is failing
// (see pace.allowed). Called with d.mu held.
func (d *Dispatcher) bound(webhookID string) int {
	return min(d.cfg.MaxInFlightPerWebhook, d.pace[webhookID].allowed())
}

// maxAhead bounds one claim, and what one webhook keeps claimed ahead.
func (d *Dispatcher) maxAhead() int { return 4 * d.cfg.ClaimBatch }

// maxQueued bounds the jobs claimed and waiting, all webhooks together.
func (d *Dispatcher) maxQueued() int { return max(4*d.cfg.Workers, d.maxAhead()) }

// movingAverage folds sample into avg with weight 1/n; the first sample
// is taken as it is.
func movingAverage(avg, sample time.Duration, n int64) time.Duration {
	if avg <= 0 {
		return sample
	}
	return avg + (sample-avg)/time.Duration(n)
}

// release frees a webhook's slot after an attempt that took took (0: not
// sent) and succeeded or not, or hands it to the next job of that
// webhook's backlog.
func (d *Dispatcher) release(webhookID string, took time.Duration, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if took > 0 {
		d.notePace(webhookID, took, ok)
	}
	// The next job of the webhook takes the slot over, unless the webhook
	// has more in flight than its bound now allows (it has turned failing).
	// Nor while its shop holds more than it may (shopOver, this slot
	// given back): the slot goes to the other shops.
	shop := d.shopOf[webhookID]
	if q := d.backlog[webhookID]; len(q) > 0 && !d.stopping && d.inFlight[webhookID] <= d.bound(webhookID) && d.roomFor(shop, webhookID, 1) {
		d.backlog[webhookID] = q[1:]
		if len(q) == 1 {
			delete(d.backlog, webhookID)
		}
		d.queued--
		d.unwait(shop, 1)
		d.jobs <- q[0] // never blocks: the job takes over the slot just freed
		if ok {
			d.dispatchWebhook(webhookID) // its window grew: one more may start
		}
		if len(d.backlog[webhookID]) < d.ahead(webhookID) {
			d.signalFreed() // room to claim ahead for this webhook again
		}
		return
	}
	d.total--
	d.freeSlot(webhookID)
	if d.queued > 0 && !d.stopping {
		d.dispatchWaiting() // a job waiting for a free worker takes this one
	}
	d.signalFreed()
}

// notePace folds an attempt to webhookID that took took and succeeded or
// not into its pace. Called with d.mu held.
func (d *Dispatcher) notePace(webhookID string, took time.Duration, ok bool) {
	p := d.pace[webhookID]
	streak, window := 0, max(p.window, startWindow)
	if ok {
		window = min(window+1, d.cfg.MaxInFlightPerWebhook)
	} else {
		streak = p.streak + 1
	}
	d.pace[webhookID] = pace{movingAverage(p.attempt, took, 8), time.Now(), streak, window}
}

// queueEmpty says whether the last claim found the queue without due work
// it could take, and nothing was queued since (retries come due on the
// claim loop's timer, expired leases on its poll).
func (d *Dispatcher) queueEmpty() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.empty {
		return false
	}
	// The webhooks whose due work the last claim left in the queue: while
	// each is still at its bound with enough claimed ahead (as a claim
	// would skip it), a slot freed elsewhere has nothing to claim. A
	// claim for every healthy attempt that ended read a hanging
	// endpoint's backlog each time (soak audit).
	for id := range d.emptyBut {
		if d.gone[id] == 0 && !d.skipped(id) {
			return false
		}
	}
	return true
}

// skipped says whether a claim leaves webhookID out (claimOnce): at its
// bound, with as many claimed jobs waiting as it keeps ahead. queueEmpty
// counts on the same test. Called with d.mu held.
func (d *Dispatcher) skipped(webhookID string) bool {
	return d.inFlight[webhookID] >= d.bound(webhookID) && len(d.backlog[webhookID]) >= d.ahead(webhookID)
}

// Reserve holds a place for one delivery to webhookID that a publish is
// about to store, leased until the time it returns: the store's Handoff.
// There is a place while the queue holds no due work (the last claim found
// less than it asked for, and nothing was queued since) but that of the
// webhooks it left out, and the webhook is not one of those and has less
// in flight and waiting than a claim would give it. When there is none,
// the delivery waits in the queue, and so do the ones published after it
// until a claim has taken it: all others if the queue was not empty, only
// the same webhook's if the webhook's own backlog held it back.
func (d *Dispatcher) Reserve(shopID, webhookID string) (time.Time, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closing {
		d.queuedBehind()
		return time.Time{}, false
	}
	if d.gone[webhookID] > 0 {
		return time.Time{}, false // queued, and cancelled by the disable of its 410
	}
	n := d.inFlight[webhookID] + len(d.backlog[webhookID]) + d.held[webhookID]
	full := n >= d.bound(webhookID)+d.ahead(webhookID)
	if _, behind := d.emptyBut[webhookID]; behind || full {
		// Queued behind its own backlog, in turn; the other webhooks'
		// deliveries may still skip the queue, and a claim that began
		// before this one can still find the queue empty for them.
		d.butGen++
		d.emptyBut[webhookID] = d.butGen
		d.claimWanted = d.claimWanted || !full
		return time.Time{}, false
	}
	if !d.empty || d.queued+d.heldAll >= d.maxQueued() || d.shopCrowding(shopID) {
		d.queuedBehind()
		d.claimWanted = true
		return time.Time{}, false
	}
	d.held[webhookID]++
	d.heldAll++
	return d.now().Add(d.cfg.LeaseFor), true
}

// Take hands over deliveries reserved with Reserve, now stored leased: they
// wait with the claimed ones for a worker and their webhook's bound.
func (d *Dispatcher) Take(jobs []*webhooks.Job) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, j := range jobs {
		d.unhold(j.WebhookID)
		if d.gone[j.WebhookID] > 0 {
			continue // reserved before a 410: its disable cancels the row
		}
		d.pushBacklog(j)
	}
	d.dispatchWaiting()
}

// Cancel gives back places reserved for deliveries that were not stored.
func (d *Dispatcher) Cancel(jobs []*webhooks.Job) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, j := range jobs {
		d.unhold(j.WebhookID)
	}
	d.signalFreed()
}

// unhold ends one reservation. Called with d.mu held.
func (d *Dispatcher) unhold(webhookID string) {
	if d.held[webhookID]--; d.held[webhookID] <= 0 {
		delete(d.held, webhookID)
	}
	if d.heldAll--; d.heldAll == 0 {
		d.released.Broadcast()
	}
}

// queuedBehind notes that a delivery waits in the queue unclaimed: publishes
// stop handing theirs over until a claim has found the queue empty again.
// Called with d.mu held.
func (d *Dispatcher) queuedBehind() {
	d.empty = false
	d.behind++
}

// Stopped forgets the deliveries of a webhook just disabled or deleted that
// were claimed or handed over but not sent: the store has cancelled (or
// deleted) its queue, and no attempt may start once it is stopped.
// Attempts in flight finish and are recorded. The store calls it after the
// commit (OnWebhookStopped), on PostgreSQL for every replica's stops; a
// second call for one webhook does nothing.
func (d *Dispatcher) Stopped(webhookID string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dropBacklog(webhookID)
}

// Changed gives back the deliveries of a webhook whose URL or signing
// secret just changed that were claimed or handed over but not sent: they
// carry the old URL and secrets, and waited behind the webhook's bound for
// up to an attempt's time or more (audit: sent to the old URL with only the
// old secret's signature 3.5 s after the change, --secret-overlap 0
// notwithstanding). The claim loop releases their leases and claims them
// again, as they now are. Attempts in flight finish as they started. The
// store calls it after the commit (OnWebhookChanged), on PostgreSQL for
// every replica's changes.
func (d *Dispatcher) Changed(webhookID string) {
	d.mu.Lock()
	q := d.backlog[webhookID]
	if len(q) == 0 || d.stopping {
		d.mu.Unlock()
		return
	}
	d.dropBacklog(webhookID)
	d.giveBack = append(d.giveBack, q...)
	for range q {
		d.queuedBehind() // a publish must not pass them
	}
	d.mu.Unlock()
	d.wakeClaims()
}

// releaseChanged releases the leases of the jobs Changed gave back, so
// that the claim that follows takes them again.
func (d *Dispatcher) releaseChanged(ctx context.Context) {
	d.mu.Lock()
	jobs := d.giveBack
	d.giveBack = nil
	d.mu.Unlock()
	r, ok := d.store.(Releaser)
	if !ok || len(jobs) == 0 {
		return
	}
	if err := r.ReleaseDeliveries(ctx, jobs); err != nil && ctx.Err() == nil {
		d.logger.Warn("release the deliveries of a changed webhook; they are taken again when their lease runs out", "error", err, "deliveries", len(jobs))
	}
}

// dropBacklog forgets the claimed jobs of a webhook that waited for a
// worker. Called with d.mu held.
func (d *Dispatcher) dropBacklog(webhookID string) {
	if q := d.backlog[webhookID]; len(q) > 0 {
		d.queued -= len(q)
		d.unwait(q[0].ShopID, len(q))
		delete(d.backlog, webhookID)
		d.signalFreed()
	}
}

// markGone stops what this process holds for a webhook that answered 410,
// and keeps claims and hand-overs from starting more for it until the
// result is recorded (recordedGone).
func (d *Dispatcher) markGone(webhookID string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.gone[webhookID]++
	d.dropBacklog(webhookID)
}

// recordedGone is called once a 410's result is recorded (or given up on):
// the webhook is disabled and its queued rows cancelled.
func (d *Dispatcher) recordedGone(webhookID string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.gone[webhookID]--; d.gone[webhookID] <= 0 {
		delete(d.gone, webhookID)
	}
}

// signalFreed wakes the claim loop without blocking.
func (d *Dispatcher) signalFreed() {
	select {
	case d.freed <- struct{}{}:
	default:
	}
}

func (d *Dispatcher) worker(ctx context.Context) {
	defer d.workWG.Done()
	for j := range d.jobs {
		if ctx.Err() != nil {
			// Stopping: not sent; its lease is given back in Stop.
			d.drop(j)
			continue
		}
		// An attempt must end before the claim does, or another worker
		// could take the delivery and send it while this one still is.
		left := j.LeasedUntil.Sub(d.now()) - leaseMargin
		if left < d.cfg.AttemptTimeout {
			var held bool
			if left, held = d.renew(ctx, j, left); !held {
				d.release(j.WebhookID, 0, false)
				continue
			}
		}
		if left <= 0 {
			// It waited too long behind its webhook's backlog: leave it
			// to be claimed again when the lease runs out.
			d.release(j.WebhookID, 0, false)
			continue
		}
		actx, cancel := context.WithTimeout(d.abort, left)
		d.metrics.track(1)
		start := time.Now()
		res := d.attempt(actx, j)
		took := time.Since(start)
		d.metrics.track(-1)
		cancel()
		if !res.Success && d.abort.Err() != nil {
			// Cut by Shutdown: given back in Stop, not recorded.
			d.drop(j)
			continue
		}
		if res.Disable != "" {
			// 410 Gone: what waits is cancelled when res is recorded (and on
			// PostgreSQL announced to the other replicas); this process
			// stops now, before its slot is handed over, and starts nothing
			// more for the webhook until then (see gone).
			d.markGone(j.WebhookID)
		}
		d.results <- res
		if !res.Success && res.Disable == "" && d.holdSlot(j.WebhookID, took) {
			continue
		}
		d.release(j.WebhookID, took, res.Success)
	}
}

// failingSlot is how long a failing webhook's slot stays taken after an
// attempt starts: with failingBound slots, a failing webhook gets at most
// failingBound / failingSlot attempts a second (40). Without it, an
// endpoint that refuses connections or answers an error at once had its
// whole backlog attempted as fast as the machine could: a million queued
// deliveries to a dead receiver took every core from the publishes, the
// API and the healthy webhooks, and hammered a receiver that may be
// trying to recover. Every attempt still comes, none is skipped; past
// this rate, what is due waits its turn, and the first success lifts it.
const failingSlot = 100 * time.Millisecond

// holdSlot frees the worker of a failed attempt that took took but, when
// its webhook is failing (this attempt included) and the attempt was
// quicker than failingSlot, keeps the webhook's slot taken until
// failingSlot after the attempt began, then frees it as release does.
// It reports whether it did so; if not, the caller releases.
func (d *Dispatcher) holdSlot(webhookID string, took time.Duration) bool {
	rest := failingSlot - took
	if took <= 0 || rest <= 0 {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopping || d.pace[webhookID].streak+1 < failingStreak {
		return false
	}
	d.notePace(webhookID, took, false)
	d.total-- // the worker is free; the slot stays counted in inFlight
	if d.queued > 0 {
		d.dispatchWaiting()
	}
	d.signalFreed() // a claim held back for want of workers may go
	d.holdWG.Add(1)
	time.AfterFunc(rest, func() {
		defer d.holdWG.Done()
		d.endHold(webhookID)
	})
	return true
}

// endHold frees the slot holdSlot kept: the webhook's next claimed job
// may start, on any free worker.
func (d *Dispatcher) endHold(webhookID string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.freeSlot(webhookID)
	if d.queued > 0 && !d.stopping {
		d.dispatchWaiting() // this webhook's next job, or another's
	}
	d.signalFreed()
}

// renew extends the lease of j, which waited so long behind its webhook's
// backlog that less than a whole attempt's time is left of it (a webhook
// that turned slow with many claimed ahead): sent as it is, the attempt
// would be cut before the timeout a receiver is promised. It returns the
// time the attempt may take, and false when the delivery is no longer
// this worker's to send (finished, cancelled, or taken again after its
// lease ran out). A store that cannot renew, a lease too short for a
// whole attempt however it is renewed, or a failed write leaves it as
// it was.
func (d *Dispatcher) renew(ctx context.Context, j *webhooks.Job, left time.Duration) (time.Duration, bool) {
	r, ok := d.store.(Renewer)
	if !ok || d.cfg.LeaseFor-leaseMargin < d.cfg.AttemptTimeout {
		return left, true
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	held, err := r.RenewLease(rctx, j, d.now().Add(d.cfg.LeaseFor))
	switch {
	case err != nil:
		if ctx.Err() == nil { // stopping: not worth a warning
			d.logger.Warn("renew a delivery's lease; its attempt gets what is left of it", "error", err, "delivery_id", j.DeliveryID)
		}
		return left, true
	case !held:
		return 0, false
	}
	return j.LeasedUntil.Sub(d.now()) - leaseMargin, true
}

// drop forgets a job not sent because the dispatcher is stopping; its
// lease is released in Stop.
func (d *Dispatcher) drop(j *webhooks.Job) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.total--
	d.freeSlot(j.WebhookID)
	d.unsent = append(d.unsent, j)
}

// attempt sends one queued delivery and decides what comes next.
func (d *Dispatcher) attempt(ctx context.Context, j *webhooks.Job) webhooks.AttemptResult {
	// The secrets now, not at the claim: the rotation's overlap may have
	// ended since (timing audit: 4 of 8 attempts sent after it still
	// carried the old signature).
	res, reqHeaders, at := d.send(ctx, j.EventID, j.DeliveryID, j.ShopID, j.Event, j.URL, j.SigningSecrets(d.now()), j.Payload)
	r := webhooks.AttemptResult{
		DeliveryID:     j.DeliveryID,
		WebhookID:      j.WebhookID,
		Success:        res.Success(),
		Response:       response(res),
		RequestHeaders: reqHeaders,
		FailureReason:  res.FailureReason,
		AttemptedAt:    at,
		Duration:       res.Duration,
	}
	switch {
	case r.Success:
	case res.Gone:
		r.Disable = webhooks.DisabledReasonGone
	default:
		// Counted from the attempt's end: a timeout of 15 s must not eat
		// the first retry's 5 s, nor a slow 429 its Retry-After.
		r.NextAttemptAt = d.nextAttempt(j.Attempt, at.Add(res.Duration), res.RetryAfter)
	}
	d.observe(j.DeliveryID, j.WebhookID, j.Event, j.Attempt, j.Trigger, res)
	return r
}

// observe logs an attempt, any kind (one line at debug), and counts it.
func (d *Dispatcher) observe(deliveryID, webhookID string, event webhooks.EventType, attempt int, trigger webhooks.Trigger, res egress.Result) {
	d.logger.Debug("delivery attempt", "delivery_id", deliveryID, "webhook_id", webhookID, "event", event,
		"attempt", attempt, "trigger", trigger, "status_code", res.StatusCode, "success", res.Success(),
		"duration_ms", res.Duration.Milliseconds(), "failure_reason", res.FailureReason)
	d.metrics.observe(res)
}

// nextAttempt returns when attempt n+1 is due after attempt n failed,
// ending at end, or nil when n was the last. A Retry-After (429/503)
// pushes it later, up to MaxRetryAfter.
func (d *Dispatcher) nextAttempt(n int, end time.Time, retryAfter time.Duration) *time.Time {
	if n < 1 || n > len(d.cfg.Schedule) {
		return nil
	}
	delay := d.cfg.Schedule[n-1]
	if d.cfg.Jitter > 0 {
		delay = time.Duration(float64(delay) * (1 + d.cfg.Jitter*(2*rand.Float64()-1)))
	}
	if retryAfter > 0 {
		delay = max(delay, min(retryAfter, d.cfg.MaxRetryAfter))
	}
	t := end.Add(delay)
	return &t
}

// send signs and POSTs one envelope; it returns the result, the request
// headers as sent, and the time of the attempt.
func (d *Dispatcher) send(ctx context.Context, eventID, deliveryID, shopID, event, url string, secrets []string, body []byte) (egress.Result, map[string]string, time.Time) {
	at := d.now().UTC()
	h, err := SignedHeaders(secrets, eventID, deliveryID, shopID, event, at, body)
	if err != nil {
		return egress.Result{FailureReason: "cannot sign: webhook secret is invalid"}, nil, at
	}
	res := d.client.Send(ctx, egress.Request{URL: url, Header: h, Body: body})
	sent := make(map[string]string, len(h)+2)
	for k, v := range h {
		sent[k] = strings.Join(v, ", ")
	}
	sent["Content-Type"] = "application/json"
	if ua, ok := d.client.(userAgenter); ok {
		sent["User-Agent"] = ua.UserAgent()
	}
	return res, sent, at
}

// SignedHeaders are the headers an attempt at time at sends with body
// besides Content-Type and User-Agent: the Standard Webhooks id, timestamp
// and signature (by each of secrets) and the X-Pancake-* ones. They are
// spelled as the contract and the Standard Webhooks specification spell
// them, on the wire (HTTP header names are case-insensitive) and in
// request.headers, where a client looks them up by that spelling
// (request.headers["webhook-id"], pancake.HeaderWebhookID).
func SignedHeaders(secrets []string, eventID, deliveryID, shopID, event string, at time.Time, body []byte) (http.Header, error) {
	ts := at.Unix()
	sig, err := webhooks.Sign(secrets, eventID, ts, body)
	if err != nil {
		return nil, err
	}
	return http.Header{
		"webhook-id":         {eventID},
		"webhook-timestamp":  {strconv.FormatInt(ts, 10)},
		"webhook-signature":  {sig},
		"X-Pancake-Event":    {event},
		"X-Pancake-Delivery": {deliveryID},
		"X-Pancake-Shop":     {shopID},
	}, nil
}

// response converts an egress result into the stored response. Of more
// than maxStoredHeaders headers, it keeps the same ones for the same
// answer: those of keptFirst, then the others by name.
func response(res egress.Result) webhooks.Response {
	r := webhooks.Response{StatusCode: res.StatusCode, Headers: make(map[string]string, min(len(res.Header), maxStoredHeaders)),
		Body: res.Body, BodyTruncated: res.BodyTruncated}
	names := slices.DeleteFunc(slices.Collect(maps.Keys(res.Header)), func(name string) bool { return len(name) > maxHeaderName })
	if len(names) > maxStoredHeaders {
		rank := func(name string) int {
			if i := slices.Index(keptFirst, name); i >= 0 {
				return i
			}
			return len(keptFirst)
		}
		slices.SortFunc(names, func(a, b string) int { return cmp.Or(cmp.Compare(rank(a), rank(b)), strings.Compare(a, b)) })
		names = names[:maxStoredHeaders]
	}
	for _, k := range names {
		val := strings.Join(res.Header[k], ", ")
		if len(val) > maxHeaderValue {
			n := maxHeaderValue
			for n > 0 && !utf8.RuneStart(val[n]) {
				n-- // not in the middle of a character
			}
			val = val[:n]
		}
		r.Headers[k] = val // made storable where every attempt is recorded (store)
	}
	return r
}

// keptFirst are the response headers kept before any other when there are
// too many to keep all (canonical names, as net/http gives them).
var keptFirst = []string{"Content-Type", "Content-Length", "Date", "Retry-After", "Location", "Server", "Www-Authenticate"}

// wakeHold is how long wake-ups wait after a claim found that all due work
// belongs to webhooks at their in-flight bound.
const wakeHold = 5 * time.Millisecond

// leaseMargin is kept between the end of an attempt and the end of its
// claim, for the result to be recorded and for clocks that differ a little
// between replicas.
const leaseMargin = time.Second

// recordAloneProbe is how many results of a refused batch, tried one by
// one, may fail in a row before record decides the database, not a
// result, is failing.
const recordAloneProbe = 3

// Bounds on the response headers kept per attempt: a header whose name is
// longer is not kept (a 30,000-byte name was, whole).
const (
	maxStoredHeaders = 64
	maxHeaderName    = 256
	maxHeaderValue   = 1024
)

// recorder commits the workers' results in batches: what is waiting and,
// while results keep coming (see RecordWait), what comes within
// RecordWait of the first, up to RecordBatch.
func (d *Dispatcher) recorder() {
	defer d.recordWG.Done()
	batch := make([]webhooks.AttemptResult, 0, d.cfg.RecordBatch)
	wait := time.NewTimer(time.Hour)
	wait.Stop()
	var last time.Time // when the recorder closed its last batch
	for r := range d.results {
		batch = append(batch[:0], r)
		// After a quiet spell, take only what is waiting.
		waits := time.Since(last) < d.cfg.RecordWait
		if waits {
			wait.Reset(d.cfg.RecordWait)
		}
	fill:
		for len(batch) < d.cfg.RecordBatch {
			select {
			case r, ok := <-d.results:
				if !ok {
					break fill
				}
				batch = append(batch, r)
				continue
			default:
			}
			if !waits {
				break fill
			}
			select {
			case r, ok := <-d.results:
				if !ok {
					break fill
				}
				batch = append(batch, r)
			case <-wait.C:
				break fill
			}
		}
		wait.Stop()
		last = time.Now()
		d.record(batch)
	}
}

// record writes a batch of results, trying a few times, then each result
// on its own, so that one the database refuses does not take the others
// with it. While the database does not answer at all (PostgreSQL
// restarting, say), it keeps what it could not write and tries again,
// for as long as a lease lasts or until Shutdown's time is up: the
// attempts were made, and dropped results left their deliveries to be
// sent again after their lease and their first attempts never recorded
// (audit: a 6 s restart). Meanwhile the workers wait to hand over their
// results, so nothing new starts. A result not written at the end leaves
// its row leased, to be attempted again after the lease (at least once).
func (d *Dispatcher) record(batch []webhooks.AttemptResult) {
	var err error
	if d.cfg.OnRecordFunc != nil {
		defer func() { d.cfg.OnRecordFunc(batch, err) }()
	}
	defer func() {
		for _, r := range batch {
			if r.Disable != "" {
				d.recordedGone(r.WebhookID)
			}
		}
	}()
	left, until := batch, time.Now().Add(d.cfg.LeaseFor)
	for pause := time.Second; ; pause = min(2*pause, 5*time.Second) {
		var down bool
		if left, down, err = d.recordSome(left); len(left) == 0 {
			return
		}
		if !down || time.Now().Add(pause).After(until) {
			break
		}
		d.logger.Warn("record attempts: the database takes no writes (down, or its disk full); keeping the results to write when it does",
			"error", err, "attempts", len(left), "retry_in", pause)
		select {
		case <-time.After(pause):
		case <-d.abort.Done():
			d.logger.Error("record attempts: stopping with results not written; they will be attempted again after their lease",
				"error", err, "attempts", len(left))
			return
		}
	}
	d.logger.Error("record attempts: giving up; they will be attempted again after their lease", "error", err, "attempts", len(left))
}

// recordSome is one round of record: it returns the results it did not
// write, and down when none of them could be written because the database
// (not a result it refuses) fails. A result refused on its own beside
// others that were written is given up on, and logged. Once Shutdown's
// time is up it tries each write once.
func (d *Dispatcher) recordSome(batch []webhooks.AttemptResult) (left []webhooks.AttemptResult, down bool, err error) {
	tries := 5
	if d.abort.Err() != nil {
		tries = 1
	}
	for try := range tries {
		if err = d.store.RecordAttempts(context.Background(), batch); err == nil {
			return nil, false, nil
		}
		d.logger.Warn("record attempts", "error", err, "try", try+1, "attempts", len(batch))
		if try+1 < tries {
			time.Sleep(time.Duration(try+1) * 100 * time.Millisecond)
		}
	}
	if len(batch) == 1 {
		// Refused, or no database: a lone result tells them apart by its
		// error, else by whether the database answers anything else (a
		// full disk still serves reads).
		down := (d.cfg.Unavailable != nil && d.cfg.Unavailable(err)) || !d.storeAnswers()
		return batch, down, err
	}
	// One by one, unless a few in a row fail: then the database, not a
	// result, is what fails, and each call could wait for its
	// connection's timeout.
	var (
		errs   []error
		failed []webhooks.AttemptResult
	)
	recorded, inRow := 0, 0
	for i := range batch {
		if inRow == recordAloneProbe {
			// Those that failed, and those not tried.
			return append(failed, batch[i:]...), recorded == 0, errors.Join(errs...)
		}
		if err := d.store.RecordAttempts(context.Background(), batch[i:i+1]); err != nil {
			errs = append(errs, err)
			failed = append(failed, batch[i])
			inRow++
		} else {
			recorded++
			inRow = 0
		}
	}
	if err = errors.Join(errs...); err == nil {
		d.logger.Info("record attempts: recorded one by one", "attempts", len(batch))
		return nil, false, nil
	}
	// All failed (fewer than the probe): the database; some: refused.
	return failed, recorded == 0, err
}

// storeAnswers says whether the database answers a read, when the store
// can be asked (Ready); a store that cannot is taken to answer.
func (d *Dispatcher) storeAnswers() bool {
	r, ok := d.store.(interface{ Ready(context.Context) error })
	if !ok {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return r.Ready(ctx) == nil
}
