package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
)

// openPostgres opens a pgx pool and serves database/sql from it.
func (db *DB) openPostgres(ctx context.Context, dsn string, maxConns int) error {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return fmt.Errorf("postgres: parse %s: %w", redactDSN(dsn), err)
	}
	if cfg.MaxConns < int32(maxConns) {
		cfg.MaxConns = int32(maxConns)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("postgres: connect %s: %w", redactDSN(dsn), err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return fmt.Errorf("postgres: connect %s: %w", redactDSN(dsn), err)
	}
	db.dialect = postgresDialect
	sdb := stdlib.OpenDBFromPool(pool)
	db.wdb, db.rdb = sdb, sdb
	db.closeFn = func() error {
		err := sdb.Close()
		pool.Close()
		return err
	}
	return nil
}
