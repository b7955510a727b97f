package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// version is set at build time with -ldflags "-X main.version=…"; else the
// module version from the build info, else devVersion.
var version = ""

// devVersion is the version of a build that has none: from a checkout
// built without VCS stamping (GOFLAGS=-buildvcs=false), say. Receivers see
// it in User-Agent: PancakeWebhooks/<version>, so it reads as one.
const devVersion = "1.0.0-dev"

// Version returns the binary's version.
func Version() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return devVersion
}

// Exit codes scripts can rely on.
const (
	ExitOK       = 0
	ExitError    = 1 // the operation failed (server error, network, database)
	ExitUsage    = 2 // bad flags or arguments
	ExitNotFound = 3 // the thing named does not exist
	ExitAuth     = 4 // bad or missing API key, or forbidden
	ExitInvalid  = 5 // the server rejected the input (validation, conflict)
)

// exitError carries an exit code out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErr(format string, args ...any) error {
	return &exitError{code: ExitUsage, err: fmt.Errorf(format, args...)}
}

// Run runs the command line args and returns the exit code.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCmd(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	fmt.Fprintln(stderr, "pancake-webhooks: "+oneLine(err.Error()))
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if isUsageError(err) {
		return ExitUsage
	}
	return ExitError
}

// oneLine folds a multi-line error (drivers write some) into one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// isUsageError recognizes cobra's and pflag's errors about the command line.
func isUsageError(err error) bool {
	s := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand", "invalid argument", "flag needs an argument",
		"accepts ", "requires at least", "required flag", "bad flag syntax", "if any flags in the group"} {
		if strings.Contains(s, p) {
			return true
		}
	}
	return false
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "pancake-webhooks",
		Short: "Self-hosted webhook delivery for Pancake POS shops",
		Long: `pancake-webhooks delivers Pancake POS events (orders, customers, stock, products,
payments, loyalty points) to the webhook endpoints each shop registers: signed,
retried with back-off until they land, with every attempt recorded.

Start it with zero set-up on an embedded SQLite database:
  pancake-webhooks serve --dev`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return bindEnv(cmd.Flags())
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageErr("%v", err) })
	root.AddCommand(newServeCmd(), newShopsCmd(), newDBCmd(), newVersionCmd(), newWebhooksCmd(), newDeliveriesCmd(), newEventsCmd(), newBenchCmd())
	return root
}

// envName maps a flag to its environment variable: --allow-http is
// PANCAKE_ALLOW_HTTP. Flags annotated with "noenv" have none.
func envName(f *pflag.Flag) string {
	if name, ok := f.Annotations["env"]; ok && len(name) > 0 {
		return name[0]
	}
	return defaultEnvName(f.Name)
}

// defaultEnvName is the environment variable of the flag named name, but
// for one annotated otherwise.
func defaultEnvName(name string) string {
	return "PANCAKE_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// bindEnv fills each flag not given on the command line from its
// environment variable. A bad value names the variable.
func bindEnv(fs *pflag.FlagSet) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed {
			return
		}
		if _, no := f.Annotations["noenv"]; no || f.Name == "help" {
			return
		}
		name := envName(f)
		v, ok := os.LookupEnv(name)
		if !ok {
			return
		}
		if e := fs.Set(f.Name, v); e != nil {
			err = usageErr("environment variable %s: %v", name, e)
		}
	})
	return err
}

// noEnv marks a flag as having no environment variable.
func noEnv(fs *pflag.FlagSet, name string) {
	_ = fs.SetAnnotation(name, "noenv", []string{"true"})
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print the version",
		Example: "  pancake-webhooks version",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), "pancake-webhooks "+Version())
			return nil
		},
	}
}
