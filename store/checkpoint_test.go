package store_test

import (
	"bytes"
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pancake-pos/pancake-webhooks/store"
)

// SQLite's WAL is copied back into the database file in the background,
// not by the writer (whose own checkpoint only starts at 64 MiB of WAL):
// once that has happened, the next commits write the WAL from its start
// again, so its file stops growing.
func TestSQLiteWALIsCheckpointedInTheBackground(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "t.db")
	db, err := store.Open(ctx, "sqlite:"+file, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.WriteForTest(ctx, func(tx *store.Tx) error {
		_, err := tx.ExecContext(ctx, `CREATE TABLE wal_probe (k INTEGER PRIMARY KEY, v BLOB NOT NULL)`)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	blob := bytes.Repeat([]byte("pancake!"), 100<<10/8) // 100 KiB: 25 pages or more per commit
	k := 0
	write := func(commits int) {
		t.Helper()
		for range commits {
			k++
			if err := db.WriteForTest(ctx, func(tx *store.Tx) error {
				_, err := tx.ExecContext(ctx, `INSERT INTO wal_probe (k, v) VALUES ($1, $2)`, k, blob)
				return err
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	walSize := func() int64 {
		t.Helper()
		fi, err := os.Stat(file + "-wal")
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}

	// A reader's snapshot keeps every checkpoint from copying the first
	// ~10 MiB of commits, so they all stay in the WAL.
	reader, err := sql.Open("sqlite", "file:"+file)
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	snapshot, err := reader.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var rows int
	if err := snapshot.QueryRowContext(ctx, `SELECT count(*) FROM wal_probe`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	write(100)
	first := walSize()
	if first < 10<<20 {
		t.Fatalf("the WAL holds %d bytes after 10 MiB of commits behind a reader; want them all", first)
	}
	if err := snapshot.Rollback(); err != nil {
		t.Fatal(err)
	}
	// A commit kicks the checkpointer. Once it has checkpointed and then
	// stayed idle for a second, its last checkpoint began after that
	// commit and copied the whole WAL (a checkpoint taken while commits
	// go on misses their frames, and the WAL is only reused from its
	// start when all of it was copied).
	from := db.CheckpointsForTest()
	write(1)
	for n, since, deadline := from, time.Now(), time.Now().Add(15*time.Second); ; {
		time.Sleep(20 * time.Millisecond)
		if now := db.CheckpointsForTest(); now != n {
			n, since = now, time.Now()
		}
		if n > from && time.Since(since) > time.Second {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d checkpoints in 15 s after a commit; want 1 or 2, then none", n-from)
		}
	}
	write(100) // another ~10 MiB, from the WAL's start if it was checkpointed
	if second := walSize(); second > first+first/2 {
		t.Errorf("the WAL grew from %d to %d bytes with the same writes again; want it checkpointed and reused", first, second)
	}
}
