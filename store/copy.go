package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	webhooks "github.com/pancake-pos/pancake-webhooks"
)

// Copying a whole database, for moving from the embedded SQLite to
// PostgreSQL (`pancake-webhooks db copy`).
//
// The source is read in one read-only transaction, so the copy is one
// consistent snapshot of it. Each table is copied in primary-key order, in
// batches, one target transaction per batch, with multi-row upserts: a batch
// written twice changes nothing, so a copy that was interrupted (^C, lost
// connection) is finished by running it again.
//
// The target must be empty. The copy records itself in a table of the target,
// copy_state (source, started_at, finished_at), created in the same
// transaction that checks the target is empty. A target is accepted when it
// is empty, or when it holds an unfinished copy of the same source (a
// re-run); anything else is refused with ErrCopyRefused.

// ErrCopyRefused is wrapped by the errors of Copy that refuse the target.
var ErrCopyRefused = errors.New("copy refused")

// copyLockKey, with the schema, is the advisory lock a copy into
// PostgreSQL holds.
const copyLockKey = 7240121

// copyLockTries and copyLockWait bound how long a copy waits for the lock
// of another one (2 s) before it refuses the target.
const (
	copyLockTries = 20
	copyLockWait  = 100 * time.Millisecond
)

// DefaultCopyBatch is the default number of rows per target transaction.
const DefaultCopyBatch = 1000

// CopyOptions configure Copy.
type CopyOptions struct {
	// BatchSize is the number of rows per target transaction; default
	// DefaultCopyBatch.
	BatchSize int
	// Progress, when set, is called when a table starts (done 0) and after
	// each batch is committed, with the rows copied of that table so far
	// and its total in the source.
	Progress func(table string, done, total int64)
}

// CopyReport says what Copy copied.
type CopyReport struct {
	Source string `json:"source"`
	// Resumed is true when the copy finished an interrupted one.
	Resumed bool `json:"resumed"`
	// Tables holds the rows of each table, equal on both sides.
	Tables map[string]int64 `json:"tables"`
	// TextRepaired counts the text values that PostgreSQL cannot store
	// (invalid UTF-8, NUL bytes; e.g. a receiver's binary response body)
	// that were written with U+FFFD in place of the bad bytes.
	TextRepaired int64 `json:"text_repaired,omitempty"`
}

// colKind says how a column is read and written.
type colKind int

const (
	colText     colKind = iota // TEXT NOT NULL
	colNullText                // TEXT
	colInt                     // BIGINT NOT NULL
	colNullInt                 // BIGINT
	colBool                    // BOOLEAN NOT NULL
	colBytes                   // BLOB / BYTEA NOT NULL
	colClear                   // written as NULL whatever the source holds
)

type copyColumn struct {
	name string
	kind colKind
}

type copyTable struct {
	name string
	key  []string // the primary key, in order
	cols []copyColumn
}

// copyTables are the tables copied, parents first. Copy checks that each
// table has exactly these columns on both sides, so a migration that adds a
// column fails the copy until this list learns it.
var copyTables = []copyTable{
	{name: "shops", key: []string{"id"}, cols: []copyColumn{
		{"id", colText}, {"name", colText}, {"created_at", colInt},
	}},
	{name: "api_keys", key: []string{"id"}, cols: []copyColumn{
		{"id", colText}, {"shop_id", colText}, {"hash", colText}, {"created_at", colInt},
	}},
	{name: "webhooks", key: []string{"id"}, cols: []copyColumn{
		{"id", colText}, {"shop_id", colText}, {"url", colText}, {"events", colText}, {"is_active", colBool},
		{"description", colText}, {"secret", colText}, {"prev_secret", colText}, {"prev_secret_expires_at", colInt},
		{"created_at", colInt}, {"updated_at", colInt}, {"last_triggered_at", colNullInt}, {"disabled_reason", colText},
		{"consecutive_failures", colInt}, {"failing_since", colNullInt}, {"last_success_at", colNullInt},
		{"last_failure_at", colNullInt}, {"last_failure_reason", colText},
	}},
	{name: "events", key: []string{"id"}, cols: []copyColumn{
		{"id", colText}, {"shop_id", colText}, {"type", colText}, {"idempotency_key", colNullText},
		{"envelope", colBytes}, {"deliveries", colInt}, {"created_at", colInt},
	}},
	{name: "deliveries", key: []string{"id"}, cols: []copyColumn{
		{"id", colText}, {"shop_id", colText}, {"webhook_id", colText}, {"event_id", colText}, {"event", colText},
		{"status", colText}, {"trigger", colText}, {"attempt", colInt}, {"retry_of", colText}, {"created_at", colInt},
		{"scheduled_at", colNullInt},
		// Leases are cleared: queued work is claimable at once by the new
		// server (the old one must be stopped).
		{"leased_until", colClear},
		{"response_status", colInt}, {"response_headers", colText}, {"response_body", colText},
		{"response_truncated", colBool}, {"request_headers", colText}, {"failure_reason", colText},
		{"duration_ms", colInt}, {"next_retry_at", colNullInt},
	}},
	{name: "webhook_stats", key: []string{"webhook_id", "hour", "event"}, cols: []copyColumn{
		{"webhook_id", colText}, {"hour", colInt}, {"event", colText}, {"total", colInt}, {"success", colInt},
		{"failed", colInt}, {"duration_ms_sum", colInt},
	}},
}

// CopyTables names the tables Copy copies, in the order it copies them.
func CopyTables() []string {
	out := make([]string, len(copyTables))
	for i, t := range copyTables {
		out[i] = t.name
	}
	return out
}

// Copy copies every shop, API key, webhook (with its secrets), event,
// delivery (finished and queued) and stats row of from into to, then checks
// that each table holds as many rows on both sides. Leases of queued
// deliveries are cleared. No server may run on either database while it
// copies: what it writes to the source after the copy started is not
// copied, and a server on the target would send the queued deliveries as
// they arrive.
func Copy(ctx context.Context, from, to *DB, opts CopyOptions) (*CopyReport, error) {
	batch := opts.BatchSize
	if batch <= 0 {
		batch = DefaultCopyBatch
	}
	progress := opts.Progress
	if progress == nil {
		progress = func(string, int64, int64) {}
	}
	src, err := from.identity(ctx)
	if err != nil {
		return nil, fmt.Errorf("identify source: %w", err)
	}
	dst, err := to.identity(ctx)
	if err != nil {
		return nil, fmt.Errorf("identify target: %w", err)
	}
	if src == dst {
		return nil, fmt.Errorf("%w: source and target are the same database (%s)", ErrCopyRefused, src)
	}

	// All target writes go through one connection, which on PostgreSQL also
	// holds a lock on the target schema for the whole copy, so two copies
	// into one database cannot run at once.
	conn := to.wconn // SQLite: the writer's one connection, held by the store
	if conn == nil {
		conn, err = to.wdb.Conn(ctx)
		if err != nil {
			return nil, fmt.Errorf("connect to target: %w", err)
		}
		defer conn.Close()
	}
	if to.dialect.name == "postgres" {
		// A copy interrupted mid-statement loses its connection, and its
		// lock goes only when the server notices: a copy started right
		// after it waits a moment for that before refusing.
		var ok bool
		for try := 0; ; try++ {
			if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1, hashtext(current_schema()))`, copyLockKey).Scan(&ok); err != nil {
				return nil, fmt.Errorf("lock target: %w", err)
			}
			if ok || try == copyLockTries-1 {
				break
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(copyLockWait):
			}
		}
		if !ok {
			return nil, fmt.Errorf("%w: another copy into the target database is running", ErrCopyRefused)
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1, hashtext(current_schema()))`, copyLockKey)
	}

	// One snapshot of the source for the whole copy.
	txOpts := &sql.TxOptions{ReadOnly: true}
	if from.dialect.name == "postgres" {
		txOpts.Isolation = sql.LevelRepeatableRead
	}
	stx, err := from.rdb.BeginTx(ctx, txOpts)
	if err != nil {
		return nil, fmt.Errorf("read source: %w", err)
	}
	defer stx.Rollback()

	for _, t := range copyTables {
		if err := t.checkColumns(ctx, stx, "source"); err != nil {
			return nil, err
		}
		if err := t.checkColumns(ctx, conn, "target"); err != nil {
			return nil, err
		}
	}
	resumed, err := claimTarget(ctx, conn, src, ms(to.now()))
	if err != nil {
		return nil, err
	}

	rep := &CopyReport{Source: src, Resumed: resumed, Tables: map[string]int64{}}
	w := &copyWriter{conn: conn, pg: to.dialect.name == "postgres", batch: batch, stmts: map[int]string{}}
	for _, t := range copyTables {
		var total int64
		if err := stx.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+t.name).Scan(&total); err != nil {
			return nil, fmt.Errorf("count %s in source: %w", t.name, err)
		}
		rep.Tables[t.name] = total
		progress(t.name, 0, total)
		if err := w.copyTable(ctx, stx, t, func(done int64) { progress(t.name, done, total) }); err != nil {
			return nil, err
		}
	}
	rep.TextRepaired = w.repaired

	// The final check: as many rows on both sides.
	var bad []string
	for _, t := range copyTables {
		var n int64
		if err := conn.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+t.name).Scan(&n); err != nil {
			return nil, fmt.Errorf("count %s in target: %w", t.name, err)
		}
		if n != rep.Tables[t.name] {
			bad = append(bad, fmt.Sprintf("%s: source %d rows, target %d", t.name, rep.Tables[t.name], n))
		}
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("count check failed (%s); if the source changed since an interrupted copy (a server ran on it), copy again into a fresh database",
			strings.Join(bad, "; "))
	}
	if _, err := conn.ExecContext(ctx, `UPDATE copy_state SET finished_at = $1 WHERE source = $2 AND finished_at IS NULL`,
		ms(to.now()), src); err != nil {
		return nil, fmt.Errorf("record finished copy: %w", err)
	}
	return rep, nil
}

// identity names the database: the SQLite file, or the PostgreSQL
// server, database and schema. It tells copies of different sources apart.
func (db *DB) identity(ctx context.Context) (string, error) {
	if db.dialect.name == "sqlite" {
		var file string
		err := db.rdb.QueryRowContext(ctx, `SELECT file FROM pragma_database_list WHERE name = 'main'`).Scan(&file)
		return "sqlite:" + file, err
	}
	var (
		host, dbname, schema string
		port                 int
	)
	err := db.rdb.QueryRowContext(ctx, `SELECT COALESCE(host(inet_server_addr()), 'local'), COALESCE(inet_server_port(), 0),
		current_database(), current_schema()`).Scan(&host, &port, &dbname, &schema)
	return fmt.Sprintf("postgres://%s:%d/%s?search_path=%s", host, port, dbname, schema), err
}

// checkColumns fails unless the table has exactly the columns t knows.
func (t copyTable) checkColumns(ctx context.Context, q querier, side string) error {
	rows, err := q.QueryContext(ctx, `SELECT * FROM `+t.name+` WHERE 1 = 0`)
	if err != nil {
		return fmt.Errorf("read columns of %s in %s: %w", t.name, side, err)
	}
	have, err := rows.Columns()
	rows.Close()
	if err != nil {
		return fmt.Errorf("read columns of %s in %s: %w", t.name, side, err)
	}
	want := make([]string, len(t.cols))
	for i, c := range t.cols {
		want[i] = c.name
	}
	slices.Sort(have)
	slices.Sort(want)
	if !slices.Equal(have, want) {
		return fmt.Errorf("table %s in %s has columns %v, the copy knows %v: the copy code is out of date with the schema", t.name, side, have, want)
	}
	return nil
}

// claimTarget checks that the target may receive this copy and records it,
// in one transaction: it accepts an empty target (a new copy) or one that
// holds an unfinished copy of the same source (resumed is true).
func claimTarget(ctx context.Context, conn *sql.Conn, src string, now int64) (resumed bool, err error) {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("check target: %w", err)
	}
	defer tx.Rollback() // a refusal leaves no copy_state behind
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS copy_state (
		source TEXT NOT NULL, started_at BIGINT NOT NULL, finished_at BIGINT)`); err != nil {
		return false, fmt.Errorf("create copy_state: %w", err)
	}
	var (
		prev     string
		started  int64
		finished sql.NullInt64
		found    = true
	)
	err = tx.QueryRowContext(ctx, `SELECT source, started_at, finished_at FROM copy_state ORDER BY started_at DESC LIMIT 1`).
		Scan(&prev, &started, &finished)
	if errors.Is(err, sql.ErrNoRows) {
		found = false
	} else if err != nil {
		return false, fmt.Errorf("read copy_state: %w", err)
	}
	switch {
	case found && finished.Valid:
		return false, fmt.Errorf("%w: the target already holds a finished copy of %s (finished %s); copy only into an empty database",
			ErrCopyRefused, prev, fromMS(finished.Int64).Format(time.RFC3339))
	case found && prev != src:
		return false, fmt.Errorf("%w: the target holds an unfinished copy of %s (started %s), not of %s; finish that one, or copy into an empty database",
			ErrCopyRefused, prev, fromMS(started).Format(time.RFC3339), src)
	case found:
		return true, tx.Commit()
	}
	for _, t := range copyTables {
		var n int64
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM (SELECT 1 FROM `+t.name+` LIMIT 1) x`).Scan(&n); err != nil {
			return false, fmt.Errorf("check target: %w", err)
		}
		if n > 0 {
			return false, fmt.Errorf("%w: the target database is not empty (table %s has rows); copy only into an empty database", ErrCopyRefused, t.name)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO copy_state (source, started_at) VALUES ($1, $2)`, src, now); err != nil {
		return false, fmt.Errorf("record copy: %w", err)
	}
	return false, tx.Commit()
}

// copyWriter writes batches of rows to the target.
type copyWriter struct {
	conn     *sql.Conn
	pg       bool
	batch    int
	stmts    map[int]string // INSERT for n rows of the current table
	repaired int64
}

// copyTable streams t from the source snapshot to the target.
func (w *copyWriter) copyTable(ctx context.Context, stx *sql.Tx, t copyTable, progress func(done int64)) error {
	clear(w.stmts)
	names := make([]string, len(t.cols))
	for i, c := range t.cols {
		names[i] = c.name
	}
	rows, err := stx.QueryContext(ctx, `SELECT `+strings.Join(names, ", ")+` FROM `+t.name+` ORDER BY `+strings.Join(t.key, ", "))
	if err != nil {
		return fmt.Errorf("read %s: %w", t.name, err)
	}
	defer rows.Close()
	dest := make([]any, len(t.cols))
	for i, c := range t.cols {
		switch c.kind {
		case colText, colNullText:
			dest[i] = new(sql.NullString)
		case colInt, colNullInt:
			dest[i] = new(sql.NullInt64)
		case colBool:
			dest[i] = new(sql.NullBool)
		case colBytes:
			dest[i] = new([]byte)
		case colClear:
			dest[i] = new(any)
		}
	}
	args := make([]any, 0, w.batch*len(t.cols))
	var done int64
	flush := func() error {
		n := len(args) / len(t.cols)
		if n == 0 {
			return nil
		}
		if err := w.write(ctx, t, n, args); err != nil {
			return err
		}
		args = args[:0]
		done += int64(n)
		progress(done)
		return nil
	}
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("read %s: %w", t.name, err)
		}
		for i, c := range t.cols {
			args = append(args, w.value(c, dest[i]))
		}
		if len(args) == w.batch*len(t.cols) {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read %s: %w", t.name, err)
	}
	return flush()
}

// value converts a scanned column to the argument written.
func (w *copyWriter) value(c copyColumn, d any) any {
	switch v := d.(type) {
	case *sql.NullString:
		if !v.Valid {
			return nil
		}
		s := v.String
		if w.pg {
			if t := webhooks.StorableText(s); t != s {
				s = t
				w.repaired++
			}
		}
		return s
	case *sql.NullInt64:
		if !v.Valid {
			return nil
		}
		return v.Int64
	case *sql.NullBool:
		if !v.Valid {
			return nil
		}
		return v.Bool
	case *[]byte:
		if *v == nil {
			return []byte{} // NOT NULL: an empty BLOB may read as nil
		}
		return *v // Scan into *[]byte makes a new copy each row
	}
	return nil // colClear
}

// write upserts n rows in one transaction.
func (w *copyWriter) write(ctx context.Context, t copyTable, n int, args []any) error {
	q, ok := w.stmts[n]
	if !ok {
		q = w.insertSQL(t, n)
		w.stmts[n] = q
	}
	tx, err := w.conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("write %s: %w", t.name, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("write %s: %w", t.name, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("write %s: %w", t.name, err)
	}
	return nil
}

// insertSQL is a multi-row upsert of n rows into t. A row already there (a
// re-run) is set to the source's values; on PostgreSQL only when they differ,
// so a re-run does not rewrite what it already copied.
func (w *copyWriter) insertSQL(t copyTable, n int) string {
	var b strings.Builder
	b.WriteString("INSERT INTO " + t.name)
	if w.pg {
		b.WriteString(" AS t")
	}
	b.WriteString(" (")
	var set, old, upd []string
	for i, c := range t.cols {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(c.name)
		if !slices.Contains(t.key, c.name) {
			set = append(set, c.name+" = excluded."+c.name)
			old = append(old, "t."+c.name)
			upd = append(upd, "excluded."+c.name)
		}
	}
	b.WriteString(") VALUES ")
	p := 1
	for r := range n {
		if r > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for i := range t.cols {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "$%d", p)
			p++
		}
		b.WriteByte(')')
	}
	b.WriteString(" ON CONFLICT (" + strings.Join(t.key, ", ") + ") DO UPDATE SET " + strings.Join(set, ", "))
	if w.pg {
		b.WriteString(" WHERE (" + strings.Join(old, ", ") + ") IS DISTINCT FROM (" + strings.Join(upd, ", ") + ")")
	}
	return b.String()
}
