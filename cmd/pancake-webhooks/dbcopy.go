package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pancake-pos/pancake-webhooks/store"
)

func newDBCmd() *cobra.Command {
	cmd := groupCmd("db", "Administer the database",
		"  pancake-webhooks db copy --from sqlite:/var/lib/pancake/webhooks.db --to postgres://pancake@db.internal:5432/webhooks")
	cmd.AddCommand(newDBCopyCmd())
	return cmd
}

func newDBCopyCmd() *cobra.Command {
	var from, to string
	var batch int
	cmd := &cobra.Command{
		Use:   "copy",
		Short: "Copy the embedded SQLite database into PostgreSQL",
		Long: `Copy everything from the embedded SQLite database into an empty PostgreSQL
database: shops, API keys, webhooks and their secrets, events, delivery history
and queued deliveries, and the stats. Then check that every table holds as many
rows on both sides, and print the row counts as JSON.

Stop the server first: what it writes after the copy started is not copied.
While a server runs on the SQLite database, the copy refuses to start.
Queued deliveries are copied unleased and keep their schedule: the first
server started on PostgreSQL sends those already due at once, and each retry
when it is due.

The target must be empty. If the copy is interrupted (^C, a lost connection),
run the same command again: it finishes the copy, bringing rows it already
copied up to date. A target holding anything else, or a finished copy, is
refused.

The PostgreSQL password may come from PGPASSWORD (or ~/.pgpass) instead of
the URL.`,
		Example: `  pancake-webhooks db copy --from sqlite:/var/lib/pancake/webhooks.db --to postgres://pancake@db.internal:5432/webhooks`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			switch {
			case from == "":
				return usageErr("--from is required: the database to copy, as sqlite:FILE")
			case !strings.HasPrefix(from, "sqlite:") || from == "sqlite:":
				return usageErr("--from must be sqlite:FILE, got %q", store.RedactDSN(from))
			case to == "":
				return usageErr("--to is required: the PostgreSQL database to copy into, as postgres://…")
			case !strings.HasPrefix(to, "postgres://") && !strings.HasPrefix(to, "postgresql://"):
				return usageErr("--to must be a postgres:// URL")
			case batch <= 0:
				return usageErr("--batch-size must be positive")
			}
			// Opening a missing SQLite file would create an empty database.
			file := strings.TrimPrefix(from, "sqlite:")
			if _, err := os.Stat(file); err != nil {
				code := ExitError
				if errors.Is(err, os.ErrNotExist) {
					code = ExitNotFound
				}
				return &exitError{code: code, err: fmt.Errorf("source database: %w", err)}
			}
			return runDBCopy(cmd.Context(), from, to, batch, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "the database to copy: sqlite:FILE")
	cmd.Flags().StringVar(&to, "to", "", "the empty PostgreSQL database to copy into: postgres://…")
	cmd.Flags().IntVar(&batch, "batch-size", store.DefaultCopyBatch, "rows written per transaction")
	for _, name := range []string{"from", "to", "batch-size"} {
		noEnv(cmd.Flags(), name)
	}
	return cmd
}

func runDBCopy(ctx context.Context, from, to string, batch int, stdout, stderr io.Writer) error {
	// Opened as a server would be: a server running on it holds the lock,
	// and the copy must not start. (Like the next server, it frees the
	// leases a killed one left; the copy clears them in the target anyway.)
	// A schema a server refuses is what the copy is for: its data moves
	// into a database the migrations make.
	src, err := store.Open(ctx, from, store.Options{Server: true, AnySchema: true})
	if errors.Is(err, store.ErrDatabaseInUse) {
		return &exitError{code: ExitInvalid, err: fmt.Errorf("source: %w; stop it first (SIGTERM): what it writes after the copy started would not be copied", err)}
	}
	if err != nil {
		return fmt.Errorf("open source: %w", err)
	}
	defer src.Close()
	dst, err := store.Open(ctx, to, store.Options{})
	if err != nil {
		return fmt.Errorf("open target: %w", err)
	}
	defer dst.Close()

	bar := newCopyProgress(stderr)
	rep, err := store.Copy(ctx, src, dst, store.CopyOptions{BatchSize: batch, Progress: bar.update})
	bar.end()
	switch {
	case errors.Is(err, store.ErrCopyRefused):
		return &exitError{code: ExitInvalid, err: err}
	case err != nil && ctx.Err() != nil:
		return fmt.Errorf("copy interrupted: run the same command again to finish it (%w)", err)
	case err != nil:
		return err
	}
	return printJSON(stdout, rep)
}

// copyProgress shows the copy's progress on stderr: a bar redrawn in place
// on a terminal, else a line per table at most every few seconds.
type copyProgress struct {
	w     io.Writer
	tty   bool
	table string
	last  time.Time
	open  bool // a bar is drawn without its newline
}

func newCopyProgress(w io.Writer) *copyProgress {
	p := &copyProgress{w: w}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 && os.Getenv("TERM") != "dumb" {
			p.tty = true
		}
	}
	return p
}

func (p *copyProgress) update(table string, done, total int64) {
	now := time.Now()
	first := table != p.table
	if first {
		p.end()
		p.table = table
		p.last = now
	}
	finished := done >= total
	if p.tty {
		if !first && !finished && now.Sub(p.last) < 100*time.Millisecond {
			return
		}
	} else if !finished && (first || now.Sub(p.last) < 5*time.Second) {
		return // plain lines: every 5 s, and when a table is done
	}
	p.last = now
	pct := int64(100)
	if total > 0 {
		pct = done * 100 / total
	}
	if !p.tty {
		fmt.Fprintf(p.w, "%s: %d/%d rows (%d%%)\n", table, done, total, pct)
		return
	}
	const width = 30
	fill := int(pct * width / 100)
	fmt.Fprintf(p.w, "\r%-14s [%s%s] %3d%%  %d/%d", table, strings.Repeat("#", fill), strings.Repeat(" ", width-fill), pct, done, total)
	p.open = true
}

// end ends the bar's line.
func (p *copyProgress) end() {
	if p.open {
		fmt.Fprintln(p.w)
		p.open = false
	}
}
