package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
)

// queuedChannel, with channelSuffix, names the LISTEN/NOTIFY channel that
// says deliveries were queued, so every replica's dispatcher wakes at once.
const queuedChannel = "pancake_webhooks_queued"

// stoppedChannel, with channelSuffix, names the LISTEN/NOTIFY channel of a
// webhook just disabled or deleted, so every replica's dispatcher forgets
// the deliveries of it that it had claimed.
const stoppedChannel = "pancake_webhooks_stopped"

// changedChannel, with channelSuffix, names the LISTEN/NOTIFY channel of a
// webhook whose URL or signing secret just changed, so every replica's
// dispatcher gives back the deliveries of it that it had claimed and not
// sent: taken again, they go to the new URL, signed with the new secret.
const changedChannel = "pancake_webhooks_changed"

// keysChannel, with channelSuffix, names the LISTEN/NOTIFY channel of a
// shop whose API key was just revoked, so every replica's key cache
// forgets the shop's keys.
const keysChannel = "pancake_webhooks_keys"

// channelSuffix is the SQL of what the channels' names end with in the
// schema's deployment: notifications are database-wide, and deployments
// in different schemas of one database must not hear each other's. A name
// stays a plain identifier of 57 characters at most, as LISTEN needs.
const channelSuffix = `'_' || md5(current_schema())`

// leaderLockKey, with the schema, is the advisory lock held by the
// replica that runs the housekeeping: deployments in different schemas of
// one database each have their own leader.
const leaderLockKey = 7240120

// MinPGConns is the fewest connections a PostgreSQL pool may be given
// with pool_max_conns.
const MinPGConns = 8

// setsPoolMaxConns says whether dsn, a URL or key=value string, gives
// pool_max_conns: pgx's own default (4, or the cores) is too few.
func setsPoolMaxConns(dsn string) bool {
	if u, err := url.Parse(dsn); err == nil && u.Scheme != "" {
		return u.Query().Has("pool_max_conns")
	}
	return strings.Contains(dsn, "pool_max_conns")
}

// openPostgres opens a pgx pool (of maxConns connections unless the DSN's
// pool_max_conns says otherwise) and serves database/sql from it.
func (db *DB) openPostgres(ctx context.Context, dsn string, maxConns int) error {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return fmt.Errorf("postgres: parse %s: %w", RedactDSN(dsn), err)
	}
	switch {
	case !setsPoolMaxConns(dsn):
		cfg.MaxConns = int32(maxConns)
	case cfg.MaxConns < MinPGConns:
		// Fewer would leave nothing for writes and reads beside the
		// sessions a server holds for its locks and notifications.
		return fmt.Errorf("postgres: pool_max_conns=%d is too few: a server needs %d at least (3 held for its locks and notifications, 2 writers, reads)",
			cfg.MaxConns, MinPGConns)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("postgres: connect %s: %w", RedactDSN(dsn), err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return fmt.Errorf("postgres: connect %s: %w", RedactDSN(dsn), err)
	}
	// The deliveries table is a queue: rows are finished at its head all
	// day, and without autovacuum the dead ones pile up in its indexes and
	// the planner never gets statistics (seen: a pending page read through
	// a bitmap scan of the whole queue, 60 ms at 100k queued, 1 ms after
	// one ANALYZE). Say so once, loudly; the service still runs.
	var autovacuum string
	if err := pool.QueryRow(ctx, "SELECT current_setting('autovacuum')").Scan(&autovacuum); err == nil && autovacuum != "on" {
		db.logger.Warn("postgres: autovacuum is off; the delivery queue will bloat and reads slow down: turn it on (autovacuum = on in postgresql.conf)")
	}
	db.dialect = postgresDialect
	db.pool = pool
	sdb := stdlib.OpenDBFromPool(pool)
	db.wdb, db.rdb = sdb, sdb
	db.closeFn = func() error {
		db.releaseLeadership()
		db.leaveServers()
		err := sdb.Close()
		pool.Close()
		return err
	}
	return nil
}

// statisticsEvery is how often statisticsKeeper looks at the deliveries
// table's size.
const statisticsEvery = 5 * time.Second

// analyzeLockKey, with the schema, is the advisory lock of the replica
// analyzing the deliveries table (refreshStatistics).
const analyzeLockKey = 7240122

// errCannotAnalyze says that the database user may not analyze the
// deliveries table: only its owner, the database's owner or a superuser
// may (PostgreSQL 17's MAINTAIN privilege is not looked at).
var errCannotAnalyze = errors.New("not allowed to analyze deliveries")

// statisticsKeeper keeps the planner's statistics of the deliveries table
// up with its size until Close (see refreshStatistics).
func (db *DB) statisticsKeeper() {
	defer db.wg.Done()
	ctx, cancel := db.untilClose()
	defer cancel()
	t := time.NewTicker(statisticsEvery)
	defer t.Stop()
	failing := false // logged once per run of failures
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		switch _, err := db.refreshStatistics(ctx); {
		case ctx.Err() != nil:
			return
		case errors.Is(err, errCannotAnalyze):
			db.logger.Info("postgres: this user may not analyze deliveries (not its owner's nor the database's); its statistics are left to autovacuum")
			return
		case err != nil && !failing:
			db.logger.Warn("postgres: analyze deliveries failed; autovacuum's analyze remains", "error", err)
			failing = true
		case err == nil && failing:
			db.logger.Info("postgres: analyze deliveries works again")
			failing = false
		}
	}
}

// refreshStatistics analyzes the deliveries table when it has outgrown
// its statistics: never analyzed, or doubled (and grown by 1 MiB) since
// the last analyze, so a growing table is analyzed a few times in its
// life, not every few seconds. Autovacuum analyzes a table once a tenth of
// it changed, looking once a minute; a burst of publishes outruns that (a
// million queued in 80 s, a fan-out of 50 queueing 30,000 rows a second),
// and a planner that believes the queue nearly empty sorts all of it for
// a page of the pending list (1.3–1.6 s at 1M queued, auto_explain) and
// scans the table for each recorded batch (0.2–0.6 s). Only the columns
// that queries filter and sort by are analyzed (180 ms instead of
// 310–1,330 ms at 600,000 rows: the attempts' headers and bodies are
// skipped); autovacuum still analyzes them all at its pace. It reports
// whether it analyzed. A replica that finds another one analyzing skips.
func (db *DB) refreshStatistics(ctx context.Context) (bool, error) {
	var stale, allowed bool
	err := db.rdb.QueryRowContext(ctx, `SELECT c.reltuples < 0
			OR pg_relation_size(c.oid) / current_setting('block_size')::bigint > c.relpages * 2 + 128,
			pg_has_role(c.relowner, 'USAGE') OR pg_has_role(d.datdba, 'USAGE')
		FROM pg_class c, pg_database d WHERE c.oid = 'deliveries'::regclass AND d.datname = current_database()`).Scan(&stale, &allowed)
	if err != nil {
		return false, fmt.Errorf("read the size of deliveries: %w", err)
	}
	if !allowed {
		// ANALYZE would skip the table with a warning, every look.
		return false, errCannotAnalyze
	}
	if !stale {
		return false, nil
	}
	conn, err := db.rdb.Conn(ctx)
	if err != nil {
		return false, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	var locked bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1, hashtext(current_schema()))`, analyzeLockKey).Scan(&locked); err != nil {
		return false, fmt.Errorf("take the analyze lock: %w", err)
	}
	if !locked {
		return false, nil
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1, hashtext(current_schema()))`, analyzeLockKey)
	if _, err := conn.ExecContext(ctx, `ANALYZE deliveries (shop_id, webhook_id, event_id, event, status, created_at, scheduled_at, leased_until)`); err != nil {
		return false, fmt.Errorf("analyze deliveries: %w", err)
	}
	return true, nil
}

// listen wakes this process's dispatcher whenever any replica queues
// deliveries (LISTEN/NOTIFY); it reconnects until stop.
func (db *DB) listen() {
	defer db.wg.Done()
	ctx, cancel := db.untilClose()
	defer cancel()
	for ctx.Err() == nil {
		err := db.listenOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		db.logger.Warn("postgres listen: reconnecting", "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

func (db *DB) listenOnce(ctx context.Context) error {
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire: %w", err)
	}
	defer conn.Release()
	var suffix string
	if err := conn.QueryRow(ctx, `SELECT `+channelSuffix).Scan(&suffix); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	stopped, changed, keys := stoppedChannel+suffix, changedChannel+suffix, keysChannel+suffix
	for _, ch := range []string{queuedChannel + suffix, stopped, changed, keys} {
		if _, err := conn.Exec(ctx, "LISTEN "+ch); err != nil {
			return fmt.Errorf("listen: %w", err)
		}
	}
	// A revocation while no connection listened (at start, or while this
	// one reconnected) was not heard: forget every cached key.
	db.notifyKeysRevoked("")
	for {
		n, err := conn.Conn().WaitForNotification(ctx)
		if err != nil {
			conn.Conn().Close(context.Background()) // don't return a listening connection to the pool
			return fmt.Errorf("wait for notification: %w", err)
		}
		switch n.Channel {
		case stopped:
			db.notifyStopped(n.Payload)
		case changed:
			db.notifyChanged(n.Payload)
		case keys:
			db.notifyKeysRevoked(n.Payload)
		default:
			db.heardQueued(n.Payload)
		}
	}
}

// heardQueued tells the OnQueued hooks of another replica's commit that
// queued deliveries; its own, told at the commit already, is skipped.
func (db *DB) heardQueued(payload string) {
	if payload != db.instance {
		db.notifyQueued(false)
	}
}

// announce is run inside a transaction whose commit every replica must
// hear of, this one too: on PostgreSQL it notifies channel (with
// channelSuffix) with payload when the transaction commits; elsewhere it
// does nothing. The channels:
//   - stoppedChannel, a webhook disabled (cancelQueued) or deleted: the
//     payload is its id (this replica's dispatcher hears it a second time
//     where it also calls notifyStopped itself; Stopped does nothing then);
//   - changedChannel, a webhook's URL or secret changed: the payload is its
//     id (heard a second time here too; Changed then finds nothing);
//   - keysChannel, a key of the shop revoked: the payload is the shop id;
//   - queuedChannel, deliveries queued: the payload is the id of the
//     process whose commit queued them (DB.instance), which ignores its own.
func announce(ctx context.Context, tx *Tx, channel, payload string) error {
	if channel == stoppedChannel || channel == changedChannel {
		if tx.stopped == nil {
			tx.stopped = map[string]bool{}
		}
		tx.stopped[payload] = true
	}
	if tx.db.pool == nil {
		return nil
	}
	if _, err := tx.ExecContext(ctx, `SELECT pg_notify($1 || `+channelSuffix+`, $2)`, channel, payload); err != nil {
		return fmt.Errorf("notify replicas: %w", err)
	}
	return nil
}

// IsLeader reports whether this process runs the housekeeping now. On
// SQLite there is one process: always. On PostgreSQL the replica holding a
// session advisory lock leads; when it dies its session ends, the lock is
// freed and the next replica to ask takes over.
func (db *DB) IsLeader(ctx context.Context) bool {
	if db.dialect.name != "postgres" {
		return true
	}
	db.leadMu.Lock()
	defer db.leadMu.Unlock()
	if db.leadConn != nil {
		if err := db.leadConn.PingContext(ctx); err == nil {
			return true
		}
		db.leadConn.Close()
		db.leadConn = nil
	}
	conn, err := db.wdb.Conn(ctx)
	if err != nil {
		return false
	}
	var ok bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1, hashtext(current_schema()))`, leaderLockKey).Scan(&ok); err != nil || !ok {
		conn.Close()
		return false
	}
	db.leadConn = conn
	return true
}

func (db *DB) releaseLeadership() {
	db.leadMu.Lock()
	defer db.leadMu.Unlock()
	if db.leadConn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, _ = db.leadConn.ExecContext(ctx, `SELECT pg_advisory_unlock($1, hashtext(current_schema()))`, leaderLockKey)
	db.leadConn.Close()
	db.leadConn = nil
}

// memberLockKey, with the schema, is the advisory lock every server on the
// database (Options.Server) holds shared for as long as it runs. A server
// that starts and can take it exclusively is alone.
const memberLockKey = 7240123

// memberLock is the statement that calls fn, an advisory lock function, on
// this schema's member lock ($1: memberLockKey).
func memberLock(fn string) string { return `SELECT ` + fn + `($1, hashtext(current_schema()))` }

// memberCheckEvery is how often a server checks that it still holds its
// member lock (a lost connection loses it) and takes it again if not.
const memberCheckEvery = 2 * time.Second

// memberRetakeWithin is how long running servers may take to hold their
// member locks again after losing their connections (PostgreSQL restarted,
// or its backends ended): a check, a failed ping and a new session.
const memberRetakeWithin = 3*memberCheckEvery + time.Second

// joinServers takes this server's shared member lock. A server that finds
// none held (it took the lock exclusively) may be alone: every lease in
// the database is then a dead server's (a whole cluster killed, or the one
// server restarted), and their deliveries should go out at once rather
// than when the leases run out. But running servers that lost their
// connections hold no lock until they take it again, and a server that
// counted itself alone then freed leases they were still sending: after a
// PostgreSQL restart, a replica started with it sent every delivery in
// flight a second time (audit). So it notes the leases it finds, joins at
// once (it serves and sends meanwhile), and frees them in freeWhenAlone,
// once running servers would hold their locks again, if none does then.
// A server also holds the first-session lock, on the session it joined
// with and for as long as that session lasts: a server holding both
// joined after the leases were noted (together after a whole cluster died,
// say), else the exclusive try would have failed, so it is not one that
// may still be sending them; one that lost its session and took the member
// lock again on another holds the member lock only. A server that joins
// running ones leaves the leases to run out.
func (db *DB) joinServers(ctx context.Context) error {
	conn, err := db.wdb.Conn(ctx)
	if err != nil {
		return fmt.Errorf("postgres: join the servers: %w", err)
	}
	var alone bool
	if err := conn.QueryRowContext(ctx, memberLock("pg_try_advisory_lock"), memberLockKey).Scan(&alone); err != nil {
		discardConn(conn)
		return fmt.Errorf("postgres: join the servers: %w", err)
	}
	var dead deadLeases
	if alone {
		dead, err = findLeases(ctx, conn)
		if _, uerr := conn.ExecContext(ctx, memberLock("pg_advisory_unlock"), memberLockKey); uerr != nil {
			err = errors.Join(err, fmt.Errorf("postgres: unlock: %w", uerr))
		}
		if err != nil {
			discardConn(conn)
			return fmt.Errorf("postgres: join the servers: %w", err)
		}
	}
	// The first-session lock first: a server that sees this one as a
	// member sees it holding both.
	for _, key := range []int{firstSessionLockKey, memberLockKey} {
		if _, err := conn.ExecContext(ctx, memberLock("pg_advisory_lock_shared"), key); err != nil {
			discardConn(conn)
			return fmt.Errorf("postgres: join the servers: %w", err)
		}
	}
	db.memberMu.Lock()
	db.memberConn = conn
	db.memberMu.Unlock()
	if len(dead.ids) == 0 {
		close(db.leasesChecked)
		return nil
	}
	db.logger.Info("postgres: this server started alone, with deliveries a stopped server had claimed; they are freed once no server that ran before shows up",
		"deliveries", len(dead.ids), "in", memberRetakeWithin)
	db.wg.Add(1)
	go db.freeWhenAlone(dead)
	return nil
}

// firstSessionLockKey, with the schema, is the advisory lock a server
// holds shared on the session it joined with (see joinServers).
const firstSessionLockKey = memberLockKey + 1

// deadLeases are the leases a starting server found while it held the
// member lock exclusively: the ids of their deliveries and their
// leased_until, as columns.
type deadLeases struct {
	ids   []string
	until []int64
}

// maxDeadLeases bounds the leases a starting server notes (what the
// servers of a cluster had claimed: a few thousand each); the rest run
// out.
const maxDeadLeases = 100_000

// findLeases reads the leases of queued deliveries.
func findLeases(ctx context.Context, conn *sql.Conn) (deadLeases, error) {
	var d deadLeases
	rows, err := conn.QueryContext(ctx, `SELECT id, leased_until FROM deliveries
		WHERE status = 'pending' AND leased_until IS NOT NULL LIMIT $1`, maxDeadLeases)
	if err != nil {
		return d, fmt.Errorf("find leases: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id    string
			until int64
		)
		if err := rows.Scan(&id, &until); err != nil {
			return d, fmt.Errorf("find leases: %w", err)
		}
		d.ids, d.until = append(d.ids, id), append(d.until, until)
	}
	if err := rows.Err(); err != nil {
		return d, fmt.Errorf("find leases: %w", err)
	}
	return d, nil
}

// freeWhenAlone frees the leases dead, memberRetakeWithin after this
// server joined, if every other server holding the member lock then also
// holds the first-session lock (it joined after dead was noted): they are
// a dead server's. Only those still as they were are freed, so a lease
// this server (or one started since) took meanwhile is never one of them.
// It closes db.leasesChecked when done; it is a goroutine of db.wg.
func (db *DB) freeWhenAlone(dead deadLeases) {
	defer db.wg.Done()
	defer close(db.leasesChecked)
	ctx, cancel := db.untilClose()
	defer cancel()
	wait := time.NewTimer(memberRetakeWithin)
	defer wait.Stop()
	select {
	case <-wait.C:
	case <-ctx.Done():
		return
	}
	checkCtx, checkDone := context.WithTimeout(ctx, memberCheckEvery)
	alone, err := db.startedAlone(checkCtx)
	checkDone()
	switch {
	case ctx.Err() != nil:
		return // Close
	case err != nil:
		db.logger.Warn("postgres: could not tell whether a server that ran before this one still runs; the leases a stopped server left run out", "deliveries", len(dead.ids), "error", err)
		return
	case !alone:
		db.logger.Info("postgres: a server that ran before holds its member lock again; the leases found at the start run out", "deliveries", len(dead.ids))
		return
	}
	freeCtx, freeDone := context.WithTimeout(ctx, time.Minute)
	defer freeDone()
	res, err := db.wdb.ExecContext(freeCtx, `UPDATE deliveries d SET leased_until = NULL
		FROM unnest($1::text[], $2::bigint[]) AS v (id, leased_until)
		WHERE d.id = v.id AND d.status = 'pending' AND d.leased_until = v.leased_until`, dead.ids, dead.until)
	switch {
	case ctx.Err() != nil:
		return
	case err != nil:
		db.logger.Warn("postgres: could not free the leases a stopped server left; they run out", "deliveries", len(dead.ids), "error", err)
		return
	}
	n, _ := res.RowsAffected()
	db.logger.Info("queued deliveries a stopped server had claimed are free again", "deliveries", n)
}

// startedAlone says whether every other server holding the member lock
// (on this database and schema) also holds the first-session lock: none
// that ran when this one joined runs now. It is an error when this server
// no longer holds both on its first session (it lost it: the check that
// took the member lock again cannot tell who ran before).
func (db *DB) startedAlone(ctx context.Context) (bool, error) {
	db.memberMu.Lock()
	defer db.memberMu.Unlock()
	if db.memberConn == nil {
		return false, errors.New("this server's member lock is lost")
	}
	var first, alone bool
	err := db.memberConn.QueryRowContext(ctx, `WITH held AS (
			SELECT pid, classid FROM pg_locks
			WHERE locktype = 'advisory' AND granted AND objsubid = 2 AND objid = hashtext(current_schema())::oid
				AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))
		SELECT EXISTS (SELECT 1 FROM held WHERE pid = pg_backend_pid() AND classid = $2),
			NOT EXISTS (SELECT 1 FROM held m WHERE m.classid = $1 AND m.pid <> pg_backend_pid()
				AND NOT EXISTS (SELECT 1 FROM held s WHERE s.pid = m.pid AND s.classid = $2))`,
		memberLockKey, firstSessionLockKey).Scan(&first, &alone)
	switch {
	case err != nil:
		return false, fmt.Errorf("read the servers' locks: %w", err)
	case !first:
		return false, errors.New("this server lost the session it joined with")
	}
	return alone, nil
}

// maxClockSkew is how far a server's clock may be from PostgreSQL's before
// it warns (Options.DatabaseClock): its lease, retry and stored times are
// the database's, but the machine's clock still stamps logs and checks TLS
// certificates.
const maxClockSkew = 2 * time.Second

// clockCheckEvery is how often a server with Options.DatabaseClock
// measures its clock's offset from the database's again (NTP may step
// either).
const clockCheckEvery = 30 * time.Second

// measureClock measures how far the database server's clock is ahead of
// this machine's: the best of three round trips, read against their
// middle, so the error is at most half the shortest round trip.
func (db *DB) measureClock(ctx context.Context) (offset, rtt time.Duration, err error) {
	for i := range 3 {
		before := db.machineNow()
		var dbUS int64
		if err := db.rdb.QueryRowContext(ctx, `SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS BIGINT)`).Scan(&dbUS); err != nil {
			return 0, 0, fmt.Errorf("read the database's clock: %w", err)
		}
		after := db.machineNow()
		if took := after.Sub(before); i == 0 || took < rtt {
			rtt = took
			offset = time.UnixMicro(dbUS).Sub(before.Add(took / 2))
		}
	}
	return offset, rtt, nil
}

// followClock measures the clock's offset again and keeps it for DB.Now
// (Options.DatabaseClock), warning when it grows beyond maxClockSkew.
func (db *DB) followClock(ctx context.Context) {
	offset, rtt, err := db.measureClock(ctx)
	if err != nil {
		return // the offset measured last stands
	}
	last := time.Duration(db.clockOffset.Load())
	if (offset-last).Abs() <= rtt/2 && last != 0 {
		return // within the measure's error: times do not step back and forth
	}
	was := last.Abs() > maxClockSkew
	db.clockOffset.Store(int64(offset))
	if off := offset.Abs() > maxClockSkew+rtt; off && !was {
		db.logger.Warn("postgres: this machine's clock is off the database's; this server keeps lease, retry and stored times by the database's clock, but logs and TLS certificate checks use the machine's: keep it in sync (NTP)",
			"ahead_by", (-offset).Round(time.Millisecond))
	}
}

// keepClock runs followClock every clockCheckEvery until Close.
func (db *DB) keepClock() { db.every(clockCheckEvery, clockCheckEvery/2, db.followClock) }

// keepMembership takes the member lock again when its connection was lost,
// so that a server starting meanwhile does not count itself alone, until
// Close.
func (db *DB) keepMembership() { db.every(memberCheckEvery, memberCheckEvery, db.checkMembership) }

// every runs fn, bounded by timeout, every interval until Close; it is a
// goroutine of db.wg.
func (db *DB) every(interval, timeout time.Duration, fn func(context.Context)) {
	defer db.wg.Done()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-db.stop:
			return
		case <-tick.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		fn(ctx)
		cancel()
	}
}

// checkMembership pings the member lock's connection, and takes the lock
// again on a new one if it was lost.
func (db *DB) checkMembership(ctx context.Context) {
	db.memberMu.Lock()
	defer db.memberMu.Unlock()
	if db.memberConn != nil {
		if err := db.memberConn.PingContext(ctx); err == nil {
			return
		}
		discardConn(db.memberConn)
		db.memberConn = nil
	}
	conn, err := db.wdb.Conn(ctx)
	if err != nil {
		return
	}
	if _, err := conn.ExecContext(ctx, memberLock("pg_advisory_lock_shared"), memberLockKey); err != nil {
		discardConn(conn)
		return
	}
	db.memberConn = conn
	db.logger.Info("postgres: this server lost its member lock with its connection, and took it again")
}

// leaveServers lets go of the member lock, then ends its session. The
// unlock is what a server starting right after (a restart) must see: a
// closed session's locks are released only once PostgreSQL has noticed
// and ended its backend, a moment later, and a server that starts in that
// moment counts another as running and leaves dead leases to run out.
func (db *DB) leaveServers() {
	db.memberMu.Lock()
	defer db.memberMu.Unlock()
	if db.memberConn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, _ = db.memberConn.ExecContext(ctx, memberLock("pg_advisory_unlock_shared"), memberLockKey) // the discard ends it anyway
		cancel()
		discardConn(db.memberConn)
		db.memberConn = nil
	}
}

// discardConn closes conn's session instead of giving it back to the pool,
// so that the advisory locks it holds end with it. (Closing a *sql.Conn of
// the pool only gives it back, its session and locks alive.)
func discardConn(conn *sql.Conn) {
	_ = conn.Raw(func(dc any) error {
		if c, ok := dc.(*stdlib.Conn); ok {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = c.Conn().Close(ctx)
		}
		return driver.ErrBadConn
	})
	conn.Close()
}
