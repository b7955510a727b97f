package store_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	webhooks "github.com/pancake-pos/pancake-webhooks"

	"github.com/pancake-pos/pancake-webhooks/store"
	"github.com/pancake-pos/pancake-webhooks/store/storetest"
)

func TestSQLite(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, clock *storetest.Clock) *store.DB {
		db, err := store.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "test.db"), store.Options{Now: clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	})
}

// openStore opens dsn, failing the test if it can't.
func openStore(t *testing.T, dsn string, opts store.Options) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), dsn, opts)
	if err != nil {
		t.Fatalf("open (server %v): %v", opts.Server, err)
	}
	return db
}

// claimDue claims what is due, leased for an hour, and says how many.
func claimDue(t *testing.T, db *store.DB) int {
	t.Helper()
	jobs, err := db.ClaimDeliveries(context.Background(), webhooks.Claim{Limit: 10, LeaseFor: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return len(jobs)
}

// leaseQueued queues n deliveries on db (a shop, a webhook, n events) and
// claims them, as a server that dies next leaves them.
func leaseQueued(t *testing.T, db *store.DB, n int) {
	t.Helper()
	now := time.Now()
	storetest.MustCreateShop(t, db, "s", now)
	storetest.MustCreateWebhook(t, db, "s", "https://example.com/hook", now, "order.created")
	in := make([]webhooks.PublishInput, n)
	for i := range in {
		in[i].Event = "order.created"
	}
	if _, err := db.Publish(context.Background(), "s", in); err != nil {
		t.Fatal(err)
	}
	if got := claimDue(t, db); got != n {
		t.Fatalf("claimed %d, want %d", got, n)
	}
}

// wantInUse fails the test unless a server opening dsn, waiting up to wait
// for the lock, is refused with ErrDatabaseInUse.
func wantInUse(t *testing.T, dsn string, wait time.Duration) {
	t.Helper()
	db, err := store.Open(context.Background(), dsn, store.Options{Server: true, LockWait: wait})
	if !errors.Is(err, store.ErrDatabaseInUse) {
		if db != nil {
			db.Close()
		}
		t.Fatalf("a second server: %v, want ErrDatabaseInUse", err)
	}
}

// TestSQLiteServerLock: one server per SQLite file; the next one frees the
// leases a killed one left, and a process that is no server leaves them.
func TestSQLiteServerLock(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	dsn := "sqlite:" + filepath.Join(dir, "lock.db")
	first := openStore(t, dsn, store.Options{Server: true})
	wantInUse(t, dsn, 0)
	// Another path to the same file, through a symbolic link.
	if err := os.Mkdir(filepath.Join(dir, "links"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(dir, "lock.db"), filepath.Join(dir, "links", "lock.db")); err != nil {
		t.Fatal(err)
	}
	wantInUse(t, "sqlite:"+filepath.Join(dir, "links", "lock.db"), 0)
	openStore(t, dsn, store.Options{}).Close() // a command that is no server still opens it

	leaseQueued(t, first, 2)
	first.Close() // as if killed: its claims stay leased for an hour

	plain := openStore(t, dsn, store.Options{})
	if n := claimDue(t, plain); n != 0 {
		t.Errorf("a process that is no server claimed %d deliveries still leased to the first", n)
	}
	plain.Close()
	next := openStore(t, dsn, store.Options{Server: true})
	defer next.Close()
	if n := claimDue(t, next); n != 2 {
		t.Errorf("the next server claimed %d, want the 2 the first had claimed", n)
	}
}

// TestSQLiteServerLockWait: a server opening a SQLite database another
// server holds waits up to LockWait for it, and gets it once it is let go.
func TestSQLiteServerLockWait(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "wait.db")
	first, err := store.Open(ctx, dsn, store.Options{Server: true})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	wantInUse(t, dsn, 300*time.Millisecond)
	if waited := time.Since(start); waited < 300*time.Millisecond {
		t.Errorf("the second server gave up after %v, before its LockWait", waited)
	}
	closed := make(chan error, 1)
	go func() {
		time.Sleep(200 * time.Millisecond)
		closed <- first.Close()
	}()
	next, err := store.Open(ctx, dsn, store.Options{Server: true, LockWait: time.Minute})
	if err != nil {
		t.Fatalf("a server waiting for the first to close: %v", err)
	}
	next.Close()
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
}

// TestPostgresAloneServerFreesDeadLeases: a server that starts while no
// other runs on the database serves at once, and frees the leases it
// found once it is sure no other server runs, but for those taken since;
// one that joins a running server leaves them.
func TestPostgresAloneServerFreesDeadLeases(t *testing.T) {
	t.Parallel()
	dsn := storetest.PostgresDSN(t)
	server := store.Options{Server: true}
	killed := openStore(t, dsn, server)
	leaseQueued(t, killed, 2)
	running := openStore(t, dsn, server) // joins the first: frees nothing
	killed.Close()                       // its claims stay leased for an hour
	if n := claimDue(t, running); n != 0 {
		t.Errorf("a server that joined a running one claimed %d deliveries leased to it", n)
	}
	joining := openStore(t, dsn, server) // another runs: frees nothing
	if n := claimDue(t, joining); n != 0 {
		t.Errorf("a server that started beside a running one claimed %d deliveries leased to a dead one", n)
	}
	running.Close()
	joining.Close()
	// One of the dead leases runs out in 4 s instead of an hour: before
	// the server that starts next is sure it is alone (7 s).
	raw := storetest.RawPostgres(t, dsn)
	if _, err := raw.ExecContext(context.Background(), `UPDATE deliveries SET leased_until = $1
		WHERE id = (SELECT min(id) FROM deliveries WHERE leased_until IS NOT NULL)`, time.Now().Add(4*time.Second).UnixMilli()); err != nil {
		t.Fatal(err)
	}
	alone := openStore(t, dsn, server)
	defer alone.Close()
	// It serves at once: what it is given to send goes out, while the dead
	// leases wait until it is sure no other server runs.
	select {
	case <-alone.LeasesCheckedForTest():
		t.Fatal("the leases were checked before Open returned: Open waited for running servers to show up")
	default:
	}
	if _, err := alone.Publish(context.Background(), "s", []webhooks.PublishInput{{Event: "order.created"}}); err != nil {
		t.Fatal(err)
	}
	if n := claimDue(t, alone); n != 1 {
		t.Errorf("a server alone, before it was sure of it, claimed %d, want only the 1 just published", n)
	}
	// The short dead lease runs out, and this server takes that delivery:
	// its new lease is this server's, not one to free.
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(30 * time.Second); claimDue(t, alone) == 0; <-tick.C {
		if time.Now().After(deadline) {
			t.Fatal("the dead lease of 4 s did not run out in 30 s")
		}
	}
	waitLeasesChecked(t, alone)
	if n := claimDue(t, alone); n != 1 {
		t.Errorf("a server alone claimed %d, want the 1 its dead predecessors left and nobody took since", n)
	}
}

// TestPostgresServersStartedTogetherFreeDeadLeases: when a whole cluster
// died and its servers start again together, the first to start frees
// the dead leases although the others joined before it was sure: they
// started after it noted them.
func TestPostgresServersStartedTogetherFreeDeadLeases(t *testing.T) {
	t.Parallel()
	dsn := storetest.PostgresDSN(t)
	server := store.Options{Server: true}
	killed := openStore(t, dsn, server)
	leaseQueued(t, killed, 2)
	killed.Close() // its claims stay leased for an hour
	var (
		servers [2]*store.DB
		errs    [2]error
		wg      sync.WaitGroup
	)
	for i := range servers {
		wg.Go(func() { servers[i], errs[i] = store.Open(context.Background(), dsn, server) })
	}
	wg.Wait()
	for _, db := range servers {
		if db != nil {
			defer db.Close()
		}
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("open server %d: %v", i+1, err)
		}
	}
	claimed := 0
	for _, db := range servers {
		waitLeasesChecked(t, db)
	}
	for _, db := range servers {
		claimed += claimDue(t, db)
	}
	if claimed != 2 {
		t.Errorf("the servers started together claimed %d, want the 2 the dead cluster left", claimed)
	}
}

// waitLeasesChecked waits until db has freed the leases a dead server
// left, or found none to free, or another server running.
func waitLeasesChecked(t *testing.T, db *store.DB) {
	t.Helper()
	select {
	case <-db.LeasesCheckedForTest():
	case <-time.After(time.Minute):
		t.Fatal("the leases a dead server left were not checked within a minute")
	}
}

// TestPostgresServerThatLostItsSessionKeepsItsLeases: a running server
// whose member lock went with its session (PostgreSQL restarted, or its
// backend ended) is not dead. A server starting in that moment found the
// lock free, counted itself alone and freed the leases the running one
// was still sending: every delivery in flight went out twice (audit).
func TestPostgresServerThatLostItsSessionKeepsItsLeases(t *testing.T) {
	t.Parallel()
	dsn := storetest.PostgresDSN(t)
	running := openStore(t, dsn, store.Options{Server: true})
	defer running.Close()
	leaseQueued(t, running, 2)
	endMemberSession(t, dsn)
	var logs storetest.LogBuffer
	starting := openStore(t, dsn, store.Options{Server: true, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	defer starting.Close()
	waitLeasesChecked(t, starting)
	if !strings.Contains(logs.String(), "this server started alone") {
		t.Fatalf("the starting server did not note the leases (the running one's lock was still held?); its log:\n%s", logs.String())
	}
	if n := claimDue(t, starting); n != 0 {
		t.Errorf("a server started while a running one had lost its session claimed %d deliveries leased to it", n)
	}
	if !strings.Contains(logs.String(), "a server that ran before holds its member lock again") {
		t.Errorf("the starting server did not tell why it left the leases; its log:\n%s", logs.String())
	}
}

// TestPostgresServerThatLostItsFirstSessionLeavesTheLeases: a starting
// server whose own session ended while it waited (PostgreSQL restarted, so
// running servers lost theirs too) cannot tell who ran before: it frees
// nothing, and says so.
func TestPostgresServerThatLostItsFirstSessionLeavesTheLeases(t *testing.T) {
	t.Parallel()
	dsn := storetest.PostgresDSN(t)
	killed := openStore(t, dsn, store.Options{Server: true})
	leaseQueued(t, killed, 2)
	killed.Close() // its claims stay leased for an hour
	var logs storetest.LogBuffer
	starting := openStore(t, dsn, store.Options{Server: true, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	defer starting.Close()
	endMemberSession(t, dsn)
	waitLeasesChecked(t, starting)
	if n := claimDue(t, starting); n != 0 {
		t.Errorf("a server that lost its first session while it waited claimed %d deliveries it could not tell were dead", n)
	}
	if !strings.Contains(logs.String(), "lost the session it joined with") {
		t.Errorf("the server did not tell why it left the leases; its log:\n%s", logs.String())
	}
}

// endMemberSession ends the one session holding the member lock of dsn's
// schema, as a PostgreSQL restart or a dropped connection does, and waits
// (up to 5 s) until it has ended, and its locks with it.
func endMemberSession(t *testing.T, dsn string) {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	var ended int
	if err := storetest.RawPostgres(t, dsn).QueryRowContext(context.Background(), `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, 5000))
		FROM pg_locks WHERE locktype = 'advisory' AND mode = 'ShareLock' AND classid = $1 AND objid = hashtext($2)::oid`,
		store.MemberLockKey, u.Query().Get("search_path")).Scan(&ended); err != nil || ended != 1 {
		t.Fatalf("ended %d member sessions, %v; want 1", ended, err)
	}
}

// TestPostgresCloseLetsGoOfTheMemberLock: when Close returns, a server
// starting next (a restart) finds itself alone. Closing the session alone
// did not do it: PostgreSQL releases a closed session's locks only once it
// has ended its backend, a moment later, and 64 of 200 restarts in a loop
// found the lock still held, counted another server running, and left the
// dead leases to run out.
func TestPostgresCloseLetsGoOfTheMemberLock(t *testing.T) {
	t.Parallel()
	dsn := storetest.PostgresDSN(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	schema := u.Query().Get("search_path")
	pool, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	raw, err := pool.Conn(context.Background()) // one session: the unlock must be the lock's
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	for round := range 50 {
		openStore(t, dsn, store.Options{Server: true}).Close()
		var alone bool
		if err := raw.QueryRowContext(context.Background(), `SELECT pg_try_advisory_lock($1, hashtext($2))`, store.MemberLockKey, schema).Scan(&alone); err != nil {
			t.Fatal(err)
		}
		if !alone {
			t.Fatalf("round %d: the member lock was still held after Close returned", round+1)
		}
		if _, err := raw.ExecContext(context.Background(), `SELECT pg_advisory_unlock($1, hashtext($2))`, store.MemberLockKey, schema); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPostgresServerTakesItsMemberLockAgain: a server whose member lock
// went with its connection takes it again, so that a server starting later
// does not count itself alone and free the running one's leases.
func TestPostgresServerTakesItsMemberLockAgain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := storetest.PostgresDSN(t)
	raw := storetest.RawPostgres(t, dsn)
	running := openStore(t, dsn, store.Options{Server: true})
	defer running.Close()
	// This schema's member lock (7240123, hashtext of the schema): how many
	// sessions hold it, and one of them.
	holder := func() (n, pid int) {
		t.Helper()
		err := raw.QueryRowContext(ctx, `SELECT count(*), COALESCE(min(pid), 0) FROM pg_locks
			WHERE locktype = 'advisory' AND granted AND classid = 7240123
			AND objid::bigint = (hashtext(current_schema())::bigint & 4294967295)`).Scan(&n, &pid)
		if err != nil {
			t.Fatal(err)
		}
		return n, pid
	}
	n, lost := holder()
	if n != 1 {
		t.Fatalf("%d sessions hold the member lock, want the running server's 1", n)
	}
	if _, err := raw.ExecContext(ctx, `SELECT pg_terminate_backend($1)`, lost); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if n, pid := holder(); n == 1 && pid != lost {
			break
		}
		if time.Now().After(deadline) {
			n, pid := holder()
			t.Fatalf("the server did not take its member lock again within 20s (%d holders, e.g. %d)", n, pid)
		}
		time.Sleep(200 * time.Millisecond)
	}

	leaseQueued(t, running, 1)
	later := openStore(t, dsn, store.Options{Server: true})
	defer later.Close()
	if n := claimDue(t, later); n != 0 {
		t.Errorf("a server started later claimed %d deliveries leased to the running one", n)
	}
}

// TestPostgresMissingSchema: a search_path naming no schema of the
// database is an error that says so, not PostgreSQL's "no schema has been
// selected to create in".
func TestPostgresMissingSchema(t *testing.T) {
	t.Parallel()
	u, err := url.Parse(storetest.PostgresDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", q.Get("search_path")+"_missing")
	u.RawQuery = q.Encode()
	db, err := store.Open(context.Background(), u.String(), store.Options{})
	if err == nil {
		db.Close()
		t.Fatal("opened a database whose search_path names no schema")
	}
	if !strings.Contains(err.Error(), "no schema of the search_path") || !strings.Contains(err.Error(), "_missing") {
		t.Errorf("error = %v, want it to say that the search_path's schema does not exist", err)
	}
}

func TestPostgres(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, clock *storetest.Clock) *store.DB {
		db, err := store.Open(context.Background(), storetest.PostgresDSN(t), store.Options{Now: clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	})
}

func TestPostgresReplicas(t *testing.T) {
	t.Parallel()
	open := func(t *testing.T, dsn string) *store.DB {
		db, err := store.Open(context.Background(), dsn, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}

	t.Run("OneLeaderAtATimeAndTakeOver", func(t *testing.T) {
		t.Parallel()
		dsn := storetest.PostgresDSN(t)
		a, b := open(t, dsn), open(t, dsn)
		ctx := context.Background()
		if !a.IsLeader(ctx) {
			t.Fatal("first replica did not take the lead")
		}
		if b.IsLeader(ctx) {
			t.Fatal("second replica leads too")
		}
		if !a.IsLeader(ctx) {
			t.Fatal("leader lost the lead while alive")
		}
		a.Close()
		if !b.IsLeader(ctx) {
			t.Fatal("second replica did not take over when the leader went away")
		}
	})

	t.Run("QueuingWakesOtherReplicas", func(t *testing.T) {
		t.Parallel()
		dsn := storetest.PostgresDSN(t)
		a := open(t, dsn)
		woke := make(chan struct{}, 10)
		// The replica that listens opens after the schema exists.
		b := open(t, dsn)
		b.OnQueued(func(told bool) {
			if told {
				t.Error("another replica's queued deliveries came as told")
			}
			select {
			case woke <- struct{}{}:
			default:
			}
		})
		now := time.Now()
		storetest.MustCreateShop(t, a, "s", now)
		storetest.MustCreateWebhook(t, a, "s", "https://x.example", now, "order.created")
		// LISTEN starts asynchronously: publish until the other replica hears.
		deadline := time.After(10 * time.Second)
		for {
			if _, err := a.Publish(context.Background(), "s", []webhooks.PublishInput{{Event: "order.created"}}); err != nil {
				t.Fatal(err)
			}
			select {
			case <-woke:
				return
			case <-time.After(200 * time.Millisecond):
			case <-deadline:
				t.Fatal("the other replica was not woken by NOTIFY within 10s")
			}
		}
	})
}

// openReplica opens a store on dsn as another replica (or the CLI) would,
// closed when t ends.
func openReplica(t *testing.T, dsn string) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), dsn, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// A webhook disabled or deleted through one replica is announced to the
// others, whose dispatchers must forget what they had claimed of it; a
// deployment in another schema of the database hears none of it.
func TestPostgresReplicasHearOfStoppedWebhooks(t *testing.T) {
	t.Parallel()
	dsn := storetest.PostgresDSN(t)
	a := openReplica(t, dsn)
	b := openReplica(t, dsn) // after the schema exists
	heard := make(chan string, 10)
	b.OnWebhookStopped(func(id string) { heard <- id })
	now := time.Now()
	storetest.MustCreateShop(t, a, "s", now)
	ctx := context.Background()
	f := false
	// LISTEN starts asynchronously: disable fresh webhooks until the other
	// replica hears of one (of those disabled before, it may hear or not).
	disabled := map[string]bool{}
	deadline := time.After(10 * time.Second)
	for heardOne := false; !heardOne; {
		w := storetest.MustCreateWebhook(t, a, "s", "https://x.example", now, "order.created")
		if _, err := a.UpdateWebhook(ctx, "s", w.ID, webhooks.WebhookUpdate{IsActive: &f}); err != nil {
			t.Fatal(err)
		}
		disabled[w.ID] = true
		select {
		case id := <-heard:
			if !disabled[id] {
				t.Fatalf("heard %s stopped; it was not", id)
			}
			heardOne = true
		case <-time.After(200 * time.Millisecond):
		case <-deadline:
			t.Fatal("the other replica did not hear of a disable within 10s")
		}
	}
	// Notifications arrive in commit order: one from another schema's
	// deployment, committed before the delete below, would come first.
	other := openReplica(t, storetest.PostgresDSN(t))
	storetest.MustCreateShop(t, other, "s", now)
	elsewhere := storetest.MustCreateWebhook(t, other, "s", "https://x.example", now, "order.created")
	if _, err := other.UpdateWebhook(ctx, "s", elsewhere.ID, webhooks.WebhookUpdate{IsActive: &f}); err != nil {
		t.Fatal(err)
	}
	gone := storetest.MustCreateWebhook(t, a, "s", "https://y.example", now, "order.created")
	if err := a.DeleteWebhook(ctx, "s", gone.ID); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case id := <-heard:
			if id == gone.ID {
				return
			}
			if !disabled[id] {
				t.Fatalf("heard %s stopped; it was not", id)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the other replica did not hear of the delete within 10s")
		}
	}
}

// A webhook whose URL or secret changed through one replica is announced to
// the others, whose dispatchers must give back what they had claimed of it.
func TestPostgresReplicasHearOfChangedWebhooks(t *testing.T) {
	t.Parallel()
	dsn := storetest.PostgresDSN(t)
	a := openReplica(t, dsn)
	b := openReplica(t, dsn)
	heard := make(chan string, 10)
	b.OnWebhookChanged(func(id string) { heard <- id })
	now := time.Now()
	storetest.MustCreateShop(t, a, "s", now)
	ctx := context.Background()
	w := storetest.MustCreateWebhook(t, a, "s", "https://x.example", now, "order.created")
	// LISTEN starts asynchronously: rotate until the other replica hears.
	deadline := time.After(10 * time.Second)
	for {
		if _, err := a.RotateSecret(ctx, "s", w.ID, webhooks.NewSecret(), time.Hour); err != nil {
			t.Fatal(err)
		}
		select {
		case id := <-heard:
			if id != w.ID {
				t.Fatalf("heard %s changed; want %s", id, w.ID)
			}
			return
		case <-time.After(200 * time.Millisecond):
		case <-deadline:
			t.Fatal("the other replica did not hear of a rotation within 10s")
		}
	}
}

// A key revoked through one store is heard of by the other replicas', and
// only those of this schema's deployment. A replica may also be told ""
// (any shop: it forgets every key) when it starts listening.
func TestPostgresReplicasHearOfRevokedKeys(t *testing.T) {
	t.Parallel()
	dsn := storetest.PostgresDSN(t)
	a := openReplica(t, dsn)
	b := openReplica(t, dsn)
	other := openReplica(t, storetest.PostgresDSN(t))
	heard := make(chan string, 100)
	b.OnKeysRevoked(func(shop string) { heard <- shop })
	ctx, now := context.Background(), time.Now()
	storetest.MustCreateShop(t, a, "s", now)
	storetest.MustCreateShop(t, a, "final", now)
	storetest.MustCreateShop(t, other, "elsewhere", now)
	revoke := func(db *store.DB, shop string) {
		t.Helper()
		_, k := webhooks.NewAPIKey(shop, now)
		if err := db.CreateAPIKey(ctx, k); err != nil {
			t.Fatal(err)
		}
		if err := db.RevokeAPIKey(ctx, shop, k.ID); err != nil {
			t.Fatal(err)
		}
	}
	// LISTEN starts asynchronously: revoke until b hears of one.
	deadline := time.After(10 * time.Second)
	for heardOne := false; !heardOne; {
		revoke(a, "s")
		wait := time.After(200 * time.Millisecond)
	listen:
		for {
			select {
			case shop := <-heard:
				switch shop {
				case "":
				case "s":
					heardOne = true
					break listen
				default:
					t.Fatalf("heard of a revocation in shop %q; it was in s", shop)
				}
			case <-wait:
				break listen
			case <-deadline:
				t.Fatal("the other replica did not hear of a revocation within 10s")
			}
		}
	}
	// Notifications arrive in commit order: one from another schema's
	// deployment, committed first, would come before the final one.
	revoke(other, "elsewhere")
	revoke(a, "final")
	for {
		select {
		case shop := <-heard:
			switch shop {
			case "final":
				return
			case "", "s": // the loop's last ones
			default:
				t.Fatalf("heard of a revocation in shop %q, of another schema's deployment", shop)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the other replica did not hear of the final revocation within 10s")
		}
	}
}

// A server's store on SQLite tells of another process's commits (the CLI
// revoking a key) as revocations in any shop, and does not take its own
// writes, reads and checkpoints for them.
func TestSQLiteServerHearsOfOtherWriters(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "test.db")
	ctx, now := context.Background(), time.Now()
	srv, err := store.Open(ctx, "sqlite:"+file, store.Options{Server: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	heard := make(chan string, 1000)
	srv.OnKeysRevoked(func(shop string) { heard <- shop })
	storetest.MustCreateShop(t, srv, "s", now)
	w := storetest.MustCreateWebhook(t, srv, "s", "https://x.example", now, "order.created")
	// Its own writes and reads for longer than a few checks.
	for end := time.Now().Add(700 * time.Millisecond); time.Now().Before(end); {
		desc := fmt.Sprintf("d %v", time.Now().UnixNano())
		if _, err := srv.UpdateWebhook(ctx, "s", w.ID, webhooks.WebhookUpdate{Description: &desc}); err != nil {
			t.Fatal(err)
		}
		if _, err := srv.ListWebhooks(ctx, "s"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	_, k := webhooks.NewAPIKey("s", now)
	if err := srv.CreateAPIKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	if err := srv.RevokeAPIKey(ctx, "s", k.ID); err != nil {
		t.Fatal(err)
	}
	select {
	case shop := <-heard:
		if shop != "s" {
			t.Fatalf("heard %q after the server's own writes and revocation, want \"s\"", shop)
		}
	default:
		t.Fatal("the server's own revocation was not heard of")
	}
	time.Sleep(500 * time.Millisecond)
	if len(heard) > 0 {
		t.Fatalf("heard of %d revocations after the server's own writes only", len(heard))
	}
	// Another process's store (the CLI's) revokes a key.
	cli, err := store.Open(ctx, "sqlite:"+file, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	_, k2 := webhooks.NewAPIKey("s", now)
	if err := cli.CreateAPIKey(ctx, k2); err != nil {
		t.Fatal(err)
	}
	if err := cli.RevokeAPIKey(ctx, "s", k2.ID); err != nil {
		t.Fatal(err)
	}
	select {
	case shop := <-heard:
		if shop != "" {
			t.Fatalf("heard %q of another process's revocation, want \"\" (any shop)", shop)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the server did not hear of another process's revocation within 5s")
	}
}

// A PostgreSQL without autovacuum bloats the queue and leaves the planner
// without statistics: the store says so when it opens, and only then.
func TestPostgresWarnsWithoutAutovacuum(t *testing.T) {
	t.Parallel()
	dsn := storetest.PostgresDSN(t)
	var logs bytes.Buffer
	db, err := store.Open(context.Background(), dsn, store.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	raw := storetest.RawPostgres(t, dsn)
	var setting string
	if err := raw.QueryRow("SELECT current_setting('autovacuum')").Scan(&setting); err != nil {
		t.Fatal(err)
	}
	warned := strings.Contains(logs.String(), "autovacuum is off")
	if warned != (setting != "on") {
		t.Fatalf("autovacuum = %s, warned = %v; log:\n%s", setting, warned, logs.String())
	}
}

// A PostgreSQL pool has 16 connections unless the URL's pool_max_conns
// says otherwise: a larger or smaller one is kept (it was raised to 16
// without a word), and one too small to run in is refused by name.
func TestPostgresPoolMaxConns(t *testing.T) {
	t.Parallel()
	dsn := storetest.PostgresDSN(t)
	for _, tt := range []struct {
		param string
		want  int32
	}{{"", store.DefaultPGMaxConns}, {"&pool_max_conns=9", 9}, {"&pool_max_conns=40", 40}} {
		db := openStore(t, dsn+tt.param, store.Options{})
		if got := db.PoolMaxConnsForTest(); got != tt.want {
			t.Errorf("%q: a pool of %d, want %d", tt.param, got, tt.want)
		}
		db.Close()
	}
	_, err := store.Open(context.Background(), dsn+"&pool_max_conns=4", store.Options{})
	if err == nil || !strings.Contains(err.Error(), "pool_max_conns=4 is too few") {
		t.Fatalf("pool_max_conns=4: %v; want it refused by name", err)
	}
}

// A server whose clock is off PostgreSQL's says so at start: it keeps the
// database's time, but its logs and TLS checks read the machine's.
func TestPostgresServerWarnsOfItsClock(t *testing.T) {
	t.Parallel()
	dsn := storetest.PostgresDSN(t)
	for _, tt := range []struct {
		skew time.Duration
		warn bool
	}{{0, false}, {time.Minute, true}, {-time.Minute, true}} {
		var logs bytes.Buffer
		db := openStore(t, dsn, store.Options{Server: true, DatabaseClock: true, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
			Now: func() time.Time { return time.Now().Add(tt.skew) }})
		db.Close()
		if warned := strings.Contains(logs.String(), "clock is off"); warned != tt.warn {
			t.Errorf("a clock %v off: warned %v, want %v\n%s", tt.skew, warned, tt.warn, logs.String())
		}
	}
}

// TestPostgresReplicasKeepTheDatabasesClock: replicas compare the lease
// times each of them takes. One whose clock ran 100 s ahead took the
// deliveries another had leased as soon as its own clock passed their end,
// and sent them a second time (audit: 39 of 40). With DatabaseClock (what
// serve sets) every replica keeps the database's time.
func TestPostgresReplicasKeepTheDatabasesClock(t *testing.T) {
	t.Parallel()
	dsn := storetest.PostgresDSN(t)
	ctx := context.Background()
	first := openStore(t, dsn, store.Options{Server: true, DatabaseClock: true})
	defer first.Close()
	var logs bytes.Buffer
	ahead := openStore(t, dsn, store.Options{Server: true, DatabaseClock: true,
		Now:    func() time.Time { return time.Now().Add(100 * time.Second) },
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	defer ahead.Close()
	if off := ahead.Now().Sub(time.Now()); off.Abs() > time.Second {
		t.Errorf("a replica whose clock runs 100 s ahead keeps a time %v off the database's", off)
	}
	if !strings.Contains(logs.String(), "clock is off") {
		t.Errorf("no warning of the machine's clock:\n%s", logs.String())
	}

	now := first.Now()
	storetest.MustCreateShop(t, first, "s", now)
	storetest.MustCreateWebhook(t, first, "s", "https://example.com/hook", now, "order.created")
	if _, err := first.Publish(ctx, "s", []webhooks.PublishInput{{Event: "order.created"}, {Event: "order.created"}}); err != nil {
		t.Fatal(err)
	}
	claim := webhooks.Claim{Limit: 10, LeaseFor: 30 * time.Second}
	if jobs, err := first.ClaimDeliveries(ctx, claim); err != nil || len(jobs) != 2 {
		t.Fatalf("claimed %d, %v; want 2", len(jobs), err)
	}
	if jobs, err := ahead.ClaimDeliveries(ctx, claim); err != nil || len(jobs) != 0 {
		t.Errorf("the replica ahead claimed %d deliveries leased to another for 30 s more (%v)", len(jobs), err)
	}
}

// The SQLite file opened is the one named, whatever its characters ('?'
// opened the name before it, '%41' an "A"), and it is made owner-only: it
// holds every webhook's signing secret.
func TestSQLiteFileIsTheOneNamedAndPrivate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	name := filepath.Join(dir, "we?ird#x%41.db")
	db := openStore(t, "sqlite:"+name, store.Options{Server: true})
	storetest.MustCreateShop(t, db, "s", time.Now())
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, e := range entries {
		files = append(files, e.Name())
		if strings.HasSuffix(e.Name(), "-server.lock") {
			continue
		}
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if perm := info.Mode().Perm(); perm&0o077 != 0 {
			t.Errorf("%s has mode %v; want no access for others", e.Name(), perm)
		}
	}
	db.Close()
	want := []string{"we?ird#x%41.db", "we?ird#x%41.db-server.lock", "we?ird#x%41.db-shm", "we?ird#x%41.db-wal"}
	if !slices.Equal(files, want) {
		t.Errorf("files %q; want %q", files, want)
	}
}

// TestWritesAfterCloseFail: a write that came as the store closed could
// land in the writers' queue after their last drain and wait for ever,
// whatever its context (code review: 9 of 20 did).
func TestWritesAfterCloseFail(t *testing.T) {
	t.Parallel()
	db := openStore(t, "sqlite:"+filepath.Join(t.TempDir(), "closed.db"), store.Options{})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	const n = 50
	errs := make(chan error, n)
	for i := range n {
		go func() {
			id := fmt.Sprintf("s%d", i)
			_, k := webhooks.NewAPIKey(id, time.Now())
			errs <- db.CreateShop(context.Background(), &webhooks.Shop{ID: id, CreatedAt: time.Now()}, k)
		}()
	}
	timeout := time.After(10 * time.Second)
	for i := range n {
		select {
		case err := <-errs:
			if err == nil {
				t.Error("a write after Close succeeded")
			}
		case <-timeout:
			t.Fatalf("%d of %d writes after Close still wait after 10s", n-i, n)
		}
	}
}

// TestSQLiteURLIsRefused: sqlite://x.db (a URL habit) made an empty file
// /x.db at the root of the file system, then failed with SQLite's
// "invalid uri authority" and the connection's pragmas (lifecycle audit).
func TestSQLiteURLIsRefused(t *testing.T) {
	t.Parallel()
	name := fmt.Sprintf("pancake-url-test-%d.db", time.Now().UnixNano())
	for _, dsn := range []string{"sqlite://" + name, "sqlite:///" + name, "sqlite://"} {
		db, err := store.Open(t.Context(), dsn, store.Options{})
		if err == nil {
			db.Close()
			t.Errorf("%s: opened", dsn)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, "use sqlite:FILE") || strings.Contains(msg, "_pragma") {
			t.Errorf("%s: %v; want one saying to use sqlite:FILE", dsn, err)
		}
	}
	if _, err := os.Stat("/" + name); err == nil {
		os.Remove("/" + name)
		t.Errorf("/%s was made", name)
	}
}

// TestSQLiteNotReadyOnceItsFileIsGone: a database file removed or
// replaced under a running server went unnoticed: /readyz said ok while
// the open connections wrote to a file no path led to any more, lost at the
// next start (lifecycle audit). Ready says so now, and ok once it is back.
func TestSQLiteNotReadyOnceItsFileIsGone(t *testing.T) {
	t.Parallel()
	name := filepath.Join(t.TempDir(), "ready.db")
	db := openStore(t, "sqlite:"+name, store.Options{Server: true})
	defer db.Close()
	ctx := t.Context()
	if err := db.Ready(ctx); err != nil {
		t.Fatalf("ready at start: %v", err)
	}
	moved := name + ".moved"
	if err := os.Rename(name, moved); err != nil {
		t.Fatal(err)
	}
	if err := db.Ready(ctx); err == nil || !strings.Contains(err.Error(), "no longer the database file") {
		t.Errorf("ready with the file moved away: %v; want an error saying so", err)
	}
	// Another file at its path is not it either.
	if err := os.WriteFile(name, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := db.Ready(ctx); err == nil {
		t.Error("ready with another file at the path: no error")
	}
	if err := os.Rename(moved, name); err != nil {
		t.Fatal(err)
	}
	if err := db.Ready(ctx); err != nil {
		t.Errorf("ready with the file back: %v", err)
	}
}

// A database a build before the first release made, with another schema
// at the same version, is refused by a server at start, naming what
// differs and how to move the data; it answered 500s on the delivery
// lists while /readyz said ok.
func TestServerRefusesASchemaItDoesNotMake(t *testing.T) {
	t.Parallel()
	sqliteDSN := func(tb testing.TB) string { return "sqlite:" + filepath.Join(tb.TempDir(), "old.db") }
	for _, tt := range []struct {
		name   string
		dsn    func(testing.TB) string
		change string
		want   string
	}{
		{"SQLiteTableMissing", sqliteDSN, `DROP TABLE pending_counts`, "table pending_counts"},
		{"SQLiteIndexOfOtherColumns", sqliteDSN, `DROP INDEX deliveries_event; CREATE INDEX deliveries_event ON deliveries (event)`, "index deliveries_event"},
		{"PostgresFunctionMissing", storetest.PostgresDSN, `DROP FUNCTION deliveries_next_due()`, "deliveries_next_due"},
		{"PostgresTableMissing", storetest.PostgresDSN, `DROP TABLE delivery_counts CASCADE`, "delivery_counts"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dsn := tt.dsn(t)
			openStore(t, dsn, store.Options{Server: true}).Close()
			var raw *sql.DB
			if file, ok := strings.CutPrefix(dsn, "sqlite:"); ok {
				var err error
				if raw, err = sql.Open("sqlite", file); err != nil {
					t.Fatal(err)
				}
				defer raw.Close()
			} else {
				raw = storetest.RawPostgres(t, dsn)
			}
			if _, err := raw.ExecContext(context.Background(), tt.change); err != nil {
				t.Fatal(err)
			}
			_, err := store.Open(context.Background(), dsn, store.Options{Server: true})
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "db copy") {
				t.Fatalf("open after %q: %v; want a refusal naming %s and db copy", tt.change, err, tt.want)
			}
			// The data can still be read out (the CLI; db copy's source,
			// which keeps servers off as a server does).
			openStore(t, dsn, store.Options{}).Close()
			openStore(t, dsn, store.Options{Server: true, AnySchema: true}).Close()
		})
	}
}
