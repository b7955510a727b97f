package store_test

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/pancake-pos/pancake-webhooks/store"
	"github.com/pancake-pos/pancake-webhooks/store/storetest"
)

// DiscardConn must end the session of a pooled connection, and with it the
// advisory locks it holds: closing a *sql.Conn only gives it back to the
// pool, locks and all.
func TestDiscardConnEndsItsSession(t *testing.T) {
	t.Parallel()
	dsn := storetest.PostgresDSN(t)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	sdb := stdlib.OpenDBFromPool(pool)
	defer sdb.Close()
	key := rand.Int32()

	holder, err := sdb.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := holder.ExecContext(ctx, `SELECT pg_advisory_lock(7240199, $1)`, key); err != nil {
		t.Fatal(err)
	}
	store.DiscardConn(holder)

	// Asked from a session of its own (one of the pool's might be the
	// holder's, where the lock is granted again).
	other, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(ctx)
	// The server ends the session once it reads the closed socket, a
	// moment after the close: taking the lock at once failed now and
	// then (CI). A session kept in the pool holds it for ever.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var got bool
		if err := other.QueryRow(ctx, `SELECT pg_try_advisory_lock(7240199, $1)`, key).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the lock is still held 5 s after discardConn: its session lives on in the pool")
		}
	}
}
