package store

import (
	"context"
	"path/filepath"
	"testing"
)

// Claims commit without an fsync on SQLite; every other write must still
// commit with synchronous=FULL (2), whatever ran before it.
func TestOnlyClaimsCommitLazily(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "s.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	mode := func(tx *Tx) int {
		var v int
		if err := tx.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	for i := range 3 {
		var durable, lazy int
		if err := db.write(ctx, func(tx *Tx) error { durable = mode(tx); return nil }); err != nil {
			t.Fatal(err)
		}
		if err := db.writeClaim(ctx, 1, func(tx *Tx) error { lazy = mode(tx); return nil }); err != nil {
			t.Fatal(err)
		}
		if durable != 2 || lazy != 1 {
			t.Fatalf("round %d: synchronous = %d for a durable write, %d for a claim; want 2 and 1", i, durable, lazy)
		}
	}
}

// A PostgreSQL replica hears its own notification of queued deliveries
// too: taken as another's, it told the dispatcher of deliveries it knew
// of, which turned the hand-over off for every webhook. Only the others'
// reach the hooks; one without an id (an older build's) does too.
func TestOwnQueuedNotificationIsSkipped(t *testing.T) {
	db := &DB{instance: "me"}
	var heard []bool
	db.OnQueued(func(told bool) { heard = append(heard, told) })
	db.heardQueued("me")
	db.heardQueued("another")
	db.heardQueued("")
	if len(heard) != 2 || heard[0] || heard[1] {
		t.Errorf("hooks called with %v; want [false false] (the other two, not its own)", heard)
	}
}
