package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// SQLite's page caches, sized to bound the server's memory.
//
// cache_size is per connection, and in a long-running server every
// connection's cache ends up full (a read that walks more pages than it
// holds evicts and allocates again). The driver (modernc.org/sqlite)
// allocates each cached page (4 KiB and a few hundred bytes of headers)
// from modernc.org/memory's power-of-two slots, an 8 KiB slot each, so a
// full cache costs about twice its nominal size in RSS: 1.95 MiB per
// nominal MiB, measured with 8 readers at -4000, -8000 and -32000.
//
// Readers: one budget for the pool (readCacheKiB) split over its
// connections, at least minReadCacheKiB each, so more readers do not mean
// more memory: 8 (DefaultReadConns) × 2,000 KiB, ~31 MiB of RSS when all
// are full. They were 8 × 32,000 KiB (~490 MiB of RSS when full; a server
// with 1M queued deliveries reached ~600 MiB). An API read (a page of a
// list, a few counters) touches tens to a few thousand pages; those a
// reader misses come from the OS page cache.
// Writer: 16,000 KiB, ~31 MiB of RSS, room for the hot pages of the queue
// and history indexes it appends to and the claim's window.
//
// Measured with BenchmarkPendingReads/SQLite/Concurrent8 (8 goroutines
// walking a 1M-row queue, writer idle): RSS 111–113 MiB with these sizes,
// 145 MiB with readers at 4,000 KiB, 601 MiB at 32,000 KiB; ~19 MiB of it
// before the reads, ~7 MiB Go. Besides the caches the reads add 60–80 MiB
// at any cache size tried (the driver's other allocations, and regions its
// allocator keeps for reuse). A server adds its writer's cache (≤ ~31 MiB)
// and a larger Go heap: ~150–180 MiB, under a 256 MB target.
//
// No mmap_size: mapped pages count in the RSS of every connection that
// maps them (each maps the file itself); 8 readers with mmap_size(256 MiB)
// measured 1.9 GiB of RSS (1.7 GiB of it file pages) on the same reads.
const (
	readCacheKiB    = 16_000 // for the whole read pool
	minReadCacheKiB = 500    // per reader
	writerCacheKiB  = 16_000
)

// Checkpoints: SQLite copies the WAL back into the database file (and
// fsyncs it) in a checkpoint, which by default the connection that commits
// runs once the WAL holds 1,000 pages. On the one writer that was 24 % of
// its CPU in a batch-publishing profile, all of it time the writes behind
// waited. So the writer's own checkpoint is only a safety net
// (writerCheckpointPages), and a checkpointer goroutine with its own
// connection runs a PASSIVE checkpoint, which neither waits for nor blocks
// the writer, at most every checkpointEvery while there are commits: a page
// changed by many commits in that time is copied once. SQLite writes the
// WAL from its start again only after a checkpoint copied all of it; one
// taken while commits go on misses their frames, so under writes that never
// pause the WAL grows to writerCheckpointPages, and the writer's own
// checkpoint then copies the little that is left.
const (
	checkpointEvery       = 100 * time.Millisecond
	writerCheckpointPages = 16_384 // 64 MiB of WAL
)

// sqliteURIPath escapes what a SQLite URI filename reads as syntax ('%'
// escapes, '?' the query, '#' the fragment), so that the file opened is
// the one named: "data?x.db" opened "data", beside the lock of another
// name, and a second server ran on it.
func sqliteURIPath(file string) string {
	return strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(file)
}

// openSQLite opens one writer connection (immediate transactions, WAL,
// synchronous=FULL so a commit is durable) and a pool of read-only ones.
func (db *DB) openSQLite(ctx context.Context, file string, readConns int) error {
	if file == "" {
		return fmt.Errorf("sqlite: empty file name (use sqlite:FILE)")
	}
	if strings.HasPrefix(file, "//") {
		// sqlite://x.db made an empty /x.db at the root (the path is
		// //x.db), then failed on SQLite's "invalid uri authority".
		return fmt.Errorf("sqlite: %q is a URL, not a file name: use sqlite:FILE, such as sqlite:webhooks.db or sqlite:/var/lib/pancake/webhooks.db", "sqlite:"+file)
	}
	if dir := filepath.Dir(file); dir != "" {
		if _, err := os.Stat(dir); err != nil {
			return fmt.Errorf("sqlite: directory of %s: %w", file, err)
		}
	}
	// Created owner-only: it holds every webhook's signing secret and the
	// events' payloads (SQLite gives its -wal and -shm files the same
	// mode). A file that exists keeps its mode, and is warned about when
	// others may read it.
	if f, err := os.OpenFile(file, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		f.Close()
	} else if st, serr := os.Stat(file); serr == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o077 != 0 {
		db.logger.Warn("sqlite: the database file may be read by other users of this machine, and it holds the webhooks' signing secrets: chmod 600 it (and its -wal and -shm files)",
			"file", file, "mode", st.Mode().Perm().String())
	}
	db.dialect = sqliteDialect
	pragmas := url.Values{}
	for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "synchronous(FULL)", "foreign_keys(1)",
		fmt.Sprintf("cache_size(-%d)", writerCacheKiB), "temp_store(MEMORY)",
		fmt.Sprintf("wal_autocheckpoint(%d)", writerCheckpointPages)} {
		pragmas.Add("_pragma", p)
	}
	w := pragmas
	w.Set("_txlock", "immediate")
	uri := "file:" + sqliteURIPath(file)
	writeDSN := uri + "?" + w.Encode()
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
	if st, err := os.Stat(file); err == nil {
		db.file, db.fileStat = file, st
	}
	r := url.Values{}
	readerKiB := max(readCacheKiB/max(readConns, 1), minReadCacheKiB)
	for _, p := range []string{"busy_timeout(10000)", "query_only(1)", fmt.Sprintf("cache_size(-%d)", readerKiB)} {
		r.Add("_pragma", p)
	}
	read, err := sql.Open("sqlite", uri+"?"+r.Encode())
	if err != nil {
		write.Close()
		return fmt.Errorf("sqlite: open %s for reading: %w", file, err)
	}
	read.SetMaxOpenConns(readConns)
	read.SetMaxIdleConns(readConns)
	read.SetConnMaxIdleTime(0)
	c := url.Values{}
	for _, p := range []string{"busy_timeout(10000)", "synchronous(FULL)"} {
		c.Add("_pragma", p)
	}
	ckpt, err := sql.Open("sqlite", uri+"?"+c.Encode())
	if err != nil {
		write.Close()
		read.Close()
		return fmt.Errorf("sqlite: open %s for checkpoints: %w", file, err)
	}
	ckpt.SetMaxOpenConns(1)
	ckpt.SetMaxIdleConns(1)
	ckpt.SetConnMaxIdleTime(0)
	db.wdb, db.rdb, db.ckpt = write, read, ckpt
	db.closeFn = func() error {
		// The checkpoint connection closes first: the writer's, the last
		// one, then checkpoints what is left and removes the WAL.
		cerr := ckpt.Close()
		rerr := read.Close()
		if err := write.Close(); err != nil {
			return err
		}
		return errors.Join(rerr, cerr)
	}
	return nil
}

// checkpointer runs the checkpoints of an SQLite database (see
// checkpointEvery) until Close: one when a commit kicks it, then none for
// checkpointEvery.
func (db *DB) checkpointer() {
	defer db.wg.Done()
	pause := time.NewTimer(0)
	defer pause.Stop()
	failing := false // logged once per run of failures
	for {
		select {
		case <-db.stop:
			return
		case <-db.walKick:
		}
		switch err := db.checkpoint(context.Background()); {
		case err != nil && !failing:
			db.logger.Warn("sqlite checkpoint failed; the writer checkpoints once the WAL is large", "error", err)
			failing = true
		case err == nil && failing:
			db.logger.Info("sqlite checkpoints work again")
			failing = false
		}
		pause.Reset(checkpointEvery)
		select {
		case <-db.stop:
			return
		case <-pause.C:
		}
	}
}

// checkpoint copies what it can of the WAL into the database file without
// waiting for readers or the writer.
func (db *DB) checkpoint(ctx context.Context) error {
	var busy, frames, copied int
	if err := db.ckpt.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &frames, &copied); err != nil {
		return fmt.Errorf("wal_checkpoint: %w", err)
	}
	db.checkpoints.Add(1)
	return nil
}

// kickCheckpointer tells the checkpointer that a commit added to the WAL
// (on PostgreSQL, walKick is nil and the select takes its default).
func (db *DB) kickCheckpointer() {
	select {
	case db.walKick <- struct{}{}:
	default:
	}
}

// lockServerPoll is how often lockServer tries again while it waits.
const lockServerPoll = 100 * time.Millisecond

// lockServer takes the server lock of the SQLite database file (see
// Options.Server), waiting up to wait for another server to let go of it;
// closeFn releases it once the database is closed.
func (db *DB) lockServer(ctx context.Context, file string, wait time.Duration) error {
	// Beside the file the path leads to, so that another path to it
	// through a symbolic link takes the same lock (the file exists: it was
	// opened).
	if real, err := filepath.EvalSymlinks(file); err == nil {
		file = real
	}
	path := file + "-server.lock"
	f, err := flockFile(path)
	if errors.Is(err, errServerLocked) && wait > 0 {
		db.logger.Info("another server runs on this SQLite database; waiting for it to stop", "lock", path, "wait", wait.String())
		deadline := time.Now().Add(wait)
		for errors.Is(err, errServerLocked) && time.Now().Before(deadline) {
			select {
			case <-ctx.Done():
				return fmt.Errorf("sqlite %s: wait for the server lock: %w", file, ctx.Err())
			case <-time.After(lockServerPoll):
			}
			f, err = flockFile(path)
		}
	}
	switch {
	case errors.Is(err, errServerLocked):
		return fmt.Errorf("sqlite %s: %w", file, ErrDatabaseInUse)
	case errors.Is(err, errors.ErrUnsupported):
		db.logger.Info("sqlite: no server lock on this system; deliveries a killed server had claimed wait for their lease to run out")
		return nil
	case err != nil:
		return fmt.Errorf("sqlite: server lock: %w", err)
	}
	db.lock = f
	closeDB := db.closeFn
	db.closeFn = func() error { return errors.Join(closeDB(), f.Close()) }
	return nil
}
