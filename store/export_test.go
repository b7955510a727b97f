package store

import "context"

// WriteForTest runs fn in the group-commit writer, as the store's own
// writes do.
func (db *DB) WriteForTest(ctx context.Context, fn func(tx *Tx) error) error {
	return db.write(ctx, fn)
}

// WaitingWritesForTest is how many writes wait for the writer.
func (db *DB) WaitingWritesForTest() int { return len(db.ops) }

// CheckpointsForTest is how many checkpoints the checkpointer has run.
func (db *DB) CheckpointsForTest() int64 { return db.checkpoints.Load() }

// ClaimPlanPostgres and ClaimHeadSQLPostgres are the settings and the
// statement of a PostgreSQL claim's window (claimHeadPostgres).
const ClaimPlanPostgres = claimPlanPostgres

func ClaimHeadSQLPostgres() string { return claimHeadSQLPostgres("") }

// RefreshStatisticsForTest runs one look of the PostgreSQL statistics
// keeper and says whether it analyzed.
func (db *DB) RefreshStatisticsForTest(ctx context.Context) (bool, error) {
	return db.refreshStatistics(ctx)
}
