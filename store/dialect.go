package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

//go:embed migrations
var migrationsFS embed.FS

// dialect holds what differs between the databases.
type dialect struct {
	name string
	// claimLock is appended to the claim's inner SELECT.
	claimLock string
	// rowLock is appended to a SELECT of rows the transaction goes on to
	// change from what it read (a webhook's row). SQLite's one writer runs
	// one transaction at a time; PostgreSQL's writers and replicas run
	// theirs at once, at READ COMMITTED, where a read-then-write without a
	// lock loses what another commits in between. Every transaction locks
	// webhook rows before delivery rows, as the recorder does.
	rowLock string
}

var (
	sqliteDialect   = dialect{name: "sqlite"}
	postgresDialect = dialect{name: "postgres", claimLock: " FOR UPDATE SKIP LOCKED", rowLock: " FOR NO KEY UPDATE"}
)

// in is the condition that col is one of values, and its arguments,
// numbered from $start: "col IN ($start, …)" on SQLite, "col = ANY($start)"
// with one array on PostgreSQL. There one text serves any count: pgx
// prepares and caches each distinct text on each connection, and the
// server keeps each prepared statement, so a text per count grew both
// (see insertQueuedPostgres).
func (d dialect) in(col string, start int, values []string) (string, []any) {
	if d.name == "postgres" {
		return col + " = ANY($" + strconv.Itoa(start) + ")", []any{values}
	}
	return col + " IN (" + placeholders(start, len(values)) + ")", anySlice(values)
}

type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the dialect's embedded migrations in order.
func (d dialect) migrations() []migration {
	dir := path.Join("migrations", d.name)
	entries, err := fs.ReadDir(migrationsFS, dir)
	if err != nil {
		return nil
	}
	var out []migration
	for _, e := range entries {
		v, _, ok := strings.Cut(e.Name(), "_")
		n, err := strconv.Atoi(v)
		if !ok || err != nil || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		b, err := fs.ReadFile(migrationsFS, path.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		out = append(out, migration{version: n, name: e.Name(), sql: string(b)})
	}
	slices.SortFunc(out, func(a, b migration) int { return a.version - b.version })
	return out
}

// retryable reports whether err aborted a transaction that may succeed when
// run again (PostgreSQL deadlock or serialization failure).
func (d dialect) retryable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "40001" || pgErr.Code == "40P01"
	}
	return false
}

// migrate applies the migrations not yet applied, each in a transaction.
// On PostgreSQL an advisory lock makes replicas starting together take turns.
func (db *DB) migrate(ctx context.Context) error {
	conn, err := db.wdb.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	if db.dialect.name == "postgres" {
		// With no schema of search_path in the database, PostgreSQL would
		// only say "no schema has been selected to create in".
		var schema sql.NullString
		if err := conn.QueryRowContext(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
			return fmt.Errorf("read the current schema: %w", err)
		}
		if !schema.Valid {
			var path string
			_ = conn.QueryRowContext(ctx, `SHOW search_path`).Scan(&path)
			return fmt.Errorf("postgres: no schema of the search_path (%s) exists in the database: create it (CREATE SCHEMA name), or name one that exists", path)
		}
		if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock(7240119, hashtext(current_schema()))`); err != nil {
			return fmt.Errorf("take migration lock: %w", err)
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(7240119, hashtext(current_schema()))`)
	}
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	var current int
	if err := conn.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	all := db.dialect.migrations()
	if len(all) == 0 {
		return fmt.Errorf("no migrations embedded for %s", db.dialect.name)
	}
	if current > all[len(all)-1].version {
		return fmt.Errorf("database schema version %d is newer than this binary knows (%d): upgrade the binary", current, all[len(all)-1].version)
	}
	for _, m := range all {
		if m.version <= current {
			continue
		}
		if err := applyMigration(ctx, conn, m, ms(db.now())); err != nil {
			return err
		}
	}
	return nil
}

func applyMigration(ctx context.Context, conn *sql.Conn, m migration, now int64) error {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migration %s: begin: %w", m.name, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return fmt.Errorf("migration %s: %w", m.name, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`, m.version, m.name, now); err != nil {
		return fmt.Errorf("migration %s: record: %w", m.name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migration %s: commit: %w", m.name, err)
	}
	return nil
}
