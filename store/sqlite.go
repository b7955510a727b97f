package store

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// openSQLite opens one writer connection (immediate transactions, WAL,
// synchronous=FULL so a commit is durable) and a pool of read-only ones.
func (db *DB) openSQLite(ctx context.Context, file string, readConns int) error {
	if file == "" {
		return fmt.Errorf("sqlite: empty file name (use sqlite:FILE)")
	}
	if dir := filepath.Dir(file); dir != "" {
		if _, err := os.Stat(dir); err != nil {
			return fmt.Errorf("sqlite: directory of %s: %w", file, err)
		}
	}
	db.dialect = sqliteDialect
	pragmas := url.Values{}
	for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(FULL)", "foreign_keys(1)", "cache_size(-32000)", "temp_store(MEMORY)"} {
		pragmas.Add("_pragma", p)
	}
	w := pragmas
	w.Set("_txlock", "immediate")
	writeDSN := "file:" + file + "?" + w.Encode()
	write, err := sql.Open("sqlite", writeDSN)
	if err != nil {
		return fmt.Errorf("sqlite: open %s: %w", file, err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	write.SetConnMaxIdleTime(0)
	if err := write.PingContext(ctx); err != nil {
		write.Close()
		return fmt.Errorf("sqlite: open %s: %w", file, err)
	}
	r := url.Values{}
	for _, p := range []string{"busy_timeout(10000)", "query_only(1)", "cache_size(-32000)"} {
		r.Add("_pragma", p)
	}
	read, err := sql.Open("sqlite", "file:"+file+"?"+r.Encode())
	if err != nil {
		write.Close()
		return fmt.Errorf("sqlite: open %s for reading: %w", file, err)
	}
	read.SetMaxOpenConns(readConns)
	read.SetMaxIdleConns(readConns)
	read.SetConnMaxIdleTime(0)
	db.wdb, db.rdb = write, read
	db.closeFn = func() error {
		rerr := read.Close()
		if err := write.Close(); err != nil {
			return err
		}
		return rerr
	}
	return nil
}
