package store_test

import (
	"context"
	"database/sql"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pancake-pos/pancake-webhooks/store"
	"github.com/pancake-pos/pancake-webhooks/store/storetest"
)

// TestASlowCommitIsToldAndTimed: while another process holds the SQLite
// database's write lock, the store's writes wait; the operator is told
// once the commit has waited the slow-commit time, and again when it
// ends, and the commit's time is in its histogram. Before, writes of a
// database that hung waited without a word.
func TestASlowCommitIsToldAndTimed(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "slow.db")
	var logs storetest.LogBuffer
	reg := prometheus.NewRegistry()
	db := openStore(t, "sqlite:"+path, store.SlowCommitForTest(store.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Registerer: reg},
		100*time.Millisecond))
	t.Cleanup(func() { db.Close() })
	ctx := context.Background()

	raw, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	conn, err := raw.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		done <- db.WriteForTest(ctx, func(tx *store.Tx) error {
			_, err := tx.ExecContext(ctx, "CREATE TABLE slow_probe (x INTEGER)")
			return err
		})
	}()
	waitLog := func(what string) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !strings.Contains(logs.String(), what); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no log line %q; logs:\n%s", what, logs.String())
			}
		}
	}
	waitLog(`level=WARN msg="database: a commit has taken 100ms so far`)
	select {
	case <-done:
		t.Fatal("the write committed while another process held the write lock")
	default:
	}
	if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("the write, once the lock was let go: %v", err)
	}
	waitLog(`level=INFO msg="database: the slow commit has ended"`)

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "pancake_db_commit_duration_seconds" {
			h := mf.GetMetric()[0].GetHistogram()
			if h.GetSampleCount() == 0 || h.GetSampleSum() < 0.1 {
				t.Fatalf("commit histogram: %d commits, %.3f s in all; want the slow one's 0.1 s at least", h.GetSampleCount(), h.GetSampleSum())
			}
			return
		}
	}
	t.Fatal("no pancake_db_commit_duration_seconds")
}

// TestAStoreClosedLeavesItsRegistry: a store opened again on the same
// registry after Close (a restart in one process, a test) registers its
// metrics again; they were left registered, and the second Open failed.
func TestAStoreClosedLeavesItsRegistry(t *testing.T) {
	t.Parallel()
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "again.db")
	reg := prometheus.NewRegistry()
	for i := range 2 {
		db, err := store.Open(context.Background(), dsn, store.Options{Registerer: reg})
		if err != nil {
			t.Fatalf("open %d: %v", i+1, err)
		}
		if err := db.Close(); err != nil {
			t.Fatalf("close %d: %v", i+1, err)
		}
	}
}
