package store_test

import (
	"context"
	"database/sql"
	"net/url"
	"path/filepath"
	"testing"

	"github.com/pancake-pos/pancake-webhooks/store"
	"github.com/pancake-pos/pancake-webhooks/store/storetest"
)

// Unavailable tells a database that cannot serve for now from a statement
// that is wrong, on errors the drivers really return.
func TestUnavailable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	check := func(t *testing.T, what string, err error, want bool) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s: no error", what)
		}
		if got := store.Unavailable(err); got != want {
			t.Errorf("%s (%v): Unavailable = %v, want %v", what, err, got, want)
		}
	}

	t.Run("SQLite", func(t *testing.T) {
		t.Parallel()
		db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "full.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		db.SetMaxOpenConns(1) // the pragma holds for this one connection
		if _, err := db.ExecContext(ctx, `CREATE TABLE t (v BLOB UNIQUE)`); err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, `PRAGMA max_page_count = 3`); err != nil {
			t.Fatal(err)
		}
		_, err = db.ExecContext(ctx, `INSERT INTO t VALUES (randomblob(100000))`)
		check(t, "a full database", err, true)
		if _, err := db.ExecContext(ctx, `INSERT INTO t VALUES (x'01')`); err != nil {
			t.Fatal(err)
		}
		_, err = db.ExecContext(ctx, `INSERT INTO t VALUES (x'01')`)
		check(t, "a unique constraint", err, false)
		_, err = db.ExecContext(ctx, `SELEC 1`)
		check(t, "a syntax error", err, false)
	})

	t.Run("PostgreSQL", func(t *testing.T) {
		t.Parallel()
		raw := storetest.RawPostgres(t, storetest.PostgresDSN(t))
		conn, err := raw.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.ExecContext(ctx, `CREATE TABLE t (v int UNIQUE); INSERT INTO t VALUES (1)`); err != nil {
			t.Fatal(err)
		}
		_, err = conn.ExecContext(ctx, `INSERT INTO t VALUES (1)`)
		check(t, "a unique constraint", err, false)
		_, err = conn.ExecContext(ctx, `SELEC 1`)
		check(t, "a syntax error", err, false)
		if _, err := conn.ExecContext(ctx, `SET default_transaction_read_only = on`); err != nil {
			t.Fatal(err)
		}
		_, err = conn.ExecContext(ctx, `INSERT INTO t VALUES (2)`)
		check(t, "a standby's read-only transaction", err, true)

		var backend int
		if err := conn.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&backend); err != nil {
			t.Fatal(err)
		}
		if _, err := raw.ExecContext(ctx, `SELECT pg_terminate_backend($1)`, backend); err != nil {
			t.Fatal(err)
		}
		_, err = conn.ExecContext(ctx, `SELECT 1`)
		check(t, "a session ended by the server", err, true)

		u, err := url.Parse(storetest.PostgresDSN(t))
		if err != nil {
			t.Fatal(err)
		}
		u.Host = "127.0.0.1:1" // nothing listens on port 1
		gone, err := sql.Open("pgx", u.String())
		if err != nil {
			t.Fatal(err)
		}
		defer gone.Close()
		check(t, "a server that cannot be reached", gone.PingContext(ctx), true)
	})

	if store.Unavailable(nil) || store.Unavailable(context.Canceled) {
		t.Error("Unavailable(nil or context.Canceled) = true")
	}
}
