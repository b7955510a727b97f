package bench

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Scenario names, in the order they run.
const (
	ScenarioSingle = "single" // single publishes, N clients, closed loop, fan-out 1
	ScenarioRate   = "rate"   // open loop at a fixed rate, fan-out 1: e2e latency
	ScenarioBatch  = "batch"  // batches, N clients, closed loop, fan-out 1
	ScenarioFanout = "fanout" // single publishes, N clients, fan-out to many webhooks
)

// AllScenarios lists every scenario in run order.
var AllScenarios = []string{ScenarioSingle, ScenarioRate, ScenarioBatch, ScenarioFanout}

// Config is everything a run needs. DefaultConfig gives the defaults and
// RegisterFlags binds every field to a flag.
type Config struct {
	// The server: started from ServerBin (Target empty), or Target.
	ServerBin  string // default: pancake-webhooks next to os.Executable(), else $PATH
	ServerArgs string // extra arguments for "serve", split on spaces
	DB         string // --db of the started server; default sqlite:<tmpdir>/bench.db
	Target     string // base URL of a running server (loopback only)
	AdminToken string // its admin token (Target mode)
	ServerPID  int    // its pid, for RSS and CPU figures (Target mode)
	// Relay starts ServerBin's storage-free relay (see Relay) instead of
	// its server: the machine's limit for what an event's two HTTP
	// exchanges cost, to read the server's figures against.
	Relay bool
	// RelayJournal has the relay journal each event, fsynced before the
	// 202, and each attempt's result (RelayOptions.Journal): the limit for
	// a server durable at the 202. It needs Relay.
	RelayJournal bool

	Scenarios    string        // comma-separated names, or "all"
	Duration     time.Duration // publishing time per scenario
	Concurrency  int           // clients of the closed-loop scenarios and of the raw baseline
	Rate         int           // events/s of the open-loop scenario
	BatchSize    int           // events per batch
	Fanout       int           // webhooks of the fan-out scenario
	EventBytes   int           // approximate size of an event's data
	RawDuration  time.Duration // length of each raw baseline measurement
	DrainTimeout time.Duration // how long to wait for the outstanding deliveries
	ReadyTimeout time.Duration // how long to wait for a started server's /readyz
	MaxEvents    int           // bound on the events published per scenario
	Verify       bool          // verify every arrival's signature
	// ReceiverDelay is how long the sink takes to answer each delivery of
	// a scenario, as a receiver doing its own work would (the raw baseline
	// is answered at once).
	ReceiverDelay time.Duration
	Out           string // directory for the charts, report.json and server.log

	// Log receives progress lines; nil means io.Discard. Not a flag.
	Log io.Writer
}

// DefaultConfig returns the defaults of every setting.
func DefaultConfig() Config {
	return Config{
		Scenarios:    "all",
		Duration:     10 * time.Second,
		Concurrency:  32,
		Rate:         500,
		BatchSize:    100,
		Fanout:       50,
		EventBytes:   1024,
		RawDuration:  3 * time.Second,
		DrainTimeout: 60 * time.Second,
		ReadyTimeout: 30 * time.Second,
		MaxEvents:    2_000_000,
		Verify:       true,
		Out:          "bench-out",
	}
}

// RegisterFlags defines the benchmark's flags on fs, with the defaults of
// DefaultConfig, and returns the Config they fill in when fs is parsed. A
// cobra command can use them through pflag's FlagSet.AddGoFlagSet.
func RegisterFlags(fs *flag.FlagSet) *Config {
	c := DefaultConfig()
	fs.StringVar(&c.ServerBin, "server-bin", c.ServerBin, "server binary to start (default: pancake-webhooks next to this program, else on $PATH)")
	fs.StringVar(&c.ServerArgs, "server-args", c.ServerArgs, "extra arguments for the started server's serve command, space-separated")
	fs.StringVar(&c.DB, "db", c.DB, "--db of the started server (default sqlite:<tmpdir>/bench.db; a postgres:// URL for PostgreSQL)")
	fs.StringVar(&c.Target, "target", c.Target, "base URL of an already running server on loopback, e.g. http://127.0.0.1:8080 (then nothing is started)")
	fs.StringVar(&c.AdminToken, "admin-token", c.AdminToken, "admin token of the --target server")
	fs.IntVar(&c.ServerPID, "server-pid", c.ServerPID, "pid of the --target server, to report its RSS and CPU")
	fs.BoolVar(&c.Relay, "relay", c.Relay, "start a relay that stores nothing instead of the server: it only builds, signs and forwards each event, so its rates are the machine's limit for a server whose own work cost nothing")
	fs.BoolVar(&c.RelayJournal, "relay-journal", c.RelayJournal, "with --relay: the relay also appends each event to a file, fsynced before the 202, and each attempt's result after it, so its rates are the machine's limit for a server durable at the 202 with no index to keep")
	fs.StringVar(&c.Scenarios, "scenarios", c.Scenarios, "comma-separated scenarios to run: "+strings.Join(AllScenarios, ",")+", or all")
	fs.DurationVar(&c.Duration, "duration", c.Duration, "publishing time of each scenario")
	fs.IntVar(&c.Concurrency, "concurrency", c.Concurrency, "concurrent clients (closed-loop scenarios and the raw baseline)")
	fs.IntVar(&c.Rate, "rate", c.Rate, "events per second of the open-loop scenario")
	fs.IntVar(&c.BatchSize, "batch-size", c.BatchSize, "events per batch in the batch scenario")
	fs.IntVar(&c.Fanout, "fanout", c.Fanout, "webhooks per shop in the fanout scenario")
	fs.IntVar(&c.EventBytes, "event-bytes", c.EventBytes, "approximate size in bytes of each event's data")
	fs.DurationVar(&c.RawDuration, "raw-duration", c.RawDuration, "length of each raw HTTP baseline measurement (one before, one after the scenarios)")
	fs.DurationVar(&c.DrainTimeout, "drain-timeout", c.DrainTimeout, "how long to wait after publishing for the outstanding deliveries")
	fs.DurationVar(&c.ReadyTimeout, "ready-timeout", c.ReadyTimeout, "how long to wait for the started server to be ready")
	fs.IntVar(&c.MaxEvents, "max-events", c.MaxEvents, "at most this many events published per scenario")
	fs.BoolVar(&c.Verify, "verify", c.Verify, "verify the Standard Webhooks signature of every delivery")
	fs.DurationVar(&c.ReceiverDelay, "receiver-delay", c.ReceiverDelay, "how long the sink takes to answer each delivery, like a receiver doing its own work (the raw baseline is answered at once)")
	fs.StringVar(&c.Out, "out", c.Out, "directory for the SVG charts, report.json and server.log")
	return &c
}

// scenarioList returns the selected scenarios in run order.
func (c *Config) scenarioList() ([]string, error) {
	if strings.TrimSpace(c.Scenarios) == "" || c.Scenarios == "all" {
		return AllScenarios, nil
	}
	want := map[string]bool{}
	for _, s := range strings.Split(c.Scenarios, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if s != "all" && !slices.Contains(AllScenarios, s) {
			return nil, fmt.Errorf("unknown scenario %q (want %s or all)", s, strings.Join(AllScenarios, ","))
		}
		want[s] = true
	}
	if want["all"] {
		return AllScenarios, nil
	}
	var out []string
	for _, s := range AllScenarios {
		if want[s] {
			out = append(out, s)
		}
	}
	return out, nil
}

// Validate reports a setting out of range, naming its flag; Run calls it
// first, and the commands call it before Run to tell a usage error apart.
func (c *Config) Validate() error {
	switch {
	case c.Duration <= 0 || c.Duration > 24*time.Hour:
		return errors.New("--duration must be positive and at most 24h")
	case c.Concurrency < 1 || c.Concurrency > 10000:
		return errors.New("--concurrency must be 1..10000")
	case c.Rate < 1 || c.Rate > 1_000_000:
		return errors.New("--rate must be 1..1000000")
	case c.BatchSize < 1 || c.BatchSize > 500:
		return errors.New("--batch-size must be 1..500 (the contract's limit)")
	case c.Fanout < 1 || c.Fanout > 1000:
		return errors.New("--fanout must be 1..1000")
	case c.EventBytes < 0 || c.EventBytes > 200_000:
		return errors.New("--event-bytes must be 0..200000")
	case c.RawDuration < 0 || c.DrainTimeout < 0 || c.ReadyTimeout <= 0:
		return errors.New("--raw-duration and --drain-timeout must not be negative, --ready-timeout must be positive")
	case c.MaxEvents < 1:
		return errors.New("--max-events must be positive")
	case c.ReceiverDelay < 0 || c.ReceiverDelay > 10*time.Second:
		return errors.New("--receiver-delay must be 0..10s (the server gives up on an attempt after 15 s by default)")
	case c.Out == "":
		return errors.New("--out must not be empty")
	}
	if c.RelayJournal && !c.Relay {
		return errors.New("--relay-journal needs --relay")
	}
	if c.Relay && (c.Target != "" || c.DB != "" || c.ServerArgs != "") {
		return errors.New("--relay starts its own relay: it takes no --target, --db or --server-args")
	}
	if c.Target != "" {
		u, err := url.Parse(c.Target)
		if err != nil || u.Scheme != "http" || u.Host == "" {
			return fmt.Errorf("--target must be an http:// URL, got %q", c.Target)
		}
		if !isLoopbackHost(u.Hostname()) {
			return fmt.Errorf("--target must be on loopback (the sink listens on 127.0.0.1), got %q", u.Hostname())
		}
		if c.AdminToken == "" {
			return errors.New("--target needs --admin-token")
		}
	}
	_, err := c.scenarioList()
	return err
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
