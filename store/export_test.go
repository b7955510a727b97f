package store

import (
	"context"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	webhooks "github.com/pancake-pos/pancake-webhooks"
)

// WriteForTest runs fn in the group-commit writer, as the store's own
// writes do.
func (db *DB) WriteForTest(ctx context.Context, fn func(tx *Tx) error) error {
	return db.write(ctx, fn)
}

// WaitingWritesForTest is how many writes wait for the writer.
func (db *DB) WaitingWritesForTest() int { return len(db.ops) }

// UrgentWriteForTest runs fn in the group-commit writer among the
// dispatcher's urgent writes (claims and results).
func (db *DB) UrgentWriteForTest(ctx context.Context, fn func(tx *Tx) error) error {
	return db.writeUrgent(ctx, 1, nil, func(tx *Tx, _ *bool) error { return fn(tx) })
}

// WaitingUrgentWritesForTest is how many urgent writes wait for the writer.
func (db *DB) WaitingUrgentWritesForTest() int { return len(db.urgent) }

// SlowCommitForTest returns opts with the time a commit runs before it is
// logged as slow set to d.
func SlowCommitForTest(opts Options, d time.Duration) Options {
	opts.slowCommit = d
	return opts
}

// CheckpointsForTest is how many checkpoints the checkpointer has run.
func (db *DB) CheckpointsForTest() int64 { return db.checkpoints.Load() }

// ClaimPlanPostgres and ClaimHeadSQLPostgres are the settings and the
// statement of a PostgreSQL claim's window (claimHeadPostgres).
const ClaimPlanPostgres = claimPlanPostgres

// MemberLockKey is the advisory lock key of a PostgreSQL server's
// membership (with hashtext of the schema).
const MemberLockKey = memberLockKey

func ClaimHeadSQLPostgres() string { return claimHeadSQLPostgres("") }

// RefreshStatisticsForTest runs one look of the PostgreSQL statistics
// keeper and says whether it analyzed.
func (db *DB) RefreshStatisticsForTest(ctx context.Context) (bool, error) {
	return db.refreshStatistics(ctx)
}

// PreparedStatementsForTest returns the texts of the statements prepared
// on the connections idle in a PostgreSQL store's pool.
func (db *DB) PreparedStatementsForTest(ctx context.Context) (map[string]bool, error) {
	conns := db.pool.AcquireAllIdle(ctx)
	defer func() {
		for _, c := range conns {
			c.Release()
		}
	}()
	texts := map[string]bool{}
	for _, c := range conns {
		rows, err := c.Query(ctx, `SELECT statement FROM pg_prepared_statements`, pgx.QueryExecModeSimpleProtocol)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				rows.Close()
				return nil, err
			}
			texts[s] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return texts, nil
}

// DiscardConn is discardConn.
var DiscardConn = discardConn

// PoolMaxConnsForTest is the size of a PostgreSQL store's pool.
func (db *DB) PoolMaxConnsForTest() int32 { return db.pool.Config().MaxConns }

// LeasesCheckedForTest is closed once a PostgreSQL server (Options.Server)
// has freed the leases a dead server left, or found none to free, or found
// another server running.
func (db *DB) LeasesCheckedForTest() <-chan struct{} { return db.leasesChecked }

// DeliveryPageSQLForTest is the statement FindDeliveries reads the ids of
// a page of f with (no time range), and its arguments.
func (db *DB) DeliveryPageSQLForTest(f webhooks.DeliveryFilter) (string, []any) {
	var q sqlArgs
	cond := db.deliveryCond(&q, f, math.MinInt64, math.MaxInt64)
	page, _ := pageSQL(&q, cond, f.Status, max(f.Limit, 1), f.Offset)
	return page, q.args
}
