package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/pancake-pos/pancake-webhooks/bench"
)

// newBenchCmd is "pancake-webhooks bench": the load benchmark of package
// bench (the same as cmd/pancake-bench), starting this very binary as the
// server under test unless --server-bin or --target says otherwise.
func newBenchCmd() *cobra.Command {
	gfs := flag.NewFlagSet("bench", flag.ContinueOnError)
	cfg := bench.RegisterFlags(gfs)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Run the load benchmark against a server this binary starts (or a running one)",
		Long: `bench measures the raw HTTP rate of the machine, then publishes events to a
server in a few scenarios (single, rate, batch, fanout), receives the deliveries
at its own sink on loopback, and reports ingest and delivery rates as ratios to
the raw rate, end-to-end latency, drain time, duplicates and missing
deliveries, and the server's RSS and CPU: a table, one JSON line, and SVG charts
with report.json and server.log in --out.

By default it starts this binary ("serve" on a free loopback port, SQLite in a
temporary directory). Its flags have no environment variables.`,
		Example: `  pancake-webhooks bench --duration 5s
  pancake-webhooks bench --scenarios single,rate --rate 500 --duration 10s
  pancake-webhooks bench --db 'postgres://postgres@127.0.0.1:5432/test?sslmode=disable&search_path=bench'
  pancake-webhooks bench --target http://127.0.0.1:8080 --admin-token T --server-pid 1234`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c := *cfg
			if c.ServerBin == "" && c.Target == "" {
				exe, err := os.Executable()
				if err != nil {
					return fmt.Errorf("cannot find this binary to start it as the server (give --server-bin): %w", err)
				}
				c.ServerBin = exe
			}
			if err := c.Validate(); err != nil {
				return usageErr("%v", err)
			}
			c.Log = cmd.ErrOrStderr()
			_, err := bench.Run(cmd.Context(), c, cmd.OutOrStdout())
			return err
		},
	}
	f := cmd.Flags()
	f.AddGoFlagSet(gfs)
	if sb := f.Lookup("server-bin"); sb != nil {
		sb.Usage = "server binary to start (default: this pancake-webhooks binary)"
	}
	gfs.VisitAll(func(gf *flag.Flag) { noEnv(f, gf.Name) })
	cmd.AddCommand(newBenchRelayCmd())
	return cmd
}

// newBenchRelayCmd is "pancake-webhooks bench relay", the process
// "bench --relay" starts in place of "serve" (see bench.Relay).
func newBenchRelayCmd() *cobra.Command {
	var (
		addr           string
		workers, queue int
		journal        string
	)
	cmd := &cobra.Command{
		Use:   "relay --addr 127.0.0.1:PORT",
		Short: "Serve the benchmark's relay: a webhook server that stores nothing (bench --relay starts it)",
		Long: `relay answers the calls the benchmark makes and forwards each event published
to the shop's webhooks: it builds the envelope, answers 202, then signs and POSTs
it, as the server does, but stores, retries and records nothing and checks no
key. "bench --relay" measures it as it measures the server: the machine's limit
for a server whose own work cost nothing. With --journal it also appends each
event to that file, fsynced before the 202, and each attempt's result after it
("bench --relay --relay-journal": the limit for a server durable at the 202);
the file takes ~1.3 KB of disk an event (1 KiB events). It listens on loopback only and runs
until SIGINT or SIGTERM.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if workers < 1 || workers > 10000 || queue < 1 || queue > 1<<24 {
				return usageErr("--workers must be 1..10000 and --queue 1..16777216")
			}
			logf := func(format string, args ...any) { fmt.Fprintf(cmd.ErrOrStderr(), format+"\n", args...) }
			return bench.ServeRelay(cmd.Context(), addr, bench.RelayOptions{Workers: workers, Queue: queue, Journal: journal}, logf)
		},
	}
	f := cmd.Flags()
	f.StringVar(&addr, "addr", "127.0.0.1:8090", "loopback address to listen on")
	f.IntVar(&workers, "workers", bench.DefaultRelayWorkers, "deliveries in flight at once")
	f.IntVar(&queue, "queue", bench.DefaultRelayQueue, "deliveries waiting at most; a publish waits for room")
	f.StringVar(&journal, "journal", "", "a file to create that each event is appended to, fsynced before the 202, and each attempt's result after it (bench --relay-journal)")
	noEnvFlags(f)
	return cmd
}
