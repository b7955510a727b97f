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
	return cmd
}
