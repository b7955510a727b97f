// Package bench is the load benchmark of Pancake Webhooks: it drives a server
// as a black box over HTTP (one it starts, or one already running on
// loopback), measures the raw HTTP rate of the machine, publishes events in a
// few scenarios, receives the deliveries at its own sink and reports ingest and
// delivery rates, end-to-end latency, drain time, duplicates and missing
// deliveries, the server's RSS and CPU, as a table, one JSON line and SVG
// charts.
//
// Run it with
//
//	go build -o /tmp/pw ./cmd/pancake-webhooks
//	go run ./cmd/pancake-bench --server-bin /tmp/pw                # SQLite in a temporary directory
//	go run ./cmd/pancake-bench --server-bin /tmp/pw --db postgres://…
//	go run ./cmd/pancake-bench --target http://127.0.0.1:8080 --admin-token T --server-pid 1234
//
// The steps: start the sink on 127.0.0.1; start the server ("serve --addr
// 127.0.0.1:<free port> --db … --admin-token <random> --allow-private-networks
// --allow-http") and wait for GET /readyz; measure the raw rate (plain
// keep-alive POSTs of a signed delivery envelope straight to the sink, from
// --concurrency clients); run each scenario on a new shop whose webhooks
// point at the sink:
//
//   - single: single publishes from --concurrency clients, closed loop, 1 webhook;
//   - rate: an open-loop schedule of --rate events/s, 1 webhook; the latency
//     counts from each event's scheduled time, so a stall is not hidden;
//   - batch: batches of --batch-size from --concurrency clients, 1 webhook;
//   - fanout: as single, to --fanout webhooks;
//
// then wait (at most --drain-timeout) for every expected delivery; measure the
// raw rate again; stop the server. Each event's data carries its publish (or
// scheduled) time, so the sink computes the end-to-end latency. The ratios
// divide by the median of the raw measurements.
package bench

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Report is everything one run measured; it is printed as one JSON line.
type Report struct {
	Tool        string            `json:"tool"` // "pancake-bench"
	Format      int               `json:"format"`
	StartedAt   string            `json:"started_at"`
	WallSeconds float64           `json:"wall_s"`
	Mode        string            `json:"mode"` // "start", "target" or "relay"
	DB          string            `json:"db"`   // sqlite, postgres, unknown (target mode), none or journal (relay)
	Machine     Machine           `json:"machine"`
	Settings    Settings          `json:"settings"`
	Raw         Raw               `json:"raw"`
	Scenarios   []*ScenarioResult `json:"scenarios"`
	Server      *ProcStats        `json:"server,omitempty"` // at the end; nil when unknown
	BenchCPU    float64           `json:"bench_cpu_s"`      // this tool's own CPU seconds
	Stray       int64             `json:"stray_arrivals"`   // sink arrivals for no current scenario
	Error       string            `json:"error,omitempty"`
}

// Machine describes where the run happened.
type Machine struct {
	OS         string `json:"os"`
	Arch       string `json:"arch"`
	CPUs       int    `json:"cpus"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	Go         string `json:"go"`
	CPUModel   string `json:"cpu_model,omitempty"`
}

// Settings are the knobs of the run that shape the figures.
type Settings struct {
	DurationS    float64 `json:"duration_s"`
	Concurrency  int     `json:"concurrency"`
	Rate         int     `json:"rate"`
	BatchSize    int     `json:"batch_size"`
	Fanout       int     `json:"fanout"`
	EventBytes   int     `json:"event_bytes"`
	DrainTimeout float64 `json:"drain_timeout_s"`
	Verify       bool    `json:"verify"`
	// ReceiverDelayMS is how long the sink took to answer each delivery.
	ReceiverDelayMS float64 `json:"receiver_delay_ms,omitempty"`
}

// Raw is the physical limit: plain keep-alive HTTP POSTs of a delivery's
// envelope straight to the sink, from Clients clients.
type Raw struct {
	Clients int       `json:"clients"`
	Samples []float64 `json:"samples_rps"` // one before the scenarios, one after
	RPS     float64   `json:"rps"`         // their median: the "raw" of the ratios
}

// ScenarioResult holds the figures of one scenario.
type ScenarioResult struct {
	Name        string  `json:"name"`
	Description string  `json:"description"`
	Shop        string  `json:"shop"`
	Webhooks    int     `json:"webhooks"`
	Clients     int     `json:"clients,omitempty"`
	Batch       int     `json:"batch,omitempty"`
	Rate        int     `json:"rate,omitempty"`
	PublishS    float64 `json:"publish_s"` // how long publishing took

	Requests   int64            `json:"requests"`  // publish requests sent
	Accepted   int64            `json:"accepted"`  // events answered 202
	Errors     map[string]int64 `json:"errors"`    // failed requests by status ("transport" when none)
	Mismatch   int64            `json:"mismatch"`  // 202s whose deliveries count was not the webhook count
	IngestPS   float64          `json:"ingest_ps"` // accepted / publish_s
	IngestRaw  float64          `json:"ingest_raw"`
	PublishLat Latency          `json:"publish_latency"` // request → 202

	Expected      int64   `json:"expected"`         // (event, webhook) pairs
	Arrived       int64   `json:"arrived"`          // of those, arrived
	Arrivals      int64   `json:"arrivals"`         // all requests at the sink
	DeliverPS     float64 `json:"deliver_ps"`       // arrivals during publishing / publish_s
	DeliverRaw    float64 `json:"deliver_raw"`      // deliver_ps / raw
	DeliverDrain  float64 `json:"deliver_drain_ps"` // arrived / (publish_s + drain_s)
	E2E           Latency `json:"e2e"`              // scheduled or sent → first arrival
	DrainS        float64 `json:"drain_s"`          // end of publishing → last expected arrival
	Drained       bool    `json:"drained"`          // all expected arrived within the drain timeout
	Duplicates    int64   `json:"duplicates"`
	Missing       int64   `json:"missing"`
	Unexpected    int64   `json:"unexpected"`
	BadSignatures int64   `json:"bad_signatures"`
	NoTimestamp   int64   `json:"no_timestamp"`
	ScheduleLagMs float64 `json:"schedule_lag_max_ms,omitempty"` // open loop: worst start delay

	ServerCPU float64  `json:"server_cpu_s"`  // server CPU seconds during the scenario
	ServerRSS int64    `json:"server_rss_kb"` // server RSS at its end
	Charts    []string `json:"charts,omitempty"`
	Timeline  []Bucket `json:"timeline"`
	Err       string   `json:"error,omitempty"`
}

type runner struct {
	cfg   Config
	logf  func(string, ...any)
	sink  *Sink
	srv   *server
	api   *api
	runID string
	raw   float64 // current raw estimate for the ratios
}

// Run performs one benchmark run: it starts the sink, starts the server (or
// uses cfg.Target), measures the raw rate, runs the selected scenarios,
// re-measures the raw rate, stops the server, writes the charts and
// report.json to cfg.Out, and prints a summary and one JSON line to stdout.
// It returns the report even when a scenario failed (then with an error).
func Run(ctx context.Context, cfg Config, stdout io.Writer) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	names, _ := cfg.scenarioList()
	logw := cfg.Log
	if logw == nil {
		logw = io.Discard
	}
	var logMu sync.Mutex
	r := &runner{cfg: cfg, runID: randomHex(3)}
	r.logf = func(format string, args ...any) {
		logMu.Lock()
		defer logMu.Unlock()
		fmt.Fprintf(logw, "pancake-bench: "+format+"\n", args...)
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return nil, err
	}
	begin := time.Now()
	self0, _ := ReadProc(os.Getpid())
	rep := &Report{
		Tool: "pancake-bench", Format: 1, StartedAt: begin.UTC().Format(time.RFC3339),
		Machine: Machine{OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU(),
			GOMAXPROCS: runtime.GOMAXPROCS(0), Go: runtime.Version(), CPUModel: cpuModel()},
		Settings: Settings{DurationS: cfg.Duration.Seconds(), Concurrency: cfg.Concurrency, Rate: cfg.Rate,
			BatchSize: cfg.BatchSize, Fanout: cfg.Fanout, EventBytes: cfg.EventBytes,
			DrainTimeout: cfg.DrainTimeout.Seconds(), Verify: cfg.Verify,
			ReceiverDelayMS: float64(cfg.ReceiverDelay) / float64(time.Millisecond)},
		Raw: Raw{Clients: cfg.Concurrency},
	}

	sink, err := StartSink()
	if err != nil {
		return nil, fmt.Errorf("start sink: %w", err)
	}
	defer sink.Close()
	r.sink = sink

	if cfg.Target != "" {
		rep.Mode, rep.DB = "target", "unknown"
		r.srv = &server{base: strings.TrimRight(cfg.Target, "/"), admin: cfg.AdminToken, pid: cfg.ServerPID}
		if err := waitReady(ctx, r.srv.base, cfg.ReadyTimeout, nil); err != nil {
			return nil, err
		}
	} else {
		rep.Mode = "start"
		if cfg.Relay {
			rep.Mode = "relay"
		}
		r.srv, err = startServer(ctx, &cfg, r.logf)
		if err != nil {
			return nil, err
		}
		rep.DB = r.srv.kind
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			r.srv.stop(r.logf)
		}
	}
	defer stop()
	r.api = &api{base: r.srv.base, admin: r.srv.admin, hc: newClient(max(cfg.Concurrency*2, 256))}
	defer r.api.hc.CloseIdleConnections()

	var runErr error
	measureRaw := func(when string) {
		if cfg.RawDuration <= 0 || ctx.Err() != nil {
			return
		}
		rps, err := r.measureRaw(ctx, cfg.RawDuration)
		if err != nil {
			runErr = errors.Join(runErr, fmt.Errorf("raw baseline: %w", err))
			return
		}
		r.logf("raw HTTP rate %s: %.0f requests/s", when, rps)
		rep.Raw.Samples = append(rep.Raw.Samples, rps)
		rep.Raw.RPS = round1(Median(rep.Raw.Samples))
		r.raw = rep.Raw.RPS
	}

	measureRaw("before")
	for _, name := range names {
		if ctx.Err() != nil {
			break
		}
		r.logf("scenario %s: publishing for %v", name, cfg.Duration)
		res, err := r.runScenario(ctx, name)
		if err != nil {
			runErr = errors.Join(runErr, fmt.Errorf("scenario %s: %w", name, err))
			if res == nil {
				continue
			}
			res.Err = err.Error()
		}
		r.logf("scenario %s: %d events accepted, %d/%d deliveries arrived, drain %.2fs",
			name, res.Accepted, res.Arrived, res.Expected, res.DrainS)
		rep.Scenarios = append(rep.Scenarios, res)
	}
	measureRaw("after")
	// The ratios use the median of both raw measurements.
	for _, s := range rep.Scenarios {
		s.IngestRaw = ratio(s.IngestPS, rep.Raw.RPS)
		s.DeliverRaw = ratio(s.DeliverPS, rep.Raw.RPS)
	}

	stop()
	if r.srv.pid > 0 {
		st := r.srv.final
		rep.Server = &st
	}
	self1, _ := ReadProc(os.Getpid())
	rep.BenchCPU = round3(self1.CPUSeconds - self0.CPUSeconds)
	rep.Stray = sink.Stray()
	rep.WallSeconds = round3(time.Since(begin).Seconds())
	if ctx.Err() != nil {
		runErr = errors.Join(runErr, ctx.Err())
	}
	if runErr != nil {
		rep.Error = runErr.Error()
	}

	line, err := json.Marshal(rep)
	if err != nil {
		return rep, err
	}
	if err := os.WriteFile(filepath.Join(cfg.Out, "report.json"), append(line, '\n'), 0o644); err != nil {
		runErr = errors.Join(runErr, err)
	}
	printSummary(stdout, rep)
	fmt.Fprintf(stdout, "%s\n", line)
	return rep, runErr
}

// measureRaw POSTs delivery-like requests (the envelope, signed, with the
// Standard Webhooks headers) straight to the sink from cfg.Concurrency
// keep-alive clients for d, and returns the 2xx answers per second.
func (r *runner) measureRaw(ctx context.Context, d time.Duration) (float64, error) {
	shop := "raw-" + r.runID
	key := []byte("pancake-bench-raw-baseline-key!!")
	start := time.Now()
	rec := NewRecorder(start, 0)
	if r.cfg.Verify {
		_ = rec.SetSecret(0, "whsec_"+base64.StdEncoding.EncodeToString(key))
	}
	r.sink.Register(shop, rec)
	defer r.sink.Unregister(shop)
	url := r.sink.HookURL(shop, 0)
	hc := newClient(r.cfg.Concurrency * 2)
	defer hc.CloseIdleConnections()
	p := newPayload(shop, r.cfg.EventBytes)
	deadline := start.Add(d)
	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < r.cfg.Concurrency; w++ {
		wg.Go(func() {
			for n := int64(0); time.Now().Before(deadline) && ctx.Err() == nil; n++ {
				id := "evt_raw" + strconv.Itoa(w) + "x" + strconv.FormatInt(n, 10)
				now := time.Now()
				buf := p.envelope(make([]byte, 0, len(p.tail)+160), id, shop, now, now.UnixNano(), n)
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(buf))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("User-Agent", "PancakeWebhooks/bench")
				req.Header.Set("webhook-id", id)
				req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
				req.Header.Set("webhook-signature", sign(key, id, now.Unix(), buf))
				resp, err := hc.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode/100 == 2 {
					ok.Add(1)
				} else {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	el := time.Since(start)
	if ok.Load() == 0 {
		return 0, fmt.Errorf("no request succeeded (%d failed)", failed.Load())
	}
	if acc := rec.Account(nil, 0); acc.BadSig > 0 {
		return 0, fmt.Errorf("the sink rejected %d of its own signatures", acc.BadSig)
	}
	return round1(float64(ok.Load()) / el.Seconds()), nil
}

// pubStats collects what the publishers saw.
type pubStats struct {
	mu        sync.Mutex
	ids       []string
	requests  int64
	mismatch  int64
	errs      map[string]int64
	lat       []int64 // per request, ns
	perSecond []int64 // accepted events by the second of their answer
}

func (p *pubStats) addAccepted(sec int, n int64) {
	if sec < 0 {
		sec = 0
	}
	for len(p.perSecond) <= sec {
		p.perSecond = append(p.perSecond, 0)
	}
	p.perSecond[sec] += n
}

func (p *pubStats) merge(o *pubStats) {
	p.ids = append(p.ids, o.ids...)
	p.requests += o.requests
	p.mismatch += o.mismatch
	p.lat = append(p.lat, o.lat...)
	for k, v := range o.errs {
		if p.errs == nil {
			p.errs = map[string]int64{}
		}
		p.errs[k] += v
	}
	for i, v := range o.perSecond {
		p.addAccepted(i, v)
	}
}

type publishAnswer struct {
	EventID    string `json:"event_id"`
	Deliveries int    `json:"deliveries"`
}

// publisher sends publish requests for one scenario's shop.
type publisher struct {
	api     *api
	shop    string
	key     string
	hooks   int
	batch   int // 0: single publishes
	payload *payload
	start   time.Time
	seq     atomic.Int64
}

// send publishes one request (a single event or a batch) stamped with ts and
// records the outcome in st. The body is a new buffer each time: the
// transport may still hold the previous one when the answer is in.
func (p *publisher) send(ctx context.Context, ts time.Time, st *pubStats) {
	n := 1
	path := "/api/v1/shops/" + p.shop + "/events"
	if p.batch > 0 {
		n = p.batch
		path += "/batch"
	}
	seq := p.seq.Add(int64(n)) - int64(n)
	buf := make([]byte, 0, n*(len(p.payload.tail)+96)+32)
	if p.batch > 0 {
		buf = p.payload.batch(buf, ts.UnixNano(), seq, n)
	} else {
		buf = p.payload.event(buf, ts.UnixNano(), seq)
	}
	t0 := time.Now()
	status, body, err := p.api.do(ctx, http.MethodPost, path, p.key, buf)
	t1 := time.Now()
	st.mu.Lock()
	defer st.mu.Unlock()
	st.requests++
	if err != nil {
		if ctx.Err() == nil {
			if st.errs == nil {
				st.errs = map[string]int64{}
			}
			st.errs["transport"]++
		}
		return
	}
	if status != http.StatusAccepted {
		if st.errs == nil {
			st.errs = map[string]int64{}
		}
		st.errs[strconv.Itoa(status)]++
		return
	}
	st.lat = append(st.lat, t1.Sub(t0).Nanoseconds())
	var answers []publishAnswer
	if p.batch > 0 {
		var out struct {
			Results []publishAnswer `json:"results"`
		}
		if json.Unmarshal(body, &out) == nil {
			answers = out.Results
		}
	} else {
		var a publishAnswer
		if json.Unmarshal(body, &a) == nil {
			answers = []publishAnswer{a}
		}
	}
	good := int64(0)
	for _, a := range answers {
		if a.EventID == "" {
			continue
		}
		good++
		st.ids = append(st.ids, a.EventID)
		if a.Deliveries != p.hooks {
			st.mismatch++
		}
	}
	if good < int64(n) {
		if st.errs == nil {
			st.errs = map[string]int64{}
		}
		st.errs["202-unreadable"] += int64(n) - good
	}
	st.addAccepted(int(t1.Sub(p.start)/time.Second), good)
}

func (r *runner) runScenario(ctx context.Context, name string) (*ScenarioResult, error) {
	cfg := r.cfg
	res := &ScenarioResult{Name: name, Shop: "bench-" + r.runID + "-" + name, Webhooks: 1, Errors: map[string]int64{}}
	switch name {
	case ScenarioSingle:
		res.Clients = cfg.Concurrency
		res.Description = fmt.Sprintf("single publishes, %d clients, closed loop, 1 webhook", cfg.Concurrency)
	case ScenarioRate:
		res.Rate = cfg.Rate
		res.Description = fmt.Sprintf("open loop at %d events/s, 1 webhook", cfg.Rate)
	case ScenarioBatch:
		res.Clients, res.Batch = cfg.Concurrency, cfg.BatchSize
		res.Description = fmt.Sprintf("batches of %d, %d clients, closed loop, 1 webhook", cfg.BatchSize, cfg.Concurrency)
	case ScenarioFanout:
		res.Clients, res.Webhooks = cfg.Concurrency, cfg.Fanout
		res.Description = fmt.Sprintf("single publishes, %d clients, closed loop, %d webhooks", cfg.Concurrency, cfg.Fanout)
	}

	// Setup: a fresh shop and its webhooks pointing at the sink.
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	key, err := r.api.createShop(sctx, res.Shop)
	if err != nil {
		return nil, err
	}
	secrets := make([]string, res.Webhooks)
	for i := range secrets {
		secrets[i], err = r.api.createWebhook(sctx, res.Shop, key, r.sink.HookURL(res.Shop, i))
		if err != nil {
			return nil, err
		}
	}

	cpu0 := r.srv.stats()
	// The timeline keeps at most this many arrivals (a memory bound).
	maxArr := min(cfg.MaxEvents*res.Webhooks*2, 20_000_000)
	start := time.Now()
	rec := NewRecorder(start, maxArr)
	rec.Delay = cfg.ReceiverDelay
	if cfg.Verify {
		for i, s := range secrets {
			if s == "" {
				return nil, fmt.Errorf("webhook %d was created without a secret_key: use --verify=false", i)
			}
			if err := rec.SetSecret(i, s); err != nil {
				return nil, fmt.Errorf("webhook %d: bad secret_key: %w", i, err)
			}
		}
	}
	r.sink.Register(res.Shop, rec)
	defer r.sink.Unregister(res.Shop)

	pub := &publisher{api: r.api, shop: res.Shop, key: key, hooks: res.Webhooks,
		batch: res.Batch, payload: newPayload(res.Shop, cfg.EventBytes), start: start}
	all := &pubStats{}
	if name == ScenarioRate {
		n := min(int(float64(cfg.Rate)*cfg.Duration.Seconds()), cfg.MaxEvents)
		interval := time.Second / time.Duration(cfg.Rate)
		maxInFlight := max(cfg.Concurrency, 256)
		_, lag := OpenLoop(ctx, start, interval, n, maxInFlight, func(k int, due time.Time) {
			pub.send(ctx, due, all)
		})
		res.ScheduleLagMs = ms(lag.Nanoseconds())
	} else {
		perReq := int64(max(res.Batch, 1))
		budget := atomic.Int64{}
		budget.Store(int64(cfg.MaxEvents))
		deadline := start.Add(cfg.Duration)
		stats := make([]*pubStats, cfg.Concurrency)
		var wg sync.WaitGroup
		for w := range stats {
			st := &pubStats{}
			stats[w] = st
			wg.Go(func() {
				for time.Now().Before(deadline) && ctx.Err() == nil && budget.Add(-perReq) >= 0 {
					pub.send(ctx, time.Now(), st)
				}
			})
		}
		wg.Wait()
		for _, st := range stats {
			all.merge(st)
		}
	}
	pubEnd := time.Now()
	pubDur := pubEnd.Sub(start)
	res.PublishS = round3(pubDur.Seconds())
	res.Requests, res.Accepted, res.Mismatch = all.requests, int64(len(all.ids)), all.mismatch
	for k, v := range all.errs {
		res.Errors[k] = v
	}
	res.IngestPS = perSecond(res.Accepted, pubDur)
	res.PublishLat = Summarize(all.lat)

	// Drain: wait until every expected pair arrived, or the timeout.
	expected := res.Accepted * int64(res.Webhooks)
	drainDeadline := pubEnd.Add(cfg.DrainTimeout)
	var acc Accounting
	lastChecked := int64(-1)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if d := rec.Distinct(); d >= expected && d != lastChecked {
			lastChecked = d
			if acc = rec.Account(all.ids, res.Webhooks); acc.Missing == 0 {
				res.Drained = true
				break
			}
		}
		if time.Now().After(drainDeadline) || ctx.Err() != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
	}
	if res.Drained {
		// A short grace period, so that a duplicate right behind is counted.
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
	acc = rec.Account(all.ids, res.Webhooks)
	cpu1 := r.srv.stats()
	res.ServerCPU = round3(cpu1.CPUSeconds - cpu0.CPUSeconds)
	res.ServerRSS = cpu1.RSSKB

	res.Expected, res.Arrived, res.Arrivals = acc.Expected, acc.Arrived, acc.Total
	res.Duplicates, res.Missing, res.Unexpected = acc.Duplicates, acc.Missing, acc.Unexpected
	res.BadSignatures, res.NoTimestamp = acc.BadSig, acc.NoTS
	pubEndOff := pubEnd.Sub(start).Nanoseconds()
	if res.Drained {
		res.DrainS = round3(float64(max(acc.LastAt-pubEndOff, 0)) / 1e9)
	} else {
		res.DrainS = round3(time.Since(pubEnd).Seconds())
	}
	arr := rec.snapshot()
	var steady int64
	lats := make([]int64, 0, len(arr))
	for _, a := range arr {
		if a.at <= pubEndOff {
			steady++
		}
		if !a.dup && a.lat >= 0 {
			lats = append(lats, a.lat)
		}
	}
	res.DeliverPS = perSecond(steady, pubDur)
	res.DeliverDrain = perSecond(res.Arrived, pubDur+time.Duration(res.DrainS*1e9))
	res.E2E = Summarize(lats)
	res.Timeline = timeline(all.perSecond, arr, time.Since(start).Nanoseconds())
	res.IngestRaw = ratio(res.IngestPS, r.raw)
	res.DeliverRaw = ratio(res.DeliverPS, r.raw)

	charts, err := writeCharts(r.cfg.Out, res)
	res.Charts = charts
	var problems []error
	if err != nil {
		problems = append(problems, err)
	}
	if res.Accepted == 0 {
		problems = append(problems, fmt.Errorf("no event was accepted (errors: %v)", res.Errors))
	}
	return res, errors.Join(problems...)
}

// writeCharts draws the latency and throughput charts of one scenario.
func writeCharts(dir string, res *ScenarioResult) ([]string, error) {
	// Each point sits in the middle of its bucket; counts become rates over
	// the bucket's width (the last one is usually a part of a second).
	var xs, p50, p99, pubs, dels []float64
	for _, b := range res.Timeline {
		w := b.Width
		if w <= 0 {
			w = 1
		}
		xs = append(xs, float64(b.T)+w/2)
		p50 = append(p50, b.P50ms)
		p99 = append(p99, b.P99ms)
		pubs = append(pubs, float64(b.Published)/w)
		dels = append(dels, float64(b.Delivered)/w)
	}
	charts := []struct {
		file  string
		chart Chart
	}{
		{res.Name + "-latency.svg", Chart{
			Title:    res.Name + ": end-to-end latency (publish → arrival), per second",
			Subtitle: res.Description,
			XLabel:   "seconds since the start", YLabel: "latency (ms)",
			Series: []Series{{Name: "p50", X: xs, Y: p50}, {Name: "p99", X: xs, Y: p99}},
			Marker: res.PublishS, MarkerLabel: "publishing ends",
		}},
		{res.Name + "-throughput.svg", Chart{
			Title:    res.Name + ": throughput, per second",
			Subtitle: res.Description,
			XLabel:   "seconds since the start", YLabel: "events/s",
			Series: []Series{{Name: "publishes/s (202)", X: xs, Y: pubs}, {Name: "deliveries/s (sink)", X: xs, Y: dels}},
			Marker: res.PublishS, MarkerLabel: "publishing ends",
		}},
	}
	var paths []string
	var errs []error
	for _, c := range charts {
		p := filepath.Join(dir, c.file)
		f, err := os.Create(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		err = c.chart.WriteSVG(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		paths = append(paths, p)
	}
	return paths, errors.Join(errs...)
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
