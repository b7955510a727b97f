package store

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// createdObject finds what a migration creates (a table, index, trigger,
// function or view) and its name.
var createdObject = regexp.MustCompile(`(?i)\bCREATE\s+(?:UNIQUE\s+|UNLOGGED\s+|CONSTRAINT\s+|OR\s+REPLACE\s+)*(?:TABLE|INDEX|TRIGGER|FUNCTION|VIEW)\s+(?:IF\s+NOT\s+EXISTS\s+)?([A-Za-z_][A-Za-z0-9_]*)`)

// checkSchema says whether the database holds the schema this binary's
// migrations make. Builds before the first release edited migration 0001
// in place, so a database one of them made is at version 1 with another
// schema, and nothing migrates it: the delivery lists then failed with
// "no such table" while /readyz said ok (audit). A server refuses such a
// database at start, saying how to move its data, rather than answer 500s.
// On SQLite every object's definition must match; on PostgreSQL every
// object must exist. Objects it has beyond them are left alone.
func (db *DB) checkSchema(ctx context.Context) error {
	var missing []string
	var err error
	if db.dialect.name == "sqlite" {
		missing, err = db.sqliteSchemaDiff(ctx)
	} else {
		missing, err = db.postgresSchemaMissing(ctx)
	}
	if err != nil {
		return fmt.Errorf("check the schema: %w", err)
	}
	if len(missing) > 0 {
		return fmt.Errorf("the database's schema is not the one this binary makes (%d objects differ: %s), "+
			"as a build's before the first release or one changed by hand is: start a new database, or move its data "+
			"into a new PostgreSQL one with `pancake-webhooks db copy --from OLD --to postgres://…`",
			len(missing), strings.Join(missing, ", "))
	}
	return nil
}

// sqliteSchemaDiff returns the tables, indexes and triggers whose
// definition in the database is not the one the migrations make (absent
// included), made for comparison in a database in memory.
func (db *DB) sqliteSchemaDiff(ctx context.Context) ([]string, error) {
	mem, err := sql.Open("sqlite", "file:schema-check?mode=memory")
	if err != nil {
		return nil, err
	}
	defer mem.Close()
	mem.SetMaxOpenConns(1) // one connection: one database in memory
	for _, m := range db.dialect.migrations() {
		if _, err := mem.ExecContext(ctx, m.sql); err != nil {
			return nil, fmt.Errorf("migration %s in memory: %w", m.name, err)
		}
	}
	want, err := sqliteObjects(ctx, mem)
	if err != nil {
		return nil, err
	}
	got, err := sqliteObjects(ctx, db.rdb)
	if err != nil {
		return nil, err
	}
	var diff []string
	for name, def := range want {
		if got[name] != def {
			diff = append(diff, name)
		}
	}
	return sorted(diff), nil
}

// sqliteObjects maps "type name" to the SQL that made it, its whitespace
// folded.
func sqliteObjects(ctx context.Context, q *sql.DB) (map[string]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT type, name, COALESCE(sql, '') FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var typ, name, def string
		if err := rows.Scan(&typ, &name, &def); err != nil {
			return nil, err
		}
		// Whitespace aside: SQLite keeps the statement's text, and a
		// version that spaced it otherwise makes the same object.
		out[typ+" "+name] = strings.Join(strings.Fields(def), " ")
	}
	return out, rows.Err()
}

// postgresSchemaMissing returns the names the migrations create that the
// current schema lacks (relations, functions, triggers).
func (db *DB) postgresSchemaMissing(ctx context.Context) ([]string, error) {
	rows, err := db.rdb.QueryContext(ctx, `
		SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema()
		UNION SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = current_schema()
		UNION SELECT t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
			JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = current_schema()`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	have := map[string]bool{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, err
		}
		have[name] = true
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var missing []string
	for _, m := range db.dialect.migrations() {
		for _, match := range createdObject.FindAllStringSubmatch(m.sql, -1) {
			if name := strings.ToLower(match[1]); !have[name] {
				missing = append(missing, name)
			}
		}
	}
	return sorted(missing), nil
}

func sorted(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}
