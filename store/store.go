// Package store implements the domain services of Pancake Webhooks over
// database/sql, for SQLite (the embedded default) and PostgreSQL. SQL lives
// only here. Every write goes through a group-commit writer: concurrent
// writes share one transaction and one fsync (each in its own savepoint only
// when one of them fails), and each caller is answered when its transaction
// is durable.
package store

import (
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	webhooks "github.com/pancake-pos/pancake-webhooks"
)

// Defaults of Options.
const (
	DefaultMaxBatch     = 256
	DefaultReadConns    = 8
	DefaultPGWriters    = 2 // see Options.Writers
	DefaultPGMaxConns   = 16
	DefaultHealthWindow = 24 * time.Hour
)

// Options configure a DB. Zero values take the documented defaults.
type Options struct {
	Logger *slog.Logger     // default: discard
	Now    func() time.Time // this machine's clock; default time.Now
	// DatabaseClock makes DB.Now, on PostgreSQL, this machine's clock
	// corrected by its offset from the database server's, measured at Open
	// and every 30 s (clockCheckEvery): replicas compare the lease, retry and
	// health times each of them takes, so they must all keep one clock. A
	// replica whose clock ran 100 s ahead took, and sent again, deliveries
	// the others were still sending (audit). Ignored on SQLite, which one
	// machine serves.
	DatabaseClock bool
	// MaxBatch is the most writes one group commit takes; default 256.
	MaxBatch int
	// ReadConns is the size of the read pool; default 8.
	ReadConns int
	// Writers is how many group-commit writers run at once: 1 on SQLite
	// (one writer connection), default 2 on PostgreSQL. Each writer takes
	// what waits when it is free, so more writers commit more, smaller
	// transactions, and PostgreSQL's work per commit (the counters' fold,
	// the WAL flush) does not shrink with the commit. Publishing single
	// events, PostgreSQL spent ~400 µs of CPU per event with 4 writers,
	// 256–283 µs with 2, 213–227 µs with 1; the open-loop tail and the
	// deliveries made while batches are published were worse with 4 too
	// (BENCHMARKS.md, sixth sitting). One writer was slowest at batch
	// publishing; a second keeps it as fast as with 4.
	Writers int
	// Server says this process runs the delivery engine, or must keep
	// servers off the database while it works (db copy's source). On
	// SQLite, Open then takes the database's server lock (FILE-server.lock
	// beside it), failing with ErrDatabaseInUse while another server holds
	// it, and frees the leases of queued deliveries, which only a server
	// that died can have left: they are sent again at once instead of after
	// their lease. On PostgreSQL, where replicas share the work, a server
	// that starts while no other runs frees them likewise, a few seconds
	// after Open, once it is sure of it (see joinServers); one that joins
	// running replicas leaves them to run out.
	Server bool
	// AnySchema lets Open with Server open a database whose schema is not
	// the one the migrations make (a build's before the first release, or
	// one changed by hand), which a server refuses: db copy's source, to
	// move its data into a new database.
	AnySchema bool
	// LockWait is how long Open with Server waits for another server to
	// let go of the SQLite database (a restart that starts the new server
	// while the old one still stops gracefully) before it fails with
	// ErrDatabaseInUse; 0: it fails at once.
	LockWait time.Duration
	// Registerer receives the store's metrics (nil: none are kept): how
	// long each group commit takes, pancake_db_commit_duration_seconds,
	// and the deliveries given up, pancake_deliveries_given_up_total.
	// Close unregisters them.
	Registerer prometheus.Registerer

	slowCommit time.Duration // default slowCommitDefault; tests shorten it
}

// ErrDatabaseInUse is wrapped by Open's error when Options.Server is set and
// another server runs on the same SQLite database.
var ErrDatabaseInUse = errors.New("another pancake-webhooks server is running on this SQLite database")

// errServerLocked says another process holds a server lock.
var errServerLocked = errors.New("locked by another process")

// DB is the store: it implements every service interface of the domain.
type DB struct {
	dialect dialect
	wdb     *sql.DB // SQLite: one connection; PostgreSQL: the pool
	rdb     *sql.DB // SQLite: read-only pool; PostgreSQL: the same pool
	logger  *slog.Logger
	now     func() time.Time // DB.Now

	machineNow  func() time.Time // Options.Now
	clockOffset atomic.Int64     // PostgreSQL with Options.DatabaseClock: the database's clock less machineNow's, in ns

	registerer prometheus.Registerer // Options.Registerer; nil: no metrics
	commitTime prometheus.Histogram
	givenUp    prometheus.Counter
	slowCommit time.Duration  // see slowCommitDefault
	watches    []*commitWatch // one a writer

	ops      chan *writeOp
	urgent   chan *writeOp // the dispatcher's claims and results: they go first
	wg       sync.WaitGroup
	stopOnce sync.Once
	stop     chan struct{}
	closed   chan struct{} // closed by Close once the writers have stopped
	// instance tells this process's notifications of queued deliveries
	// from the other replicas' (PostgreSQL): it has told its own hooks at
	// the commit already, more precisely (see OnQueued).
	instance string
	maxBatch int

	// Hooks, called after a commit that queued deliveries (onQueued) and
	// one that stopped webhooks (onStopped).
	mu        sync.Mutex
	onQueued  []func(told bool)
	onStopped []func(webhookID string)
	onChanged []func(webhookID string)
	onKeys    []func(shopID string)
	server    bool // Options.Server
	closeFn   func() error

	stmts      stmtCache
	wconn      *sql.Conn     // SQLite: the writer's one connection, held for good
	ckpt       *sql.DB       // SQLite: the checkpointer's connection
	walKick    chan struct{} // SQLite: a commit added to the WAL
	lazySync   bool          // SQLite: wconn runs with synchronous=NORMAL (writer goroutine only)
	lock       *os.File      // SQLite with Options.Server: the server lock, released by closeFn
	file       string        // SQLite: the database file's path
	fileStat   os.FileInfo   // SQLite: that file as opened, to tell when the path no longer leads to it
	pool       *pgxpool.Pool // PostgreSQL only
	leadMu     sync.Mutex
	leadConn   *sql.Conn // holds the leader lock (PostgreSQL)
	memberMu   sync.Mutex
	memberConn *sql.Conn // holds the shared member lock of a server (PostgreSQL, Options.Server)
	// leasesChecked is closed once a PostgreSQL server (Options.Server)
	// has freed the leases a dead server left, or found none to free or
	// another server running (see joinServers).
	leasesChecked chan struct{}

	checkpoints atomic.Int64 // SQLite: checkpoints the checkpointer ran

	claimMu     sync.Mutex
	claimCursor string // the webhook a claim's visit in turn stopped at

	handoff atomic.Pointer[Handoff] // the local dispatcher, if any
}

// Handoff is the local dispatcher as a publish sees it. A queued delivery
// it has room for is inserted already leased to it and handed over when
// the publish commits, so it is sent without waiting for a claim (a
// commit, and on PostgreSQL a round trip); the rest wait in the queue as
// usual. *dispatch.Dispatcher implements it.
type Handoff interface {
	// Reserve holds a place for one delivery to webhookID of shopID and
	// says until when to lease it; ok is false when the dispatcher has no
	// room, or when older work waits in the queue that this one must not
	// pass.
	Reserve(shopID, webhookID string) (leasedUntil time.Time, ok bool)
	// Take hands over reserved deliveries once their commit succeeded.
	Take(jobs []*webhooks.Job)
	// Cancel gives back the places of reserved deliveries whose commit
	// failed or was retried: they were never stored.
	Cancel(jobs []*webhooks.Job)
}

// SetHandoff makes publishes hand the deliveries h has room for straight
// to h (see Handoff); nil stops it.
func (db *DB) SetHandoff(h Handoff) {
	if h == nil {
		db.handoff.Store(nil)
		return
	}
	db.handoff.Store(&h)
}

func (db *DB) handoffTo() Handoff {
	if h := db.handoff.Load(); h != nil {
		return *h
	}
	return nil
}

// dropHandoff gives back what op reserved for a hand-over: op is run again
// or failed.
func (db *DB) dropHandoff(op *writeOp) {
	if len(op.handoff) > 0 {
		op.handoffTo.Cancel(op.handoff)
	}
	op.handoff, op.handoffTo = nil, nil
}

// Open opens the database named by dsn ("sqlite:FILE" or a postgres:// URL),
// applies the embedded migrations and starts the writer.
func Open(ctx context.Context, dsn string, opts Options) (*DB, error) {
	db := &DB{
		logger:   cmp.Or(opts.Logger, slog.New(slog.DiscardHandler)),
		now:      opts.Now,
		stop:     make(chan struct{}),
		closed:   make(chan struct{}),
		instance: rand.Text(),
		maxBatch: cmp.Or(opts.MaxBatch, DefaultMaxBatch),
		server:   opts.Server,

		leasesChecked: make(chan struct{}),

		slowCommit: cmp.Or(opts.slowCommit, slowCommitDefault),
		registerer: opts.Registerer,
	}
	if db.now == nil {
		db.now = time.Now
	}
	db.machineNow = db.now
	db.commitTime = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "pancake_db_commit_duration_seconds",
		Help:    "Time each group commit of the database takes, from its begin to its answers (writes waiting for it not counted).",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
	})
	db.givenUp = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pancake_deliveries_given_up_total",
		Help: "Deliveries whose last attempt failed with none to come: their retry schedule ran out, the endpoint answered 410 Gone, or the webhook was disabled while it was sent (queued deliveries a disable cancels are not counted).",
	})
	writers := opts.Writers
	var err error
	switch {
	case strings.HasPrefix(dsn, "sqlite:"):
		err = db.openSQLite(ctx, strings.TrimPrefix(dsn, "sqlite:"), cmp.Or(opts.ReadConns, DefaultReadConns))
		writers = 1
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		err = db.openPostgres(ctx, dsn, cmp.Or(opts.ReadConns, DefaultPGMaxConns))
		writers = cmp.Or(writers, DefaultPGWriters)
	default:
		return nil, fmt.Errorf("unsupported database %q: use sqlite:FILE or postgres://…", RedactDSN(dsn))
	}
	if err != nil {
		return nil, err
	}
	if opts.Server && db.dialect.name == "sqlite" {
		if err := db.lockServer(ctx, strings.TrimPrefix(dsn, "sqlite:"), opts.LockWait); err != nil {
			db.closeFn()
			return nil, err
		}
	}
	if err := db.migrate(ctx); err != nil {
		db.closeFn()
		return nil, fmt.Errorf("apply migrations: %w", err)
	}
	if opts.Server && !opts.AnySchema {
		if err := db.checkSchema(ctx); err != nil {
			db.closeFn()
			return nil, err
		}
	}
	if db.dialect.name == "sqlite" {
		// Hold the one writer connection, so statements prepared on it are
		// reused in every transaction.
		if db.wconn, err = db.wdb.Conn(ctx); err != nil {
			db.closeFn()
			return nil, fmt.Errorf("sqlite: writer connection: %w", err)
		}
	}
	db.ops = make(chan *writeOp, 4*db.maxBatch)
	db.urgent = make(chan *writeOp, 4*db.maxBatch)
	for range writers {
		w := &commitWatch{}
		db.watches = append(db.watches, w)
		db.wg.Add(1)
		go db.writer(w)
	}
	db.wg.Add(1)
	go db.watchCommits()
	if db.pool != nil {
		db.wg.Add(2)
		go db.listen()
		go db.statisticsKeeper()
	}
	if db.ckpt != nil {
		db.walKick = make(chan struct{}, 1)
		db.wg.Add(1)
		go db.checkpointer()
	}
	if db.lock != nil {
		if err := db.freeDeadLeases(ctx); err != nil {
			db.Close()
			return nil, err
		}
	}
	if db.pool != nil && opts.DatabaseClock {
		db.now = func() time.Time { return db.machineNow().Add(time.Duration(db.clockOffset.Load())) }
		db.followClock(ctx)
		db.wg.Add(1)
		go db.keepClock()
	}
	if opts.Server && db.pool != nil {
		if err := db.joinServers(ctx); err != nil {
			db.Close()
			return nil, err
		}
		db.wg.Add(1)
		go db.keepMembership()
	}
	if db.registerer != nil {
		for _, c := range []prometheus.Collector{db.commitTime, db.givenUp} {
			if err := db.registerer.Register(c); err != nil {
				db.Close()
				return nil, fmt.Errorf("register the store's metrics: %w", err)
			}
		}
	}
	return db, nil
}

// untilClose returns a context that Close cancels, for a goroutine of
// db.wg; cancel ends its watch.
func (db *DB) untilClose() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-db.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// Close stops the writer after the writes already submitted and closes the
// database.
func (db *DB) Close() error {
	first := false
	db.stopOnce.Do(func() { close(db.stop); first = true })
	db.wg.Wait()
	if first {
		close(db.closed)
		if db.registerer != nil {
			db.registerer.Unregister(db.commitTime)
			db.registerer.Unregister(db.givenUp)
		}
	}
	db.stmts.close()
	if db.wconn != nil {
		db.wconn.Close()
	}
	return db.closeFn()
}

// Now is the clock every time this database stores is taken by: the
// machine's (Options.Now), or on PostgreSQL with Options.DatabaseClock the
// database server's.
func (db *DB) Now() time.Time { return db.now() }

// Dialect names the database: "sqlite" or "postgres".
func (db *DB) Dialect() string { return db.dialect.name }

// Ready reports whether the database answers and the migrations are
// applied, and on SQLite whether the file's path still leads to the file
// opened.
func (db *DB) Ready(ctx context.Context) error {
	if db.fileStat != nil {
		// The open connections keep working on a file removed or
		// replaced under them, and answer; what they write would be lost
		// at the next start.
		if cur, err := os.Stat(db.file); err != nil || !os.SameFile(cur, db.fileStat) {
			return fmt.Errorf("sqlite: %s is no longer the database file this process opened (removed, moved or replaced): what it writes goes to a file no path leads to; stop it and put the file back", db.file)
		}
	}
	var v int
	err := db.rdb.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	if err != nil {
		return fmt.Errorf("query schema version: %w", err)
	}
	if want := len(db.dialect.migrations()); v < want {
		return fmt.Errorf("schema at version %d, want %d", v, want)
	}
	return nil
}

// OnQueued registers f to be called (without blocking) after every commit
// that queued deliveries; the dispatcher wakes on it. told is true when
// each of them was queued because the local dispatcher's Reserve (see
// Handoff) said no, so that it has noted already what waits and why; false
// for any other (no dispatcher asked, another replica's, a retry, a
// release).
func (db *DB) OnQueued(f func(told bool)) {
	db.mu.Lock()
	defer db.mu.Unlock()
	db.onQueued = append(db.onQueued, f)
}

// OnWebhookStopped registers f to be called (without blocking) after each
// commit that disabled or deleted a webhook (a user's update or delete,
// the 5-day rule): its queued deliveries are cancelled (or deleted), and
// the dispatcher must not send those it had claimed. On PostgreSQL it is
// also called for those of the other replicas (LISTEN/NOTIFY), and may be
// called twice for one of this process.
func (db *DB) OnWebhookStopped(f func(webhookID string)) {
	db.mu.Lock()
	defer db.mu.Unlock()
	db.onStopped = append(db.onStopped, f)
}

// OnWebhookChanged registers f to be called (without blocking) after each
// commit that changed a webhook's URL or signing secret: the deliveries of
// it the dispatcher had claimed and not sent carry the old ones. On
// PostgreSQL it is also called for those of the other replicas, and may be
// called twice for one of this process.
func (db *DB) OnWebhookChanged(f func(webhookID string)) {
	db.mu.Lock()
	defer db.mu.Unlock()
	db.onChanged = append(db.onChanged, f)
}

func (db *DB) notifyChanged(id string) { db.callHooks(&db.onChanged, id) }

// OnKeysRevoked registers f to be called (without blocking) when API keys
// may have been revoked: with the shop's id after a revocation through
// this store, or, on PostgreSQL, through any replica's or the CLI's; on
// SQLite, with "" (any shop) when a server's store sees that another
// process wrote to the database, as the CLI does (see watchExternal).
// The API's key cache forgets them.
func (db *DB) OnKeysRevoked(f func(shopID string)) {
	db.mu.Lock()
	defer db.mu.Unlock()
	db.onKeys = append(db.onKeys, f)
}

func (db *DB) notifyKeysRevoked(shopID string) { db.callHooks(&db.onKeys, shopID) }

// callHooks calls each of the hooks *fs (one of db's lists) with id.
func (db *DB) callHooks(fs *[]func(string), id string) {
	db.mu.Lock()
	hooks := *fs
	db.mu.Unlock()
	for _, f := range hooks {
		f(id)
	}
}

func (db *DB) notifyStopped(ids ...string) {
	db.mu.Lock()
	fs := db.onStopped
	db.mu.Unlock()
	for _, id := range ids {
		for _, f := range fs {
			f(id)
		}
	}
}

func (db *DB) notifyQueued(told bool) {
	db.mu.Lock()
	fs := db.onQueued
	db.mu.Unlock()
	for _, f := range fs {
		f(told)
	}
}

// writeOp is one write: fn runs inside a savepoint of a shared transaction.
type writeOp struct {
	ctx    context.Context
	fn     func(tx *Tx) error
	queued bool // set by fn when it queued deliveries
	// told and untold say whether some of them were queued because the
	// local dispatcher's Reserve said no (told), or without asking it
	// (untold); see OnQueued. Only a publish sets them.
	told, untold bool
	done         chan error
	// pub, when set, lets the writer merge this publish with the others of
	// its batch into a few multi-row statements; fn is the fallback.
	pub     *publishReq
	handled bool
	// handoff holds the jobs of deliveries the op inserted leased to
	// handoffTo (the local dispatcher): handed over if the op commits,
	// given back if not.
	handoff   []*webhooks.Job
	handoffTo Handoff
	// weight is how many rows the op writes, roughly; a batch stops taking
	// ops at maxBatchWeight so one commit stays short.
	weight int
	// urgent ops (the dispatcher's claims and results) skip the queue, so
	// a flood of publishes can't starve deliveries.
	urgent bool
	// lazy ops need not be durable when they return: losing one in a crash
	// loses nothing (a claim: its rows are claimed again). A batch of only
	// lazy ops commits without waiting for the disk (SQLite).
	lazy bool
	// hooks are the webhooks whose rows fn locks (PostgreSQL), before any
	// other lock it takes; shops, those whose advisory lock it takes
	// exclusively (see lockShop), next. When the op shares its batch,
	// runBatch takes the locks of all its ops first, in that order (see
	// beginLocked).
	hooks, shops []string
}

// maxBatchWeight bounds the rows one group commit writes, so that claims
// and results waiting behind it are not held long.
const maxBatchWeight = 1000

// errClosed is returned for writes submitted after Close.
var errClosed = errors.New("store is closed")

// write runs fn in the group-commit writer and returns when its transaction
// committed (fn's changes are durable) or failed. fn must not keep tx.
func (db *DB) write(ctx context.Context, fn func(tx *Tx) error) error {
	_, err := db.writeQueued(ctx, func(tx *Tx, _ *bool) error { return fn(tx) })
	return err
}

// writeHooks is write for a change that locks the rows of hooks, the
// webhooks it changes, before it takes any other lock, and then the
// exclusive locks of shops (see writeOp.hooks).
func (db *DB) writeHooks(ctx context.Context, hooks, shops []string, fn func(tx *Tx) error) error {
	_, err := db.submit(ctx, &writeOp{hooks: hooks, shops: shops}, func(tx *Tx, _ *bool) error { return fn(tx) })
	return err
}

// writeUrgent is write for the dispatcher's results, which lock the rows
// of hooks first (see writeOp.hooks).
func (db *DB) writeUrgent(ctx context.Context, weight int, hooks []string, fn func(tx *Tx, queued *bool) error) error {
	_, err := db.submit(ctx, &writeOp{urgent: true, weight: weight, hooks: hooks}, fn)
	return err
}

// writeClaim is writeUrgent for a claim, which need not be durable.
func (db *DB) writeClaim(ctx context.Context, weight int, fn func(tx *Tx) error) error {
	_, err := db.submit(ctx, &writeOp{urgent: true, lazy: true, weight: weight}, func(tx *Tx, _ *bool) error { return fn(tx) })
	return err
}

// writeQueued is write for functions that may queue deliveries: they set
// *queued so the dispatcher is woken after the commit.
func (db *DB) writeQueued(ctx context.Context, fn func(tx *Tx, queued *bool) error) (bool, error) {
	return db.submit(ctx, &writeOp{}, fn)
}

func (db *DB) submit(ctx context.Context, op *writeOp, fn func(tx *Tx, queued *bool) error) (bool, error) {
	op.ctx, op.done = ctx, make(chan error, 1)
	op.fn = func(tx *Tx) error { return fn(tx, &op.queued) }
	ch := db.ops
	if op.urgent {
		ch = db.urgent
	}
	select {
	case ch <- op:
	case <-db.stop:
		return false, errClosed
	case <-ctx.Done():
		return false, ctx.Err()
	}
	// Once submitted, wait for the answer even if ctx ends: the write may
	// commit, and the caller must not be told otherwise. But an op sent
	// as Close began (the select above picks either way) may have come
	// after the writers' last drain: once they are gone, one not answered
	// never will be (code review: about half of such writes waited for
	// ever, whatever their context).
	select {
	case err := <-op.done:
		return op.queued, err
	case <-db.closed:
		select {
		case err := <-op.done:
			return op.queued, err
		default:
			return false, errClosed
		}
	}
}

func (db *DB) writer(w *commitWatch) {
	defer db.wg.Done()
	batch := make([]*writeOp, 0, db.maxBatch)
	var (
		external <-chan time.Time
		version  int64
	)
	if db.server && db.wconn != nil { // a server on SQLite: see watchExternal
		version = db.watchExternal(0)
		t := time.NewTicker(externalWriteCheck)
		defer t.Stop()
		external = t.C
	}
	for {
		select { // due even while urgent ops never stop coming
		case <-external:
			version = db.watchExternal(version)
		default:
		}
		var first *writeOp
		select { // urgent ops first, whenever there are some
		case first = <-db.urgent:
		default:
		}
		if first == nil {
			select {
			case first = <-db.urgent:
			case first = <-db.ops:
			case <-external:
				version = db.watchExternal(version)
				continue
			case <-db.stop:
				// Drain what was submitted before Close.
				for {
					select {
					case op := <-db.urgent:
						db.commit(w, []*writeOp{op})
					case op := <-db.ops:
						db.commit(w, []*writeOp{op})
					default:
						return
					}
				}
			}
		}
		batch = append(batch[:0], first)
		weight := max(first.weight, 1)
	urgent:
		for len(batch) < db.maxBatch {
			select {
			case op := <-db.urgent:
				batch = append(batch, op)
				weight += max(op.weight, 1)
			default:
				break urgent
			}
		}
	fill:
		// Urgent ops commit on their own: their callers must not wait for
		// a heavy batch of publishes.
		for !first.urgent && len(batch) < db.maxBatch && weight < maxBatchWeight {
			select {
			case op := <-db.ops:
				batch = append(batch, op)
				weight += max(op.weight, 1)
			default:
				break fill
			}
		}
		db.commit(w, batch)
	}
}

// externalWriteCheck is how often a server's writer on SQLite looks for
// commits of another process (watchExternal).
const externalWriteCheck = 200 * time.Millisecond

// watchExternal tells OnKeysRevoked's hooks, for any shop, when a process
// other than this server committed to its SQLite database since the
// check that returned last (0: none yet; -1: that check failed), and
// returns what to pass next. When it can't tell, it tells all the same:
// a key cache that forgets too often only reads the database again.
// The CLI writes so (shops keys revoke), and a revoked key must not keep
// working for the key cache's lifetime. SQLite's data_version of the
// writer's connection changes only with other connections' commits; this
// server's others only read or checkpoint. Writer goroutine only.
func (db *DB) watchExternal(last int64) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var v int64
	if err := db.wconn.QueryRowContext(ctx, "PRAGMA data_version").Scan(&v); err != nil {
		if last != -1 { // once, not every check
			db.logger.Warn("sqlite: read data_version; the key cache is cleared at every check until it can be read", "error", err)
		}
		db.notifyKeysRevoked("")
		return -1
	}
	if last != 0 && v != last {
		db.notifyKeysRevoked("")
	}
	return v
}

// slowCommitDefault is how long a group commit runs before the operator
// is told (the writes of a database that hangs would otherwise wait in
// silence).
const slowCommitDefault = 5 * time.Second

// commitWatch is what watchCommits knows of one writer's commit.
type commitWatch struct {
	mu     sync.Mutex
	start  time.Time // zero: none running
	writes int
	warned bool // watchCommits logged it as slow
}

// begin notes a commit of n writes starting.
func (w *commitWatch) begin(n int) {
	w.mu.Lock()
	w.start, w.writes, w.warned = time.Now(), n, false
	w.mu.Unlock()
}

// end notes the commit ended, logs its end if watchCommits logged it as
// slow (under the lock, so after that line), and returns how long it took.
func (w *commitWatch) end(logger *slog.Logger) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	took := time.Since(w.start)
	if w.warned {
		logger.Info("database: the slow commit has ended", "took", took.Round(time.Millisecond).String(), "writes", w.writes)
	}
	w.start = time.Time{}
	return took
}

// watchCommits logs at warn each commit that has run db.slowCommit, once,
// until Close. The writer that runs it logs its end (commitWatch.end);
// both lines are written under the watch's lock, so they come in order.
func (db *DB) watchCommits() {
	defer db.wg.Done()
	t := time.NewTicker(db.slowCommit / 4)
	defer t.Stop()
	for {
		select {
		case <-db.stop:
			return
		case <-t.C:
		}
		for _, w := range db.watches {
			w.mu.Lock()
			if !w.start.IsZero() && !w.warned && time.Since(w.start) >= db.slowCommit {
				w.warned = true
				db.logger.Warn("database: a commit has taken "+db.slowCommit.String()+" so far; writes wait for it (is the database down, stalled, or its disk full or slow?)",
					"writes", w.writes)
			}
			w.mu.Unlock()
		}
	}
}

// errOpFailed says that an op of a batch run without savepoints failed: the
// batch must run again, each op in its savepoint.
var errOpFailed = errors.New("an op failed: run the batch again with savepoints")

// commit runs ops in one transaction and answers each. The ops run without
// savepoints first: SQLite copies each page a savepoint's statements change
// into its journal, which costs more than the statements themselves when
// they change many pages. Only when one of them fails does the batch run
// again, each op in a savepoint, so that it fails alone. An op that a
// deadlock or a serialization failure aborted (PostgreSQL) runs again in
// a transaction of its own, up to retryAbortedTries times, after the
// others are answered and their deliveries handed over.
func (db *DB) commit(w *commitWatch, ops []*writeOp) {
	w.begin(len(ops))
	defer func() { db.commitTime.Observe(w.end(db.logger).Seconds()) }()
	errs := make([]error, len(ops))
	err := db.runBatch(ops, errs, false)
	if errors.Is(err, errOpFailed) {
		clear(errs)
		err = db.runBatch(ops, errs, true)
	}
	if err != nil && db.dialect.retryable(err) {
		// A deadlock or serialization failure (PostgreSQL) aborts the whole
		// transaction: run it once more, then give up.
		db.noteRetryable(err)
		clear(errs)
		err = db.runBatch(ops, errs, true)
	}
	again := db.answer(ops, errs, err, true)
	for try := 1; len(again) > 0; try++ {
		// A short pause lets the transaction they met finish first.
		time.Sleep(time.Duration(try) * 10 * time.Millisecond)
		errs = make([]error, len(again))
		err = db.runBatch(again, errs, true)
		again = db.answer(again, errs, err, try < retryAbortedTries)
	}
}

// retryAbortedTries is how many times commit runs again an op that a
// deadlock or a serialization failure aborted.
const retryAbortedTries = 3

// answer hands over the deliveries of the ops of a run that committed and
// answers each op with its outcome (err, when the whole run failed, or
// its own error), except, when retry is set and the run committed, those
// that a deadlock or serialization failure aborted: they are returned, to
// run again. Such an op failed in its savepoint (or alone), so nothing of
// it was kept, and its caller (a publish, a change through the API)
// should not get an error that running it again avoids.
func (db *DB) answer(ops []*writeOp, errs []error, err error, retry bool) (again []*writeOp) {
	queued, told := false, true
	for i, op := range ops {
		e := errs[i]
		if err != nil && e == nil {
			e = err
		}
		if retry && err == nil && e != nil && db.dialect.retryable(e) {
			again = append(again, op) // its reservations are dropped as it runs again
			continue
		}
		if e == nil && op.queued {
			queued = true
			told = told && op.told && !op.untold
		}
		if e == nil && len(op.handoff) > 0 {
			op.handoffTo.Take(op.handoff)
			op.handoff = nil
		}
		db.dropHandoff(op) // what a failed op reserved
		op.done <- e
	}
	if queued {
		db.notifyQueued(told)
	}
	return again
}

// noteRetryable logs err when it is a deadlock or a serialization failure
// (PostgreSQL), one line each: the write runs again (see commit), but
// the operator should know, as each deadlock held the writers for the
// server's deadlock_timeout.
func (db *DB) noteRetryable(err error) {
	if db.dialect.retryable(err) {
		db.logger.Warn("postgres: a deadlock or a serialization failure aborted a write", "error", err)
	}
}

// batchLocks returns, on PostgreSQL, the webhooks whose rows the ops lock
// and the shops they lock exclusively (writeOp.hooks, writeOp.shops),
// each sorted, when there are several ops; else nil.
func batchLocks(d dialect, ops []*writeOp) (hooks, shops []string) {
	if d.name != "postgres" || len(ops) < 2 {
		return nil, nil
	}
	for _, op := range ops {
		hooks = append(hooks, op.hooks...)
		shops = append(shops, op.shops...)
	}
	slices.Sort(hooks)
	slices.Sort(shops)
	return slices.Compact(hooks), slices.Compact(shops)
}

// beginLocked begins a transaction and takes in it the locks of a batch
// (see batchLocks): the rows of hooks, in id order, then the exclusive
// locks of shops, in id order. Each op takes its own in that order; but
// a batch runs many ops, and two batches of one database (two writers,
// or replicas) whose ops come in other orders locked the same rows in
// opposite orders, and each waited for the other until PostgreSQL
// aborted one (a soak of two replicas: "deadlock detected" in recording
// attempts). Two batches that each published to a shop (its lock
// shared) and then stopped one of its webhooks (the lock exclusive)
// waited for each other so too. Taken first, in one order, these locks
// are waited for before anything else is held.
func (db *DB) beginLocked(ctx context.Context, hooks, shops []string) (*Tx, error) {
	tx, err := db.begin(ctx)
	if err != nil || len(hooks)+len(shops) == 0 {
		return tx, err
	}
	if len(hooks) > 0 {
		if _, err := tx.ExecContext(ctx, `SELECT id FROM webhooks WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE`, hooks); err != nil {
			_ = tx.tx.Rollback()
			return nil, fmt.Errorf("lock webhooks: %w", err)
		}
	}
	for _, shop := range shops {
		if err := lockShop(ctx, tx, shop, true); err != nil {
			_ = tx.tx.Rollback()
			return nil, err
		}
	}
	return tx, nil
}

// runBatch runs ops in one transaction, in savepoints if savepoints is set;
// if not, the first op that fails rolls it back and errOpFailed is returned
// (unless it is the only op: it then fails alone).
func (db *DB) runBatch(ops []*writeOp, errs []error, savepoints bool) error {
	ctx := context.Background()
	if db.wconn != nil {
		// In WAL mode, synchronous=NORMAL commits without an fsync: a
		// crash may lose such a commit but never corrupts, and the next
		// FULL commit makes it durable with its own. Only batches of lazy
		// ops run so; if FULL can't be set back, durable writes fail.
		lazy := !slices.ContainsFunc(ops, func(op *writeOp) bool { return !op.lazy })
		if lazy != db.lazySync {
			mode := map[bool]string{true: "NORMAL", false: "FULL"}[lazy]
			if _, err := db.wconn.ExecContext(ctx, "PRAGMA synchronous="+mode); err != nil {
				return fmt.Errorf("set synchronous=%s: %w", mode, err)
			}
			db.lazySync = lazy
		}
	}
	hooks, shops := batchLocks(db.dialect, ops)
	tx, err := db.beginLocked(ctx, hooks, shops)
	if err != nil {
		return err
	}
	for _, op := range ops {
		db.dropHandoff(op) // left by a try that was rolled back
	}
	if !db.mergePublishes(ctx, tx, ops) {
		// Nothing but the merged publish ran in this transaction: start
		// again without it.
		_ = tx.tx.Rollback()
		if tx, err = db.beginLocked(ctx, hooks, shops); err != nil {
			return err
		}
	}
	single := len(ops) == 1
	for i, op := range ops {
		if op.handled {
			continue
		}
		op.queued, op.told, op.untold = false, false, false
		if e := op.ctx.Err(); e != nil {
			errs[i] = e
			continue
		}
		if single || !savepoints {
			if e := op.fn(tx); e != nil {
				db.noteRetryable(e)
				_ = tx.tx.Rollback()
				if !single {
					return errOpFailed
				}
				errs[i] = e
				return nil
			}
			continue
		}
		if _, e := tx.ExecContext(ctx, "SAVEPOINT op"); e != nil {
			_ = tx.tx.Rollback()
			return fmt.Errorf("savepoint: %w", e)
		}
		if e := op.fn(tx); e != nil {
			db.noteRetryable(e)
			errs[i] = e
			op.queued = false
			if _, e2 := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT op"); e2 != nil {
				_ = tx.tx.Rollback()
				return fmt.Errorf("rollback to savepoint: %w", e2)
			}
		}
		if _, e := tx.ExecContext(ctx, "RELEASE SAVEPOINT op"); e != nil {
			_ = tx.tx.Rollback()
			return fmt.Errorf("release savepoint: %w", e)
		}
	}
	if err := db.keepHandoffs(ctx, tx, ops); err != nil {
		_ = tx.tx.Rollback()
		return err
	}
	if db.pool != nil && slices.ContainsFunc(ops, func(op *writeOp) bool { return op.queued }) {
		if err := announce(ctx, tx, queuedChannel, db.instance); err != nil {
			_ = tx.tx.Rollback()
			return err
		}
	}
	if err := tx.tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	db.kickCheckpointer()
	return nil
}

// keepHandoffs takes out of the ops' hand-overs the deliveries of webhooks
// that an op of the same transaction stopped or changed (tx.stopped), and
// releases their leases in it. They were reserved before the change, so
// they carry the old URL and secrets, or a webhook disabled (its row now
// cancelled) or deleted; and the hooks that drop such deliveries from the
// dispatcher (Stopped, Changed) run only after the commit, once the
// hand-over had given them to a worker (code review: sent after a disable,
// to a deleted webhook, or to the old URL with --secret-overlap 0). A
// pending one is claimed again as it now is.
func (db *DB) keepHandoffs(ctx context.Context, tx *Tx, ops []*writeOp) error {
	if len(tx.stopped) == 0 {
		return nil
	}
	var released []string
	for _, op := range ops {
		var keep, drop []*webhooks.Job
		for _, j := range op.handoff {
			if tx.stopped[j.WebhookID] {
				drop = append(drop, j)
			} else {
				keep = append(keep, j)
			}
		}
		if len(drop) == 0 {
			continue
		}
		op.handoffTo.Cancel(drop)
		op.handoff = keep
		op.queued, op.untold = true, true // the claim that takes the released ones
		for _, j := range drop {
			released = append(released, j.DeliveryID)
		}
	}
	if len(released) == 0 {
		return nil
	}
	cond, args := db.dialect.in("id", 1, released)
	if _, err := tx.ExecContext(ctx, `UPDATE deliveries SET leased_until = NULL WHERE status = 'pending' AND `+cond, args...); err != nil {
		return fmt.Errorf("release the deliveries of a stopped or changed webhook: %w", err)
	}
	return nil
}

// begin starts the writer's transaction.
func (db *DB) begin(ctx context.Context) (*Tx, error) {
	var stx *sql.Tx
	var err error
	if db.wconn != nil {
		stx, err = db.wconn.BeginTx(ctx, nil)
	} else {
		stx, err = db.wdb.BeginTx(ctx, nil)
	}
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	return &Tx{tx: stx, db: db}, nil
}

// ms converts a time to stored Unix milliseconds.
func ms(t time.Time) int64 { return t.UnixMilli() }

// fromMS converts stored Unix milliseconds to a UTC time.
func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

func nullMS(t *time.Time) sql.NullInt64 {
	if t == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: ms(*t), Valid: true}
}

func ptrMS(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMS(v.Int64)
	return &t
}

// RedactDSN returns dsn fit for a message: a URL's user:password part
// and any password parameter (a URL's ?password=, a key=value
// connection string's password=) hidden.
func RedactDSN(dsn string) string {
	dsn = dsnPassword.ReplaceAllString(dsn, "${1}=REDACTED")
	if j := strings.Index(dsn, "://"); j >= 0 {
		rest := dsn[j+3:]
		host := rest
		if k := strings.IndexAny(rest, "/?#"); k >= 0 {
			host = rest[:k]
		}
		if i := strings.LastIndex(host, "@"); i >= 0 { // the last: a password may hold an @
			return dsn[:j+3] + "…" + rest[i:]
		}
	}
	return dsn
}

// dsnPassword is a password parameter of a URL's query or of a key=value
// connection string, with its value (quoted or not).
var dsnPassword = regexp.MustCompile(`(?i)\b((?:ssl)?password)\s*=\s*('(?:[^'\\]|\\.)*'?|[^&\s]*)`)
