package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
)

// PostgresDSN returns the URL of a fresh, empty PostgreSQL schema for one
// test, dropped when the test ends. It reads PANCAKE_TEST_POSTGRES_URL; when
// that is unset the test is skipped with a message saying how to run it,
// except when PANCAKE_TEST_REQUIRE_POSTGRES=1 (CI), where it fails.
func PostgresDSN(tb testing.TB) string {
	tb.Helper()
	base := os.Getenv("PANCAKE_TEST_POSTGRES_URL")
	if base == "" {
		if os.Getenv("PANCAKE_TEST_REQUIRE_POSTGRES") == "1" {
			tb.Fatal("PANCAKE_TEST_POSTGRES_URL is not set, and PostgreSQL tests are required here")
		}
		tb.Skip("PostgreSQL tests skipped: set PANCAKE_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test?sslmode=disable to run them")
	}
	db, err := sql.Open("pgx", base)
	if err != nil {
		tb.Fatalf("open PostgreSQL %s: %v", base, err)
	}
	defer db.Close()
	if err := db.PingContext(context.Background()); err != nil {
		tb.Fatalf("PostgreSQL at PANCAKE_TEST_POSTGRES_URL is not reachable: %v", err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "t_" + hex.EncodeToString(b)
	if _, err := db.Exec(`CREATE SCHEMA ` + schema); err != nil {
		tb.Fatalf("create schema: %v", err)
	}
	tb.Cleanup(func() {
		db, err := sql.Open("pgx", base)
		if err != nil {
			return
		}
		defer db.Close()
		_, _ = db.Exec(`DROP SCHEMA ` + schema + ` CASCADE`)
	})
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatalf("parse PANCAKE_TEST_POSTGRES_URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// RawPostgres opens dsn (a PostgresDSN) with plain database/sql, for a test
// to read or write what the store does not expose; closed when the test
// ends.
func RawPostgres(tb testing.TB, dsn string) *sql.DB {
	tb.Helper()
	raw, err := sql.Open("pgx", dsn)
	if err != nil {
		tb.Fatalf("open PostgreSQL: %v", err)
	}
	tb.Cleanup(func() { raw.Close() })
	return raw
}
