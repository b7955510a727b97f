package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// shortConfig is a configuration that runs every scenario in about a second.
func shortConfig(t *testing.T) Config {
	c := DefaultConfig()
	c.Duration = 300 * time.Millisecond
	c.RawDuration = 150 * time.Millisecond
	c.Concurrency = 4
	c.Rate = 200
	c.BatchSize = 10
	c.Fanout = 3
	c.DrainTimeout = 15 * time.Second
	c.MaxEvents = 3000
	c.Out = t.TempDir()
	return c
}

// jsonLine returns the one line of out that is a JSON object, decoded.
func jsonLine(t *testing.T, out string) *Report {
	t.Helper()
	var found *Report
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "{") {
			continue
		}
		if found != nil {
			t.Fatalf("more than one JSON line in the output")
		}
		found = new(Report)
		if err := json.Unmarshal([]byte(line), found); err != nil {
			t.Fatalf("JSON line does not parse: %v", err)
		}
	}
	if found == nil {
		t.Fatalf("no JSON line in the output:\n%s", out)
	}
	return found
}

func TestRunAgainstFakeServer(t *testing.T) {
	f := newFakeServer("admin-secret")
	ts := httptest.NewServer(f.handler())
	defer f.close()
	defer ts.Close()

	cfg := shortConfig(t)
	cfg.Target, cfg.AdminToken = ts.URL, "admin-secret"
	var out, logs bytes.Buffer
	cfg.Log = &logs
	rep, err := Run(context.Background(), cfg, &out)
	if err != nil {
		t.Fatalf("Run: %v\nlog:\n%s\nout:\n%s", err, logs.String(), out.String())
	}
	t.Logf("output:\n%s", out.String())
	if len(rep.Scenarios) != len(AllScenarios) {
		t.Fatalf("got %d scenarios, want %d", len(rep.Scenarios), len(AllScenarios))
	}
	if len(rep.Raw.Samples) != 2 || rep.Raw.RPS <= 0 {
		t.Errorf("raw = %+v, want two samples and a rate", rep.Raw)
	}
	for i, s := range rep.Scenarios {
		if s.Name != AllScenarios[i] {
			t.Errorf("scenario %d is %s, want %s", i, s.Name, AllScenarios[i])
		}
		wantHooks := 1
		if s.Name == ScenarioFanout {
			wantHooks = cfg.Fanout
		}
		if s.Webhooks != wantHooks {
			t.Errorf("%s: %d webhooks, want %d", s.Name, s.Webhooks, wantHooks)
		}
		if s.Accepted == 0 || s.IngestPS <= 0 || s.IngestRaw <= 0 {
			t.Errorf("%s: accepted %d, ingest %.1f/s, ×raw %.3f: want all > 0", s.Name, s.Accepted, s.IngestPS, s.IngestRaw)
		}
		if s.Expected != s.Accepted*int64(wantHooks) || s.Arrived != s.Expected {
			t.Errorf("%s: expected %d, arrived %d, accepted %d × %d hooks", s.Name, s.Expected, s.Arrived, s.Accepted, wantHooks)
		}
		if !s.Drained || s.Missing != 0 || s.Duplicates != 0 || s.Unexpected != 0 || s.BadSignatures != 0 || s.NoTimestamp != 0 || s.Mismatch != 0 {
			t.Errorf("%s: drained %v missing %d dup %d unexpected %d badsig %d nots %d mismatch %d",
				s.Name, s.Drained, s.Missing, s.Duplicates, s.Unexpected, s.BadSignatures, s.NoTimestamp, s.Mismatch)
		}
		if len(s.Errors) != 0 {
			t.Errorf("%s: errors %v", s.Name, s.Errors)
		}
		if s.E2E.N != int(s.Arrived) || s.E2E.P50ms <= 0 || s.E2E.P99ms < s.E2E.P50ms {
			t.Errorf("%s: e2e %+v with %d arrived", s.Name, s.E2E, s.Arrived)
		}
		if s.Name == ScenarioBatch && s.Requests*int64(cfg.BatchSize) != s.Accepted {
			t.Errorf("batch: %d requests for %d events", s.Requests, s.Accepted)
		}
		if s.Name == ScenarioRate {
			// 200/s for 0.3 s is 60 events, all scheduled.
			if s.Accepted != 60 {
				t.Errorf("rate: %d events accepted, want 60", s.Accepted)
			}
		}
		var pubs, dels int64
		for _, b := range s.Timeline {
			pubs += b.Published
			dels += b.Delivered
		}
		if pubs != s.Accepted || dels != s.Arrivals {
			t.Errorf("%s: timeline has %d publishes and %d deliveries, want %d and %d", s.Name, pubs, dels, s.Accepted, s.Arrivals)
		}
		if len(s.Charts) != 2 {
			t.Errorf("%s: charts %v", s.Name, s.Charts)
		}
		for _, c := range s.Charts {
			b, err := os.ReadFile(c)
			if err != nil {
				t.Fatal(err)
			}
			checkXML(t, b)
		}
	}
	if rep.Server != nil {
		t.Errorf("server figures %+v without a pid", rep.Server)
	}

	// The output: a table naming every scenario, then the one JSON line.
	printed := jsonLine(t, out.String())
	if len(printed.Scenarios) != len(rep.Scenarios) || printed.Scenarios[0].Accepted != rep.Scenarios[0].Accepted {
		t.Errorf("the JSON line does not match the report")
	}
	for _, name := range AllScenarios {
		if !strings.Contains(out.String(), "\n"+name+" ") && !strings.Contains(out.String(), " "+name+" ") {
			t.Errorf("summary does not mention %s:\n%s", name, out.String())
		}
	}
	if _, err := os.Stat(filepath.Join(cfg.Out, "report.json")); err != nil {
		t.Errorf("report.json: %v", err)
	}
}

// TestRunCountsLossAndDuplicates runs one scenario against a fake server that
// loses some deliveries and repeats others: the report must say exactly how
// many, and give up draining at the timeout.
func TestRunCountsLossAndDuplicates(t *testing.T) {
	f := newFakeServer("adm")
	f.dropEvery, f.dupEvery = 5, 7
	ts := httptest.NewServer(f.handler())
	defer f.close()
	defer ts.Close()

	cfg := shortConfig(t)
	cfg.Target, cfg.AdminToken = ts.URL, "adm"
	cfg.Scenarios = ScenarioSingle
	cfg.RawDuration = 0
	cfg.DrainTimeout = 700 * time.Millisecond
	var out bytes.Buffer
	start := time.Now()
	rep, err := Run(context.Background(), cfg, &out)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if el := time.Since(start); el > 20*time.Second {
		t.Errorf("the run took %v: the drain timeout did not bound it", el)
	}
	s := rep.Scenarios[0]
	// Every job was processed by the time the sink had all it will get; wait
	// for the workers so that the counters are final.
	if s.Drained {
		t.Errorf("drained despite %d lost deliveries", f.drops.Load())
	}
	if s.Missing != f.drops.Load() || s.Missing == 0 {
		t.Errorf("missing %d, the fake dropped %d", s.Missing, f.drops.Load())
	}
	if s.Duplicates != f.dups.Load() || s.Duplicates == 0 {
		t.Errorf("duplicates %d, the fake repeated %d", s.Duplicates, f.dups.Load())
	}
	if s.Arrived+s.Missing != s.Expected {
		t.Errorf("arrived %d + missing %d != expected %d", s.Arrived, s.Missing, s.Expected)
	}
	if !strings.Contains(out.String(), "NOT DRAINED") {
		t.Errorf("the summary does not say the drain timed out:\n%s", out.String())
	}
}

// TestRunStartsServer runs the start mode with this test binary acting as the
// server (see TestMain): it is started with the documented arguments, waited
// for, measured from /proc and stopped.
func TestRunStartsServer(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Skip(err)
	}
	t.Setenv(fakeEnv, "1")
	cfg := shortConfig(t)
	cfg.ServerBin = exe
	cfg.Scenarios = ScenarioSingle + "," + ScenarioBatch
	cfg.RawDuration = 0
	var out bytes.Buffer
	rep, err := Run(context.Background(), cfg, &out)
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(cfg.Out, "server.log"))
		t.Fatalf("Run: %v\nserver log:\n%s", err, log)
	}
	if rep.Mode != "start" || rep.DB != "sqlite" {
		t.Errorf("mode %q db %q", rep.Mode, rep.DB)
	}
	if len(rep.Scenarios) != 2 || rep.Scenarios[0].Missing != 0 || rep.Scenarios[1].Missing != 0 {
		t.Fatalf("scenarios: %+v", rep.Scenarios)
	}
	if _, err := os.Stat("/proc/self/stat"); err == nil {
		if rep.Server == nil || rep.Server.PeakRSSKB <= 0 || rep.Server.CPUSeconds <= 0 {
			t.Errorf("server figures %+v", rep.Server)
		}
	}
	if rep.Raw.RPS != 0 || rep.Scenarios[0].IngestRaw != 0 {
		t.Errorf("ratios without a raw measurement: %+v", rep.Raw)
	}
}

// TestRunAgainstRelay runs --relay with this test binary as the binary
// that holds the relay (see TestMain): the real Relay is started as
// "bench relay --addr ...", signs every delivery as the server does (the
// sink verifies each), and the report says it is the relay.
func TestRunAgainstRelay(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Skip(err)
	}
	t.Setenv(fakeEnv, "1")
	t.Run("stores nothing", func(t *testing.T) { runAgainstRelay(t, exe, false) })
	t.Run("journal", func(t *testing.T) { runAgainstRelay(t, exe, true) })
}

func runAgainstRelay(t *testing.T, exe string, journal bool) {
	cfg := shortConfig(t)
	cfg.ServerBin, cfg.Relay, cfg.RelayJournal = exe, true, journal
	cfg.Scenarios = ScenarioSingle + "," + ScenarioBatch + "," + ScenarioFanout
	var out bytes.Buffer
	rep, err := Run(context.Background(), cfg, &out)
	log, _ := os.ReadFile(filepath.Join(cfg.Out, "server.log"))
	if err != nil {
		t.Fatalf("Run: %v\nrelay log:\n%s", err, log)
	}
	db, says := "none", "a relay that stores nothing"
	if journal {
		db, says = "journal", "a relay that only journals each event"
	}
	if rep.Mode != "relay" || rep.DB != db || !strings.Contains(out.String(), says) {
		t.Errorf("mode %q db %q; summary:\n%s", rep.Mode, rep.DB, out.String())
	}
	if len(rep.Scenarios) != 3 {
		t.Fatalf("scenarios: %+v", rep.Scenarios)
	}
	for _, s := range rep.Scenarios {
		if s.Accepted == 0 || s.Arrived != s.Expected || s.Missing != 0 || s.Duplicates != 0 || s.BadSignatures != 0 || s.NoTimestamp != 0 || s.Mismatch != 0 || len(s.Errors) != 0 {
			t.Errorf("%s: accepted %d arrived %d of %d, missing %d dup %d badsig %d nots %d mismatch %d errors %v",
				s.Name, s.Accepted, s.Arrived, s.Expected, s.Missing, s.Duplicates, s.BadSignatures, s.NoTimestamp, s.Mismatch, s.Errors)
		}
	}
	if !strings.Contains(string(log), "relay: stopped; 0 attempts failed") {
		t.Errorf("the relay did not stop cleanly, or some attempts failed:\n%s", log)
	}
	if !journal {
		return
	}
	// Every event accepted was journaled, and every attempt's result.
	var accepted, arrived int64
	for _, s := range rep.Scenarios {
		accepted += s.Accepted
		arrived += s.Arrived
	}
	var ev, res, syncs int64
	for _, l := range strings.Split(string(log), "\n") {
		if _, err := fmt.Sscanf(l, "relay: journaled %d events and %d attempt results in %d fsyncs", &ev, &res, &syncs); err == nil {
			break
		}
	}
	if ev != accepted || res != arrived || syncs == 0 {
		t.Errorf("journaled %d events and %d results in %d fsyncs; %d accepted, %d arrived\n%s", ev, res, syncs, accepted, arrived, log)
	}
}

func TestConfigValidate(t *testing.T) {
	bad := []func(*Config){
		func(c *Config) { c.Target, c.AdminToken = "http://10.0.0.1:8080", "x" },
		func(c *Config) { c.Target, c.AdminToken = "http://example.com", "x" },
		func(c *Config) { c.Target = "http://127.0.0.1:8080" }, // no admin token
		func(c *Config) { c.Target, c.AdminToken = "https://127.0.0.1:8080", "x" },
		func(c *Config) { c.Scenarios = "single,nope" },
		func(c *Config) { c.BatchSize = 501 },
		func(c *Config) { c.Concurrency = 0 },
		func(c *Config) { c.Duration = 0 },
		func(c *Config) { c.ReceiverDelay = -time.Millisecond },
		func(c *Config) { c.ReceiverDelay = time.Minute },
		func(c *Config) { c.Relay, c.Target, c.AdminToken = true, "http://127.0.0.1:8080", "x" },
		func(c *Config) { c.Relay, c.DB = true, "sqlite:/tmp/x.db" },
		func(c *Config) { c.Relay, c.ServerArgs = true, "--workers 8" },
		func(c *Config) { c.RelayJournal = true },
	}
	for i, mod := range bad {
		c := DefaultConfig()
		mod(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("case %d: no error for %+v", i, c)
		}
	}
	c := DefaultConfig()
	c.Target, c.AdminToken = "http://localhost:8080", "x"
	c.Scenarios = "fanout, single"
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.scenarioList(); strings.Join(got, ",") != "single,fanout" {
		t.Errorf("scenarios in run order: %v", got)
	}
}

func checkXML(t *testing.T, b []byte) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(b))
	for {
		_, err := d.Token()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatalf("invalid XML: %v\n%s", err, b)
		}
	}
}
