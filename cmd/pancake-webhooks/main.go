// Command pancake-webhooks serves the Pancake Webhooks API and delivery
// engine, administers its database, and drives the API from the shell.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		// The first signal starts a graceful stop; a second one ends the
		// process at once (what is leased is sent again after its lease).
		<-ctx.Done()
		stop()
	}()
	os.Exit(Run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}
