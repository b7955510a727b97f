package store

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	webhooks "github.com/pancake-pos/pancake-webhooks"
)

// A claim looks at the oldest claimWindow × limit due rows. When those
// belong to excluded webhooks (a webhook with a large backlog at its
// in-flight bound), it visits the webhooks with queued work in turn, at
// most claimVisits per claim, taking each one's oldest due rows through the
// (webhook_id, scheduled_at) index: a claim costs the same whatever the
// size of any one webhook's backlog.
const (
	claimWindow = 4
	claimVisits = 256
)

// ClaimDeliveries leases due pending deliveries for c.LeaseFor, oldest due
// first, skipping the webhooks in c.Exclude (those at their in-flight
// bound). A worker that dies leaves its rows to be claimed again when the
// lease runs out.
func (db *DB) ClaimDeliveries(ctx context.Context, c webhooks.Claim) ([]*webhooks.Job, error) {
	if c.Limit <= 0 {
		return nil, nil
	}
	jobs, full, err := db.claimHead(ctx, c)
	if err != nil || len(jobs) >= c.Limit || !full || len(c.Exclude) == 0 {
		return jobs, err
	}
	// The window was full and excluded webhooks' rows were skipped: other
	// webhooks' due work may wait behind it.
	more, err := db.claimByWebhook(ctx, c, jobs)
	return append(jobs, more...), err
}

// claimHead leases the oldest due rows of webhooks not excluded, looking
// at no more than a window of the oldest due rows; full says whether the
// window held as many rows as it could (there may be more behind it).
func (db *DB) claimHead(ctx context.Context, c webhooks.Claim) (jobs []*webhooks.Job, full bool, err error) {
	window := c.Limit
	if len(c.Exclude) > 0 {
		// Filtering the whole queue by webhook would read every due row
		// of a webhook with a large backlog: look at a window.
		window = claimWindow * c.Limit
	}
	err = db.writeClaim(ctx, c.Limit, func(tx *Tx) error {
		now := db.now()
		until := ms(now.Add(c.LeaseFor))
		var ids []string
		var seen int
		var err error
		if db.dialect.name == "postgres" {
			ids, seen, err = claimHeadPostgres(ctx, tx, c, window, until, ms(now))
		} else {
			ids, seen, err = claimHeadSQLite(ctx, tx, c, window, until, ms(now))
		}
		full = seen >= window
		if err != nil || len(ids) == 0 {
			return err
		}
		jobs, err = loadJobs(ctx, tx, ids, now, until)
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("claim deliveries: %w", err)
	}
	return jobs, full, nil
}

// dueRows is the condition of a pending row that is due and not leased at
// now (a placeholder such as "$2").
func dueRows(now string) string {
	return `status = 'pending' AND scheduled_at <= ` + now + ` AND (leased_until IS NULL OR leased_until <= ` + now + `)`
}

// claimHeadSQLite reads the window and leases what it picks, in the
// writer's transaction (nothing else writes meanwhile).
func claimHeadSQLite(ctx context.Context, tx *Tx, c webhooks.Claim, window int, until, now int64) ([]string, int, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id, webhook_id FROM deliveries WHERE `+dueRows("$1")+`
		ORDER BY scheduled_at LIMIT $2`, now, window)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var ids []string
	seen := 0
	for rows.Next() {
		var id, webhookID string
		if err := rows.Scan(&id, &webhookID); err != nil {
			return nil, 0, err
		}
		seen++
		if len(ids) < c.Limit && !slices.Contains(c.Exclude, webhookID) {
			ids = append(ids, id)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, 0, err
	}
	rows.Close() // before the UPDATE on the same connection
	if len(ids) == 0 {
		return nil, seen, nil
	}
	_, err = tx.ExecContext(ctx, `UPDATE deliveries SET leased_until = $1 WHERE id IN (`+placeholders(2, len(ids))+`)`,
		append([]any{until}, anySlice(ids)...)...)
	return ids, seen, err
}

// claimPlanPostgres makes the claim's window an ordered scan of
// deliveries_due that stops at its LIMIT, whatever the statistics say.
// When a backlog grows faster than autovacuum analyzes (a fan-out of 50
// queues 30,000 rows a second), the planner still believes few rows are
// queued and sorts them all instead: a claim then read and sorted 177,323
// rows (15 MB spilled to disk) to take 256, in 150 ms (auto_explain, the
// fanout scenario), and a million queued rows would take seconds a claim.
// With sorts disabled the only sortless plan is that index scan; JIT,
// which the disabled sort's cost would switch on, compiles for longer
// than the claim runs. Both settings end with the transaction (a claim's,
// or a batch of claims and records, whose statements need no sort).
// NextDue, which runs outside a transaction, gets the same settings from
// the SET clauses of its function, deliveries_next_due.
const claimPlanPostgres = `SELECT set_config('enable_sort', 'off', true), set_config('jit', 'off', true)`

// claimHeadSQLPostgres is claimHeadPostgres's statement; skip filters the
// window's rows by webhook ("" for none).
func claimHeadSQLPostgres(skip string) string {
	return `WITH win AS MATERIALIZED (
			SELECT id, webhook_id, scheduled_at FROM deliveries WHERE ` + dueRows("$2") + `
			ORDER BY scheduled_at LIMIT $4 FOR UPDATE SKIP LOCKED),
		upd AS (UPDATE deliveries d SET leased_until = $1
			FROM (SELECT id FROM win ` + skip + ` ORDER BY scheduled_at LIMIT $3) p WHERE d.id = p.id RETURNING d.id)
		SELECT id, 0 FROM upd UNION ALL SELECT NULL, count(*) FROM win`
}

// claimHeadPostgres does the same in one statement; the window's rows are
// locked with SKIP LOCKED, so replicas claiming at once take different
// rows.
func claimHeadPostgres(ctx context.Context, tx *Tx, c webhooks.Claim, window int, until, now int64) ([]string, int, error) {
	args := []any{until, now, c.Limit, window}
	skip := ""
	if len(c.Exclude) > 0 {
		skip = `WHERE webhook_id <> ALL($` + strconv.Itoa(len(args)+1) + `)`
		args = append(args, c.Exclude)
	}
	if _, err := tx.ExecContext(ctx, claimPlanPostgres); err != nil {
		return nil, 0, err
	}
	rows, err := tx.QueryContext(ctx, claimHeadSQLPostgres(skip), args...)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	var ids []string
	seen := 0
	for rows.Next() {
		var id sql.NullString
		var n int
		if err := rows.Scan(&id, &n); err != nil {
			return nil, 0, err
		}
		if id.Valid {
			ids = append(ids, id.String)
		} else {
			seen = n
		}
	}
	return ids, seen, rows.Err()
}

// claimByWebhook visits the webhooks with queued work in turn, from where
// the last visit stopped, and leases each one's oldest due rows (at most
// c.PerWebhook of them, counting those in got) until the claim is full.
// Candidates are read without holding the writer; the lease re-checks them.
func (db *DB) claimByWebhook(ctx context.Context, c webhooks.Claim, got []*webhooks.Job) ([]*webhooks.Job, error) {
	now := ms(db.now())
	skip := make(map[string]int, len(c.Exclude)+len(got))
	for _, id := range c.Exclude {
		skip[id] = -1
	}
	for _, j := range got {
		if skip[j.WebhookID] >= 0 {
			skip[j.WebhookID]++
		}
	}
	want := c.Limit - len(got)
	var ids []string
	db.claimMu.Lock()
	cursor := db.claimCursor
	db.claimMu.Unlock()
	// Visit from the cursor to the end of the list, then from its start
	// back to where this claim began.
	start, wrapped, visited := cursor, false, 0
visit:
	for visited < claimVisits && len(ids) < want {
		ask := claimVisits - visited
		heads, err := db.queuedWebhooks(ctx, cursor, ask)
		if err != nil {
			return nil, err
		}
		for _, h := range heads {
			if len(ids) >= want || (wrapped && h.webhookID > start) {
				break visit
			}
			visited++
			cursor = h.webhookID
			n := skip[h.webhookID]
			if n < 0 || h.due > now {
				continue
			}
			take := want - len(ids)
			if c.PerWebhook > 0 {
				take = min(take, c.PerWebhook-n)
			}
			if take <= 0 {
				continue
			}
			more, err := queryIDs(ctx, db.rdb, `SELECT id FROM deliveries WHERE webhook_id = $1 AND `+dueRows("$2")+`
				ORDER BY scheduled_at LIMIT $3`,
				h.webhookID, now, take)
			if err != nil {
				return nil, fmt.Errorf("claim deliveries: %w", err)
			}
			ids = append(ids, more...)
		}
		if len(heads) == ask {
			continue // the visit limit ends the loop, or there is more to read
		}
		if wrapped || start == "" {
			break
		}
		wrapped, cursor = true, ""
	}
	db.claimMu.Lock()
	db.claimCursor = cursor
	db.claimMu.Unlock()
	if len(ids) == 0 {
		return nil, nil
	}
	var jobs []*webhooks.Job
	err := db.writeClaim(ctx, len(ids), func(tx *Tx) error {
		t := db.now()
		until := ms(t.Add(c.LeaseFor))
		in, inArgs := db.dialect.in("id", 3, ids)
		leased, err := queryIDs(ctx, tx, `UPDATE deliveries SET leased_until = $1 WHERE id IN (
			SELECT id FROM deliveries WHERE `+in+`
			AND status = 'pending' AND (leased_until IS NULL OR leased_until <= $2)`+db.dialect.claimLock+`)
			RETURNING id`, append([]any{until, ms(t)}, inArgs...)...)
		if err != nil || len(leased) == 0 {
			return err
		}
		jobs, err = loadJobs(ctx, tx, leased, t, until)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("claim deliveries: %w", err)
	}
	return jobs, nil
}

// queueHead is a webhook with queued work and when its oldest queued row
// is due.
type queueHead struct {
	webhookID string
	due       int64
}

// queuedWebhooks lists up to n webhooks with queued rows, in id order after
// after, by skipping through the (webhook_id, scheduled_at) index: one seek
// per webhook, however many rows each has queued.
func (db *DB) queuedWebhooks(ctx context.Context, after string, n int) ([]queueHead, error) {
	rows, err := db.rdb.QueryContext(ctx, `WITH RECURSIVE w(id, n) AS (
			SELECT (SELECT webhook_id FROM deliveries WHERE status = 'pending' AND webhook_id > $1 ORDER BY webhook_id LIMIT 1), 1
			UNION ALL
			SELECT (SELECT webhook_id FROM deliveries WHERE status = 'pending' AND webhook_id > w.id ORDER BY webhook_id LIMIT 1), w.n + 1
			FROM w WHERE w.id IS NOT NULL AND w.n < $2)
		SELECT id, (SELECT scheduled_at FROM deliveries WHERE status = 'pending' AND webhook_id = w.id ORDER BY scheduled_at LIMIT 1)
		FROM w WHERE id IS NOT NULL`, after, n)
	if err != nil {
		return nil, fmt.Errorf("claim deliveries: list queued webhooks: %w", err)
	}
	defer rows.Close()
	var out []queueHead
	for rows.Next() {
		var h queueHead
		if err := rows.Scan(&h.webhookID, &h.due); err != nil {
			return nil, fmt.Errorf("claim deliveries: list queued webhooks: %w", err)
		}
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("claim deliveries: list queued webhooks: %w", err)
	}
	return out, nil
}

// queryIDs runs a query returning one string column.
func queryIDs(ctx context.Context, q querier, query string, args ...any) ([]string, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// loadJobs reads what the sender needs for claimed deliveries. A claimed
// row whose webhook was stopped or deleted is not a job: it is cancelled,
// or deleted with its webhook. Such rows are rare: on PostgreSQL a publish
// that read the webhook before it was stopped may queue them after the
// stop cancelled what was queued (or a lease kept them out of its reach).
func loadJobs(ctx context.Context, tx *Tx, ids []string, now time.Time, leasedUntil int64) ([]*webhooks.Job, error) {
	in, args := tx.db.dialect.in("d.id", 1, ids)
	rows, err := tx.QueryContext(ctx, `SELECT d.id, d.shop_id, d.webhook_id, d.event_id, d.event, d.attempt, d.trigger, d.created_at,
		e.envelope, w.is_active, w.url, w.secret, w.prev_secret, w.prev_secret_expires_at
		FROM deliveries d JOIN events e ON e.id = d.event_id LEFT JOIN webhooks w ON w.id = d.webhook_id
		WHERE `+in+` ORDER BY d.scheduled_at`, args...)
	if err != nil {
		return nil, fmt.Errorf("load jobs: %w", err)
	}
	defer rows.Close()
	jobs := make([]*webhooks.Job, 0, len(ids))
	var stopped, gone []string
	// The deliveries of one event share its envelope: a claim of an
	// event's 100 webhooks held 100 copies of up to 256 KiB each.
	envelopes := map[string][]byte{}
	for rows.Next() {
		var (
			j                 webhooks.Job
			trigger           string
			created           int64
			env               sql.RawBytes // valid until Next: copied once an event
			active            sql.NullBool
			url, secret, prev sql.NullString
			prevExp           sql.NullInt64
		)
		if err := rows.Scan(&j.DeliveryID, &j.ShopID, &j.WebhookID, &j.EventID, &j.Event, &j.Attempt, &trigger, &created,
			&env, &active, &url, &secret, &prev, &prevExp); err != nil {
			return nil, fmt.Errorf("load jobs: %w", err)
		}
		switch {
		case !active.Valid:
			gone = append(gone, j.DeliveryID)
			continue
		case !active.Bool:
			stopped = append(stopped, j.DeliveryID)
			continue
		}
		w := webhooks.Webhook{Secret: secret.String, PreviousSecret: prev.String, PreviousSecretExpiresAt: fromMS(prevExp.Int64)}
		j.Trigger = webhooks.Trigger(trigger)
		j.CreatedAt = fromMS(created)
		if j.Payload = envelopes[j.EventID]; j.Payload == nil {
			j.Payload = bytes.Clone(env)
			envelopes[j.EventID] = j.Payload
		}
		j.URL = url.String
		j.Secrets, j.SecretsUntil = w.SigningSecrets(now), w.PreviousSecretExpiresAt
		j.LeasedUntil = fromMS(leasedUntil)
		jobs = append(jobs, &j)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load jobs: %w", err)
	}
	rows.Close() // before the statements below, on the same connection
	if len(stopped) > 0 {
		where, args := tx.db.dialect.in("id", 1, stopped)
		if err := cancelWhere(ctx, tx, where, args, now); err != nil {
			return nil, err
		}
	}
	if err := deleteOrphans(ctx, tx, gone); err != nil {
		return nil, err
	}
	return jobs, nil
}

// deleteOrphans deletes deliveries whose webhook was deleted (a publish or
// an attempt that read it before it went), as DeleteWebhook would have.
func deleteOrphans(ctx context.Context, tx *Tx, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	where, args := tx.db.dialect.in("id", 1, ids)
	if _, err := tx.ExecContext(ctx, `DELETE FROM deliveries WHERE `+where, args...); err != nil {
		return fmt.Errorf("delete deliveries of deleted webhooks: %w", err)
	}
	return nil
}

// NextDue returns when the earliest unleased pending delivery is due (zero
// if none). It walks the queue index from its head, skipping only the rows
// in flight; rows whose lease ran out are found by the dispatcher's poll.
func (db *DB) NextDue(ctx context.Context) (time.Time, error) {
	var v sql.NullInt64
	q := `SELECT scheduled_at FROM deliveries WHERE status = 'pending' AND leased_until IS NULL ORDER BY scheduled_at LIMIT 1`
	if db.dialect.name == "postgres" {
		q = `SELECT deliveries_next_due()` // the same, planned so that a stale estimate cannot sort the queue
	}
	err := db.rdb.QueryRowContext(ctx, q).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) || err == nil && !v.Valid {
		return time.Time{}, nil
	} else if err != nil {
		return time.Time{}, fmt.Errorf("next due: %w", err)
	}
	return fromMS(v.Int64), nil
}

// attempt is a recorded attempt as the health and stats fold sees it.
type attempt struct {
	webhookID string
	event     string
	success   bool
	at        time.Time
	duration  int64
	reason    string
	disable   string
}

// RecordAttempts turns claimed deliveries into finished attempts, queues
// the next attempt of failed ones that have tries left (unless the webhook
// was disabled meanwhile), and updates health and stats, in one commit.
func (db *DB) RecordAttempts(ctx context.Context, results []webhooks.AttemptResult) error {
	if len(results) == 0 {
		return nil
	}
	// Encoded here, not in the writer, which every write waits for.
	vals := make([]attemptRow, len(results))
	for i := range results {
		storable(&results[i].Response, &results[i].FailureReason)
		v, err := attemptValues(&results[i])
		if err != nil {
			return err
		}
		vals[i] = v
	}
	var (
		stopped []disabled // webhooks the results disabled
		givenUp int        // deliveries whose last attempt this was
	)
	hooks := uniqueWebhooks(results, func(r webhooks.AttemptResult) string { return r.WebhookID })
	err := db.writeUrgent(ctx, len(results), hooks, func(tx *Tx, queued *bool) error {
		stopped, givenUp = nil, 0
		states, err := webhookStates(ctx, tx, hooks)
		if err != nil {
			return err
		}
		var gone []string
		for i := range results {
			if _, ok := states[results[i].WebhookID]; !ok {
				gone = append(gone, results[i].DeliveryID)
			}
		}
		if err := deleteOrphans(ctx, tx, gone); err != nil {
			return err
		}
		var (
			done  []attempt
			retry []*webhooks.Delivery
		)
		nexts := make([]*time.Time, len(results))
		for i := range results {
			r := &results[i]
			if st := states[r.WebhookID]; !r.Success && r.NextAttemptAt != nil && r.Disable == "" && st != nil && st.active {
				nexts[i] = r.NextAttemptAt
			}
		}
		finished, err := finishDeliveries(ctx, tx, results, vals, nexts)
		if err != nil {
			return err
		}
		for i := range results {
			r := &results[i]
			next := nexts[i]
			d, ok := finished[r.DeliveryID]
			delete(finished, r.DeliveryID) // a second result for the same row finds it done
			if !ok {
				// Already recorded (a lease ran out and another worker took
				// it) or deleted with its webhook: nothing more to do.
				continue
			}
			done = append(done, attempt{webhookID: r.WebhookID, event: d.Event, success: r.Success, at: r.AttemptedAt,
				duration: r.Duration.Milliseconds(), reason: r.FailureReason, disable: r.Disable})
			if !r.Success && next == nil {
				givenUp++
			}
			if next != nil {
				retry = append(retry, &webhooks.Delivery{
					ID: webhooks.NewID(webhooks.PrefixDelivery, r.AttemptedAt), ShopID: d.ShopID, WebhookID: r.WebhookID,
					EventID: d.EventID, Event: d.Event, Trigger: webhooks.TriggerRetry, Attempt: d.Attempt + 1,
					RetryOf: r.DeliveryID, CreatedAt: r.AttemptedAt, ScheduledAt: next,
				})
			}
		}
		if err := insertPending(ctx, tx, retry); err != nil {
			return err
		}
		*queued = len(retry) > 0
		stopped, err = db.applyAttempts(ctx, tx, done, states)
		return err
	})
	if err != nil {
		return err
	}
	db.givenUp.Add(float64(givenUp))
	db.disabledWebhooks(stopped)
	return nil
}

// disabled is a webhook that a write disabled, and why.
type disabled struct {
	id, shopID, reason string
}

// disabledWebhooks tells the operator of each webhook a record or the
// 5-day rule disabled (its deliveries stop until the shop turns it on
// again), once, after the commit, and the dispatcher, which must not
// send what it had claimed for them: on SQLite nothing else tells it
// (audit: 48 more attempts reached a webhook the 5-day rule had
// disabled).
func (db *DB) disabledWebhooks(ds []disabled) {
	if len(ds) == 0 {
		return
	}
	ids := make([]string, len(ds))
	for i, d := range ds {
		ids[i] = d.id
		db.logger.Info("webhook disabled", "webhook_id", d.id, "shop_id", d.shopID, "reason", d.reason)
	}
	db.notifyStopped(ids...)
}

// webhookState is what the health fold reads of a webhook's row (see
// foldHealth), and whether it is active.
type webhookState struct {
	shopID    string
	active    bool
	lastAt    *int64 // last_triggered_at
	successAt *int64 // last_success_at
	failAt    *int64 // last_failure_at
	reason    string // last_failure_reason
	streak    int64  // consecutive_failures
	since     *int64 // failing_since
}

// webhookStates reads, for each id, whether that webhook exists, whether
// it is active, and its health. On PostgreSQL it also locks the rows, in
// id order, for the health update that follows (applyHealth): that
// statement's join may visit them in any order, and two writers recording
// attempts of the same webhooks must not lock them in different orders;
// the lock also keeps what was read current until the update.
func webhookStates(ctx context.Context, tx *Tx, ids []string) (map[string]*webhookState, error) {
	out := make(map[string]*webhookState, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	lock := ""
	if tx.db.dialect.name == "postgres" {
		lock = ` ORDER BY id FOR NO KEY UPDATE`
	}
	in, args := tx.db.dialect.in("id", 1, ids)
	rows, err := tx.QueryContext(ctx, `SELECT id, shop_id, is_active, last_triggered_at, last_success_at, last_failure_at,
		last_failure_reason, consecutive_failures, failing_since FROM webhooks WHERE `+in+lock, args...)
	if err != nil {
		return nil, fmt.Errorf("read webhooks: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var st webhookState
		if err := rows.Scan(&id, &st.shopID, &st.active, &st.lastAt, &st.successAt, &st.failAt, &st.reason, &st.streak, &st.since); err != nil {
			return nil, fmt.Errorf("read webhooks: %w", err)
		}
		out[id] = &st
	}
	return out, rows.Err()
}

// attemptRow is what an attempt writes onto its row but next_retry_at
// (see finishSQL's columns).
type attemptRow struct {
	status                string
	at                    int64
	respStatus            int64
	respHeaders, respBody string
	truncated             bool
	reqHeaders, reason    string
	durationMS            int64
}

// storable makes the receiver's text in an attempt storable on both
// databases (see webhooks.StorableText), in place: its body, headers and
// the failure reason, which may quote what it sent. egress already cleans
// the body; one result PostgreSQL refused failed the whole batch of
// results it came in, again at each try.
func storable(resp *webhooks.Response, reason *string) {
	resp.Body = webhooks.StorableText(resp.Body)
	*reason = webhooks.StorableText(*reason)
	for k, v := range resp.Headers {
		if k2, v2 := webhooks.StorableText(k), webhooks.StorableText(v); k2 != k || v2 != v {
			delete(resp.Headers, k)
			resp.Headers[k2] = v2
		}
	}
}

// attemptValues encodes what r writes onto its row.
func attemptValues(r *webhooks.AttemptResult) (attemptRow, error) {
	status := webhooks.StatusFailed
	if r.Success {
		status = webhooks.StatusSuccess
	}
	respHeaders, reqHeaders, err := encodeHeaders(r.Response.Headers, r.RequestHeaders)
	if err != nil {
		return attemptRow{}, err
	}
	return attemptRow{status: string(status), at: ms(r.AttemptedAt), respStatus: int64(r.Response.StatusCode),
		respHeaders: respHeaders, respBody: r.Response.Body, truncated: r.Response.BodyTruncated,
		reqHeaders: reqHeaders, reason: r.FailureReason, durationMS: r.Duration.Milliseconds()}, nil
}

// finishDeliveries writes each result onto its claimed row and returns
// the rows it finished, by id; a row already finished by an attempt, or
// gone with its webhook, is not among them. When results hold two for one
// delivery, the first is written. A statement per row was most of the
// time a batch took (a round trip each on PostgreSQL; on SQLite binding,
// stepping and resetting a statement cost as much as its update), so
// PostgreSQL takes the batch in one statement, and SQLite in a few of
// the sizes of sqliteChunks, so that few shapes of statement are prepared.
func finishDeliveries(ctx context.Context, tx *Tx, results []webhooks.AttemptResult, vals []attemptRow, nexts []*time.Time) (map[string]*webhooks.Delivery, error) {
	seen := make(map[string]bool, len(results))
	idx := make([]int, 0, len(results))
	for i := range results {
		if id := results[i].DeliveryID; !seen[id] {
			seen[id] = true
			idx = append(idx, i)
		}
	}
	out := make(map[string]*webhooks.Delivery, len(idx))
	pg := tx.db.dialect.name == "postgres"
	for len(idx) > 0 {
		n := chunkSize(pg, len(idx))
		if err := finishChunk(ctx, tx, pg, results, vals, nexts, idx[:n], out); err != nil {
			return nil, err
		}
		idx = idx[n:]
	}
	return out, nil
}

// sqliteChunks are the row counts of SQLite's multi-row statements that
// take a batch's rows (finishDeliveries, applyHealth, addStats), largest
// first: four shapes each, each prepared once.
var sqliteChunks = []int{64, 16, 4, 1}

// chunkSize is how many of n rows the next multi-row statement takes: all
// of them on PostgreSQL, the largest of sqliteChunks that fits on SQLite.
func chunkSize(pg bool, n int) int {
	if pg {
		return n
	}
	for _, size := range sqliteChunks {
		if size <= n {
			return size
		}
	}
	return n
}

// finishChunk runs one statement of finishDeliveries for results[idx...],
// whose attemptValues are vals[idx...].
func finishChunk(ctx context.Context, tx *Tx, pg bool, results []webhooks.AttemptResult, vals []attemptRow, nexts []*time.Time, idx []int, out map[string]*webhooks.Delivery) error {
	var (
		query string
		args  []any
	)
	if pg {
		query, args = finishSQLPostgres, finishArrays(results, vals, nexts, idx)
	} else {
		query, args = finishSQL(len(idx)), make([]any, 0, len(idx)*finishColumns)
		for _, i := range idx {
			v := &vals[i]
			args = append(args, v.status, v.at, v.respStatus, v.respHeaders, v.respBody, v.truncated, v.reqHeaders,
				v.reason, v.durationMS, nullMS(nexts[i]), results[i].DeliveryID)
		}
	}
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("record attempts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var d webhooks.Delivery
		if err := rows.Scan(&d.ID, &d.ShopID, &d.EventID, &d.Event, &d.Attempt); err != nil {
			return fmt.Errorf("record attempts: %w", err)
		}
		out[d.ID] = &d
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("record attempts: %w", err)
	}
	return nil
}

// finishColumns is how many values a row of finishSQL takes: an
// attemptRow's nine, next_retry_at and the delivery's id.
const finishColumns = 11

// The parts of finishSQL's statements. SQLite's WHERE compares the
// failure reason with a literal, not a parameter: with a parameter there,
// a profile of the single scenario spent 0.43 s of 10 s re-preparing the
// whole statement in sqlite3_step (none with the literal). SQLite marks a
// parameter compared in WHERE as one whose bound value may change the
// plan, and every parameter from the 32nd on shares that mark: most
// likely why binding the rows' values expired the statement.
const (
	finishCols = `(status, created_at, response_status, response_headers, response_body,
		response_truncated, request_headers, failure_reason, duration_ms, next_retry_at, id)`
	finishSet = `status = v.status, created_at = v.created_at, scheduled_at = NULL,
		leased_until = NULL, response_status = v.response_status, response_headers = v.response_headers,
		response_body = v.response_body, response_truncated = v.response_truncated, request_headers = v.request_headers,
		failure_reason = v.failure_reason, duration_ms = v.duration_ms, next_retry_at = v.next_retry_at`
	finishRow  = "($%d, $%d, $%d, $%d, $%d, $%d, $%d, $%d, $%d, $%d, $%d)"
	finishHead = `WITH v ` + finishCols + ` AS (VALUES `
)

// finishCancelled is the failure reason of a delivery cancelled by
// disabling its webhook, as an SQL literal: an attempt still in flight may
// finish such a row.
var finishCancelled = `'` + strings.ReplaceAll(webhooks.FailureWebhookDisabled, "'", "''") + `'`

var finishTail = `)
		UPDATE deliveries SET ` + finishSet + ` FROM v
		WHERE deliveries.id = v.id AND (deliveries.status = 'pending' OR deliveries.failure_reason = ` + finishCancelled + `)
		RETURNING id, shop_id, event_id, event, attempt`

// finishSQLs memoizes SQLite's texts of finishSQL (four shapes).
var finishSQLs sync.Map

// finishSQL is SQLite's statement of finishChunk for n rows: each row's
// attemptRow, next_retry_at and id.
func finishSQL(n int) string {
	return multiRowSQL(&finishSQLs, finishHead, finishRow, finishTail, finishColumns, n)
}

// finishSQLPostgres is PostgreSQL's statement of finishChunk: a column of
// the rows per array ($1 … $11, see finishArrays), one text for any count
// (see insertQueuedPostgres).
var finishSQLPostgres = `UPDATE deliveries d SET ` + finishSet + `
	FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::text[], $6::boolean[], $7::text[], $8::text[],
		$9::bigint[], $10::bigint[], $11::text[]) AS v ` + finishCols + `
	WHERE d.id = v.id AND (d.status = 'pending' OR d.failure_reason = ` + finishCancelled + `)
	RETURNING d.id, d.shop_id, d.event_id, d.event, d.attempt`

// finishArrays are finishSQLPostgres's arguments for results[idx...].
func finishArrays(results []webhooks.AttemptResult, vals []attemptRow, nexts []*time.Time, idx []int) []any {
	n := len(idx)
	var (
		status, respHeaders, respBody, reqHeaders, reason, ids = make([]string, n), make([]string, n), make([]string, n),
			make([]string, n), make([]string, n), make([]string, n)
		at, respStatus, duration = make([]int64, n), make([]int64, n), make([]int64, n)
		truncated                = make([]bool, n)
		next                     = make([]*int64, n)
	)
	for k, i := range idx {
		v := &vals[i]
		status[k], at[k], respStatus[k], respHeaders[k], respBody[k] = v.status, v.at, v.respStatus, v.respHeaders, v.respBody
		truncated[k], reqHeaders[k], reason[k], duration[k] = v.truncated, v.reqHeaders, v.reason, v.durationMS
		if nexts[i] != nil {
			t := ms(*nexts[i])
			next[k] = &t
		}
		ids[k] = results[i].DeliveryID
	}
	return []any{status, at, respStatus, respHeaders, respBody, truncated, reqHeaders, reason, duration, next, ids}
}

func encodeHeaders(resp map[string]string, req map[string]string) (string, string, error) {
	var a, b []byte
	var err error
	if resp != nil {
		if a, err = json.Marshal(resp); err != nil {
			return "", "", fmt.Errorf("encode response headers: %w", err)
		}
	}
	if req != nil {
		if b, err = json.Marshal(req); err != nil {
			return "", "", fmt.Errorf("encode request headers: %w", err)
		}
	}
	return string(a), string(b), nil
}

// applyAttempts folds recorded attempts into the health of their
// webhooks, whose rows states holds as read in this transaction (one
// update per webhook), and into the hourly stats (one upsert per bucket).
//
// It returns the webhooks it disabled (410 Gone, or failing for 5 days).
func (db *DB) applyAttempts(ctx context.Context, tx *Tx, done []attempt, states map[string]*webhookState) ([]disabled, error) {
	if len(done) == 0 {
		return nil, nil
	}
	slices.SortStableFunc(done, func(a, b attempt) int {
		return cmp.Or(strings.Compare(a.webhookID, b.webhookID), a.at.Compare(b.at))
	})
	var hs []health
	for i := 0; i < len(done); {
		j := i
		for j < len(done) && done[j].webhookID == done[i].webhookID {
			j++
		}
		if st := states[done[i].webhookID]; st != nil {
			hs = append(hs, foldHealth(done[i].webhookID, *st, done[i:j]))
		}
		i = j
	}
	stopped, err := applyHealth(ctx, tx, hs)
	if err != nil {
		return nil, err
	}
	return stopped, addStats(ctx, tx, done)
}

// health is a webhook's row after a batch's attempts: what applyHealth
// writes.
type health struct {
	id      string
	state   webhookState
	disable string // a reason to disable the webhook (410 Gone)
}

// foldHealth folds one webhook's attempts of a batch, in time order, into
// its row's health st. Results are not always recorded in the order their
// attempts were made: one that took seconds comes after a faster, later
// one, a test send's or another replica's (audit). So each time keeps the
// latest attempt's, the last failure's reason goes with its time, and the
// failure streak counts the failures made after the latest success only.
func foldHealth(id string, st webhookState, as []attempt) health {
	h := health{id: id}
	for _, a := range as {
		at := ms(a.at)
		if a.disable != "" {
			h.disable = a.disable
		}
		if st.lastAt == nil || at > *st.lastAt {
			st.lastAt = &at
		}
		if a.success {
			if st.successAt != nil && at < *st.successAt {
				continue // an older success changes nothing
			}
			st.successAt = &at
			switch {
			case st.streak == 0, st.since != nil && *st.since > at:
				// No streak, or all of it came after this success.
			case st.failAt != nil && *st.failAt > at:
				// Part of the streak came after this success. How much
				// is not kept; its last failure did.
				last := *st.failAt
				st.streak, st.since = 1, &last
			default:
				st.streak, st.since = 0, nil
			}
			continue
		}
		if st.successAt == nil || at >= *st.successAt {
			st.streak++
			switch {
			case st.since == nil || at < *st.since:
				st.since = &at
			case st.failAt != nil && at-*st.failAt >= webhooks.AutoDisableBreak.Milliseconds():
				// A day without an attempt: a new failing spell (see
				// webhooks.AutoDisableAfter).
				st.since = &at
			}
		}
		if st.failAt == nil || at >= *st.failAt {
			st.failAt, st.reason = &at, a.reason
		}
	}
	h.state = st
	return h
}

// The parts of applyHealth's statement: the values foldHealth made.
const (
	healthCols = `(id, last_at, streak, since, success_at, fail_at, reason)`
	healthSet  = `last_triggered_at = v.last_at, consecutive_failures = v.streak, failing_since = v.since,
		last_success_at = v.success_at, last_failure_at = v.fail_at, last_failure_reason = v.reason`
	healthTail        = `) UPDATE webhooks SET ` + healthSet + ` FROM v WHERE webhooks.id = v.id RETURNING webhooks.id, webhooks.is_active`
	healthRow         = "($%d, $%d, $%d, $%d, $%d, $%d, $%d)"
	healthHead        = `WITH v ` + healthCols + ` AS (VALUES `
	healthSQLPostgres = `UPDATE webhooks SET ` + healthSet + `
		FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::bigint[], $6::bigint[], $7::text[])
			AS v ` + healthCols + `
		WHERE webhooks.id = v.id RETURNING webhooks.id, webhooks.is_active`
)

// healthArrays are healthSQLPostgres's arguments for hs: a column each.
func healthArrays(hs []health) []any {
	n := len(hs)
	var (
		ids                              = make([]string, n)
		streak                           = make([]int64, n)
		lastAt, since, successAt, failAt = make([]*int64, n), make([]*int64, n), make([]*int64, n), make([]*int64, n)
		reason                           = make([]string, n)
	)
	for i, h := range hs {
		st := &h.state
		ids[i], lastAt[i], streak[i], since[i] = h.id, st.lastAt, st.streak, st.since
		successAt[i], failAt[i], reason[i] = st.successAt, st.failAt, st.reason
	}
	return []any{ids, lastAt, streak, since, successAt, failAt, reason}
}

// healthSQLs memoizes SQLite's texts of applyHealth (see sqliteChunks).
var healthSQLs sync.Map

// applyHealth updates the webhooks of hs (sorted by id) in a statement
// per chunk, not one per webhook: on PostgreSQL a statement per webhook
// (and one per stats counter) was a round trip each, and recording a
// batch spread over 10 webhooks took 75 µs per delivery instead of 55
// (BenchmarkQueue). Then it disables the webhooks that asked for it, and
// those whose every attempt failed for AutoDisableAfter (see
// webhooks.AutoDisableAfter), and returns those it disabled.
func applyHealth(ctx context.Context, tx *Tx, hs []health) ([]disabled, error) {
	pg := tx.db.dialect.name == "postgres"
	active := make(map[string]bool, len(hs))
	for rest := hs; len(rest) > 0; {
		n := chunkSize(pg, len(rest))
		var (
			q    string
			args []any
		)
		if pg {
			q, args = healthSQLPostgres, healthArrays(rest[:n])
		} else {
			q, args = multiRowSQL(&healthSQLs, healthHead, healthRow, healthTail, healthColumns, n), make([]any, 0, n*healthColumns)
			for _, h := range rest[:n] {
				st := &h.state
				args = append(args, h.id, st.lastAt, st.streak, st.since, st.successAt, st.failAt, st.reason)
			}
		}
		rows, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return nil, fmt.Errorf("update health: %w", err)
		}
		for rows.Next() {
			var id string
			var on bool
			if err := rows.Scan(&id, &on); err != nil {
				rows.Close()
				return nil, fmt.Errorf("update health: %w", err)
			}
			active[id] = on
		}
		if err := rows.Close(); err != nil {
			return nil, fmt.Errorf("update health: %w", err)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("update health: %w", err)
		}
		rest = rest[n:]
	}
	var stopped []disabled
	for _, h := range hs {
		on, found := active[h.id]
		if !found {
			continue // deleted meanwhile
		}
		st := &h.state
		disable := h.disable
		if disable == "" && on && failingLongEnough(st.since, st.failAt) {
			disable = webhooks.DisabledReasonFailing
		}
		if disable != "" {
			done, err := disableWebhook(ctx, tx, h.id, disable, time.UnixMilli(*st.lastAt))
			if err != nil {
				return nil, err
			}
			if done {
				stopped = append(stopped, disabled{id: h.id, shopID: st.shopID, reason: disable})
			}
		}
	}
	return stopped, nil
}

// failingLongEnough says whether a failing spell from since to the last
// failure has lasted webhooks.AutoDisableAfter.
func failingLongEnough(since, lastFailure *int64) bool {
	return since != nil && lastFailure != nil && *lastFailure-*since >= webhooks.AutoDisableAfter.Milliseconds()
}

// healthColumns is how many values a row of applyHealth's statement takes.
const healthColumns = 7

// statsSQLs memoizes SQLite's texts of addStats.
var statsSQLs sync.Map

const (
	statsHead = `INSERT INTO webhook_stats (webhook_id, hour, event, total, success, failed, duration_ms_sum) VALUES `
	statsRow  = "($%d, $%d, $%d, $%d, $%d, $%d, $%d)"
	statsTail = ` ON CONFLICT (webhook_id, hour, event) DO UPDATE SET total = webhook_stats.total + excluded.total,
		success = webhook_stats.success + excluded.success, failed = webhook_stats.failed + excluded.failed,
		duration_ms_sum = webhook_stats.duration_ms_sum + excluded.duration_ms_sum`
	statsColumns = 7
	// PostgreSQL's: the same rows as arrays, in key order (see addStats).
	statsSQLPostgres = `INSERT INTO webhook_stats (webhook_id, hour, event, total, success, failed, duration_ms_sum)
		SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[], $6::bigint[], $7::bigint[])` + statsTail
)

// addStats adds attempts to the hourly counters of their webhook and event
// type, a statement per chunk of counters, in key order (so concurrent
// writers lock them in one order).
func addStats(ctx context.Context, tx *Tx, done []attempt) error {
	type key struct {
		webhookID, event string
		hour             int64
	}
	type sums struct{ total, ok, dur int64 }
	buckets := map[key]*sums{}
	var keys []key
	for _, a := range done {
		k := key{a.webhookID, a.event, ms(a.at.UTC().Truncate(time.Hour))}
		s := buckets[k]
		if s == nil {
			s = &sums{}
			buckets[k] = s
			keys = append(keys, k)
		}
		s.total++
		s.dur += a.duration
		if a.success {
			s.ok++
		}
	}
	slices.SortFunc(keys, func(a, b key) int {
		return cmp.Or(strings.Compare(a.webhookID, b.webhookID), cmp.Compare(a.hour, b.hour), strings.Compare(a.event, b.event))
	})
	pg := tx.db.dialect.name == "postgres"
	for len(keys) > 0 {
		n := chunkSize(pg, len(keys))
		var (
			q    string
			args []any
		)
		if pg {
			// A column per array: one text for any count (see insertQueuedPostgres).
			webhookIDs, events := make([]string, n), make([]string, n)
			hours, totals, oks, fails, durs := make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
			for i, k := range keys[:n] {
				s := buckets[k]
				webhookIDs[i], hours[i], events[i] = k.webhookID, k.hour, k.event
				totals[i], oks[i], fails[i], durs[i] = s.total, s.ok, s.total-s.ok, s.dur
			}
			q, args = statsSQLPostgres, []any{webhookIDs, hours, events, totals, oks, fails, durs}
		} else {
			q, args = multiRowSQL(&statsSQLs, statsHead, statsRow, statsTail, statsColumns, n), make([]any, 0, n*statsColumns)
			for _, k := range keys[:n] {
				s := buckets[k]
				args = append(args, k.webhookID, k.hour, k.event, s.total, s.ok, s.total-s.ok, s.dur)
			}
		}
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("update stats: %w", err)
		}
		keys = keys[n:]
	}
	return nil
}

// disableWebhook turns an active webhook off for reason and cancels its
// queued deliveries. It says whether the webhook was active.
func disableWebhook(ctx context.Context, tx *Tx, id, reason string, now time.Time) (bool, error) {
	res, err := tx.ExecContext(ctx, `UPDATE webhooks SET is_active = FALSE, disabled_reason = $1, updated_at = $2
		WHERE id = $3 AND is_active = TRUE`, reason, ms(now), id)
	if err != nil {
		return false, fmt.Errorf("disable webhook: %w", err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		return true, cancelQueued(ctx, tx, id, now)
	}
	return false, nil
}

// RecordSyncAttempt stores a synchronous attempt (test send or manual
// retry): its event if new, the finished delivery, and health and stats.
func (db *DB) RecordSyncAttempt(ctx context.Context, a webhooks.SyncAttempt) error {
	d := a.Delivery
	var stopped []disabled
	err := db.writeHooks(ctx, []string{d.WebhookID}, nil, func(tx *Tx) error {
		stopped = nil
		// The webhook's row is locked first (webhooks before deliveries,
		// as the recorder), which also makes manual retries of its
		// deliveries take turns at numbering their attempt.
		states, err := webhookStates(ctx, tx, []string{d.WebhookID})
		if err != nil {
			return err
		}
		if states[d.WebhookID] == nil {
			return webhooks.Errorf(webhooks.ENOTFOUND, "Webhook %s not found", d.WebhookID)
		}
		if a.Event != nil {
			if err := insertEvent(ctx, tx, a.Event, nil); err != nil {
				return err
			}
		}
		var resp webhooks.Response
		if d.Response != nil {
			storable(d.Response, &d.FailureReason)
			resp = *d.Response
		} else {
			storable(&resp, &d.FailureReason)
		}
		respHeaders, reqHeaders, err := encodeHeaders(resp.Headers, d.RequestHeaders)
		if err != nil {
			return err
		}
		if d.Trigger == webhooks.TriggerManualRetry {
			// The count of the event's attempts at the webhook goes on:
			// two manual retries of one attempt are not both number 2.
			err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(attempt), 0) + 1 FROM deliveries
				WHERE event_id = $1 AND webhook_id = $2`, d.EventID, d.WebhookID).Scan(&d.Attempt)
			if err != nil {
				return fmt.Errorf("number the attempt: %w", err)
			}
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO deliveries (id, shop_id, webhook_id, event_id, event, status, trigger, attempt,
			retry_of, created_at, response_status, response_headers, response_body, response_truncated, request_headers,
			failure_reason, duration_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)`,
			d.ID, d.ShopID, d.WebhookID, d.EventID, d.Event, string(d.Status), string(d.Trigger), d.Attempt, d.RetryOf,
			ms(d.CreatedAt), resp.StatusCode, respHeaders, resp.Body, resp.BodyTruncated, reqHeaders, d.FailureReason, d.DurationMS)
		if err != nil {
			return fmt.Errorf("insert delivery: %w", err)
		}
		disable := ""
		if resp.StatusCode == 410 {
			disable = webhooks.DisabledReasonGone
		}
		stopped, err = db.applyAttempts(ctx, tx, []attempt{{webhookID: d.WebhookID, event: d.Event, success: d.Status == webhooks.StatusSuccess,
			at: d.CreatedAt, duration: d.DurationMS, reason: d.FailureReason, disable: disable}}, states)
		return err
	})
	if err != nil {
		return err
	}
	db.disabledWebhooks(stopped)
	return nil
}

// freeDeadLeases frees the leases of queued deliveries, once this process
// knows no other server runs (the SQLite server lock, or alone among the
// PostgreSQL servers): a lease left in the database is then a dead
// server's (one stopped gracefully frees its own). Their deliveries are
// sent again now, not when the lease would have run out (--lease, 1.5
// minutes by default).
func (db *DB) freeDeadLeases(ctx context.Context) error {
	var n int64
	err := db.write(ctx, func(tx *Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE deliveries SET leased_until = NULL WHERE status = 'pending' AND leased_until IS NOT NULL`)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return fmt.Errorf("free the leases of a stopped server: %w", err)
	}
	if n > 0 {
		db.logger.Info("queued deliveries a stopped server had claimed are free again", "deliveries", n)
	}
	return nil
}

// RenewLease extends the lease of a claimed delivery not yet sent to until,
// and says whether it still held it: a delivery finished or cancelled
// meanwhile (its webhook disabled), or whose lease ran out and was taken
// by another worker, is not renewed. On true, j.LeasedUntil is until. It
// commits as a claim does: a worker waits for it, and a renewal lost in a
// crash only leaves the older lease.
func (db *DB) RenewLease(ctx context.Context, j *webhooks.Job, until time.Time) (bool, error) {
	var n int64
	err := db.writeClaim(ctx, 1, func(tx *Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE deliveries SET leased_until = $1 WHERE id = $2 AND status = 'pending' AND leased_until = $3`,
			ms(until), j.DeliveryID, ms(j.LeasedUntil))
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return false, fmt.Errorf("renew lease: %w", err)
	}
	if n == 1 {
		j.LeasedUntil = until
	}
	return n == 1, nil
}

// ReleaseDeliveries ends the leases of claimed deliveries that were not
// sent, so they can be taken again at once. A lease that ran out and was
// taken by another worker since is left alone: only rows still leased
// until the job's own LeasedUntil are released.
func (db *DB) ReleaseDeliveries(ctx context.Context, jobs []*webhooks.Job) error {
	for len(jobs) > 0 {
		chunk := jobs[:min(len(jobs), 200)]
		jobs = jobs[len(chunk):]
		err := db.write(ctx, func(tx *Tx) error {
			for _, j := range chunk {
				_, err := tx.ExecContext(ctx, `UPDATE deliveries SET leased_until = NULL WHERE id = $1 AND status = 'pending' AND leased_until = $2`,
					j.DeliveryID, ms(j.LeasedUntil))
				if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("release deliveries: %w", err)
		}
	}
	return nil
}
