package store

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
	"sync"
)

// Tx is a write transaction of the group-commit writer. On SQLite its
// statements are prepared once and reused (parsing SQL was a fifth of the
// writer's CPU); pgx caches PostgreSQL's prepared statements by itself.
type Tx struct {
	tx *sql.Tx
	db *DB
	// stopped holds the webhooks this transaction disabled, deleted, or
	// gave a new URL or secret (announce): deliveries of theirs that a
	// publish of the same transaction reserved for the local dispatcher
	// are not handed over (see keepHandoffs).
	stopped map[string]bool
}

// ExecContext runs a statement in the transaction.
func (t *Tx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	if st := t.stmt(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return t.tx.ExecContext(ctx, query, args...)
}

// QueryContext runs a query in the transaction.
func (t *Tx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st := t.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return t.tx.QueryContext(ctx, query, args...)
}

// QueryRowContext runs a query that returns at most one row.
func (t *Tx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	if st := t.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return t.tx.QueryRowContext(ctx, query, args...)
}

// stmt returns the cached prepared statement for query, or nil to run it
// unprepared. On SQLite the statement is prepared on the writer's one
// connection, the connection this transaction runs on: SQLite runs it
// inside the open transaction. (database/sql's Tx.Stmt would prepare it
// again on every call for a statement prepared on a Conn.)
func (t *Tx) stmt(ctx context.Context, query string) *sql.Stmt {
	if t.db.wconn == nil {
		return nil
	}
	return t.db.stmts.get(ctx, t.db.wconn, query)
}

// maxCachedStmts bounds the statement cache: queries built with a varying
// number of placeholders are many, but each shape is cached once.
const maxCachedStmts = 512

// stmtCache holds statements prepared on the writer connection.
type stmtCache struct {
	mu sync.Mutex
	m  map[string]*sql.Stmt
}

func (c *stmtCache) get(ctx context.Context, conn *sql.Conn, query string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.m[query]; ok {
		return st
	}
	if len(c.m) >= maxCachedStmts {
		return nil
	}
	st, err := conn.PrepareContext(ctx, anonymousParams(query))
	if err != nil {
		return nil // the unprepared path reports the error
	}
	if c.m == nil {
		c.m = map[string]*sql.Stmt{}
	}
	c.m[query] = st
	return st
}

func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for q, st := range c.m {
		_ = st.Close() // closing the connection finalizes it anyway
		delete(c.m, q)
	}
}

// anonymousParams rewrites $1, $2, … $n as ? when each appears once and in
// that order, and returns query unchanged otherwise. The SQLite driver
// looks each numbered parameter's name up in a list, once per parameter
// per call: for the multi-row inserts (hundreds of parameters) that linear
// search grew with the square of their count.
func anonymousParams(query string) string {
	var b strings.Builder
	next := 1
	quoted := false
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case c == '\'':
			quoted = !quoted
		case c == '$' && !quoted:
			j := i + 1
			for j < len(query) && query[j] >= '0' && query[j] <= '9' {
				j++
			}
			if n, err := strconv.Atoi(query[i+1 : j]); err != nil || n != next {
				return query
			}
			next++
			b.WriteByte('?')
			i = j - 1
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}
