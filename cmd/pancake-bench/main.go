// Command pancake-bench is the load benchmark of Pancake Webhooks; see
// package bench. Build the server first, then for example:
//
//	go build -o /tmp/pw ./cmd/pancake-webhooks
//	go run ./cmd/pancake-bench --server-bin /tmp/pw --duration 10s
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/pancake-pos/pancake-webhooks/bench"
)

func main() {
	fs := flag.NewFlagSet("pancake-bench", flag.ExitOnError)
	cfg := bench.RegisterFlags(fs)
	_ = fs.Parse(os.Args[1:])
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "pancake-bench: unexpected arguments %q\n", fs.Args())
		os.Exit(2)
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "pancake-bench:", err)
		os.Exit(2)
	}
	cfg.Log = os.Stderr
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if _, err := bench.Run(ctx, *cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "pancake-bench:", err)
		os.Exit(1)
	}
}
