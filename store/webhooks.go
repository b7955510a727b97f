package store

import (
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

const webhookColumns = `id, shop_id, url, events, is_active, description, secret, prev_secret,
	prev_secret_expires_at, created_at, updated_at, last_triggered_at, disabled_reason,
	consecutive_failures, failing_since, last_success_at, last_failure_at, last_failure_reason`

type rowScanner interface{ Scan(dest ...any) error }

func scanWebhook(row rowScanner) (*webhooks.Webhook, error) {
	var (
		w                                                webhooks.Webhook
		events                                           string
		prevExp, created, updated                        int64
		lastTrig, failingSince, lastSuccess, lastFailure sql.NullInt64
	)
	err := row.Scan(&w.ID, &w.ShopID, &w.URL, &events, &w.IsActive, &w.Description, &w.Secret, &w.PreviousSecret,
		&prevExp, &created, &updated, &lastTrig, &w.DisabledReason,
		&w.Health.ConsecutiveFailures, &failingSince, &lastSuccess, &lastFailure, &w.Health.LastFailureReason)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(events), &w.Events); err != nil {
		return nil, fmt.Errorf("decode events of webhook %s: %w", w.ID, err)
	}
	w.PreviousSecretExpiresAt = fromMS(prevExp)
	w.CreatedAt, w.UpdatedAt = fromMS(created), fromMS(updated)
	w.LastTriggeredAt = ptrMS(lastTrig)
	w.Health.FailingSince = ptrMS(failingSince)
	w.Health.LastSuccessAt = ptrMS(lastSuccess)
	w.Health.LastFailureAt = ptrMS(lastFailure)
	return &w, nil
}

// healthWindowStart is the first hour counted in the 24-hour success rate:
// the hour that was 24 hours ago, so that every attempt of the last 24
// hours counts (stats are kept per hour; with the 23 hours before the
// current one, an attempt 23 h 1 min old could drop out, audit).
func healthWindowStart(now time.Time) int64 {
	return ms(now.UTC().Truncate(time.Hour).Add(-24 * time.Hour))
}

// fillHealth adds the 24-hour attempt counts to the webhooks.
func (db *DB) fillHealth(ctx context.Context, q querier, ws []*webhooks.Webhook) error {
	if len(ws) == 0 {
		return nil
	}
	ids := make([]string, len(ws))
	byID := make(map[string]*webhooks.Webhook, len(ws))
	for i, w := range ws {
		ids[i] = w.ID
		byID[w.ID] = w
	}
	in, args := db.dialect.in("webhook_id", 2, ids)
	rows, err := q.QueryContext(ctx, `SELECT webhook_id, CAST(SUM(total) AS BIGINT), CAST(SUM(success) AS BIGINT) FROM webhook_stats
		WHERE hour >= $1 AND `+in+` GROUP BY webhook_id`, append([]any{healthWindowStart(db.now())}, args...)...)
	if err != nil {
		return fmt.Errorf("query health: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var total, success int64
		if err := rows.Scan(&id, &total, &success); err != nil {
			return fmt.Errorf("scan health: %w", err)
		}
		if w := byID[id]; w != nil {
			w.Health.Attempts24h, w.Health.Successes24h = total, success
		}
	}
	return rows.Err()
}

// querier is what *sql.DB and *sql.Tx share.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// ListWebhooks returns the shop's webhooks, oldest first.
func (db *DB) ListWebhooks(ctx context.Context, shopID string) ([]*webhooks.Webhook, error) {
	rows, err := db.rdb.QueryContext(ctx, `SELECT `+webhookColumns+` FROM webhooks WHERE shop_id = $1 ORDER BY id`, shopID)
	if err != nil {
		return nil, fmt.Errorf("list webhooks: %w", err)
	}
	defer rows.Close()
	out := []*webhooks.Webhook{}
	for rows.Next() {
		w, err := scanWebhook(rows)
		if err != nil {
			return nil, fmt.Errorf("list webhooks: %w", err)
		}
		out = append(out, w)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list webhooks: %w", err)
	}
	if err := db.fillHealth(ctx, db.rdb, out); err != nil {
		return nil, err
	}
	return out, nil
}

// FindWebhook returns one webhook of the shop, or ENOTFOUND.
func (db *DB) FindWebhook(ctx context.Context, shopID, id string) (*webhooks.Webhook, error) {
	w, err := findWebhook(ctx, db.rdb, shopID, id)
	if err != nil {
		return nil, err
	}
	if err := db.fillHealth(ctx, db.rdb, []*webhooks.Webhook{w}); err != nil {
		return nil, err
	}
	return w, nil
}

func findWebhook(ctx context.Context, q querier, shopID, id string) (*webhooks.Webhook, error) {
	return findWebhookLocked(ctx, q, shopID, id, "")
}

// lockWebhook reads the webhook in tx and locks its row until tx ends
// (see dialect.rowLock), for a change computed from what it read.
func lockWebhook(ctx context.Context, tx *Tx, shopID, id string) (*webhooks.Webhook, error) {
	return findWebhookLocked(ctx, tx, shopID, id, tx.db.dialect.rowLock)
}

func findWebhookLocked(ctx context.Context, q querier, shopID, id, lock string) (*webhooks.Webhook, error) {
	w, err := scanWebhook(q.QueryRowContext(ctx, `SELECT `+webhookColumns+` FROM webhooks WHERE id = $1 AND shop_id = $2`+lock, id, shopID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, webhooks.Errorf(webhooks.ENOTFOUND, "Webhook %s not found", id)
	} else if err != nil {
		return nil, fmt.Errorf("find webhook: %w", err)
	}
	return w, nil
}

// CreateWebhook stores w, or ECONFLICT when the shop has maxPerShop already.
func (db *DB) CreateWebhook(ctx context.Context, w *webhooks.Webhook, maxPerShop int) error {
	events, err := json.Marshal(w.Events)
	if err != nil {
		return fmt.Errorf("encode events: %w", err)
	}
	return db.write(ctx, func(tx *Tx) error {
		if tx.db.dialect.name == "postgres" {
			// Creates of one shop take turns on its row: at READ COMMITTED
			// two of them (two writers, two replicas) both counted under
			// the limit and both inserted (code review: a shop limited to 1
			// got 4). NO KEY leaves the foreign-key checks of publishes
			// and other creates' inserts alone.
			if _, err := tx.ExecContext(ctx, `SELECT 1 FROM shops WHERE id = $1 FOR NO KEY UPDATE`, w.ShopID); err != nil {
				return fmt.Errorf("lock shop: %w", err)
			}
		}
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM webhooks WHERE shop_id = $1`, w.ShopID).Scan(&n); err != nil {
			return fmt.Errorf("count webhooks: %w", err)
		}
		if maxPerShop > 0 && n >= maxPerShop {
			return &webhooks.Error{Code: webhooks.ECONFLICT,
				Message: fmt.Sprintf("Shop %s already has %d webhooks, the most allowed", w.ShopID, maxPerShop),
				Details: map[string]any{"limit": maxPerShop}}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO webhooks (id, shop_id, url, events, is_active, description, secret, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			w.ID, w.ShopID, w.URL, string(events), w.IsActive, w.Description, w.Secret, ms(w.CreatedAt), ms(w.UpdatedAt))
		if err != nil {
			if isFKViolation(err) {
				return webhooks.Errorf(webhooks.ENOTFOUND, "Shop %s not found", w.ShopID)
			}
			return fmt.Errorf("insert webhook: %w", err)
		}
		return nil
	})
}

func isFKViolation(err error) bool {
	s := err.Error()
	return strings.Contains(s, "FOREIGN KEY constraint failed") || strings.Contains(s, "SQLSTATE 23503")
}

// UpdateWebhook applies upd and returns the result, or ENOTFOUND.
func (db *DB) UpdateWebhook(ctx context.Context, shopID, id string, upd webhooks.WebhookUpdate) (*webhooks.Webhook, error) {
	var out *webhooks.Webhook
	stopped, moved := false, false
	var shops []string // a stop locks the shop (see lockShop)
	if upd.IsActive != nil && !*upd.IsActive {
		shops = []string{shopID}
	}
	err := db.writeHooks(ctx, []string{id}, shops, func(tx *Tx) error {
		stopped, moved = false, false
		// The webhook's row first, then the shop (see writeOp.hooks).
		w, err := lockWebhook(ctx, tx, shopID, id)
		if err != nil {
			return err
		}
		if upd.IsActive != nil && !*upd.IsActive {
			if err := lockShop(ctx, tx, shopID, true); err != nil { // see lockShop
				return err
			}
		}
		now := db.now()
		if upd.URL != nil && *upd.URL != w.URL {
			w.URL = *upd.URL
			if err := announce(ctx, tx, changedChannel, w.ID); err != nil {
				return err
			}
			moved = true
		}
		if upd.Events != nil {
			w.Events = upd.Events
		}
		if upd.Description != nil {
			w.Description = *upd.Description
		}
		if upd.IsActive != nil {
			switch {
			case *upd.IsActive && (!w.IsActive || upd.ClearFailures):
				// Enabled by a user: forget why the system stopped it, and
				// the failure streak (see WebhookUpdate).
				w.DisabledReason = ""
				w.Health.ConsecutiveFailures = 0
				w.Health.FailingSince = nil
			case *upd.IsActive:
			case w.IsActive:
				if err := cancelQueued(ctx, tx, w.ID, now); err != nil {
					return err
				}
				stopped = true
			}
			w.IsActive = *upd.IsActive
		}
		w.UpdatedAt = now
		events, err := json.Marshal(w.Events)
		if err != nil {
			return fmt.Errorf("encode events: %w", err)
		}
		_, err = tx.ExecContext(ctx, `UPDATE webhooks SET url = $1, events = $2, description = $3, is_active = $4,
			disabled_reason = $5, consecutive_failures = $6, failing_since = $7, updated_at = $8 WHERE id = $9`,
			w.URL, string(events), w.Description, w.IsActive, w.DisabledReason, w.Health.ConsecutiveFailures,
			nullMS(w.Health.FailingSince), ms(now), w.ID)
		if err != nil {
			return fmt.Errorf("update webhook: %w", err)
		}
		out = w
		return nil
	})
	if err != nil {
		return nil, err
	}
	if stopped {
		db.notifyStopped(id)
	}
	if moved {
		db.notifyChanged(id)
	}
	if err := db.fillHealth(ctx, db.rdb, []*webhooks.Webhook{out}); err != nil {
		return nil, err
	}
	return out, nil
}

// cancelQueued turns the webhook's queued deliveries into failed attempts
// that say why, so nothing disappears without a trace. They are not counted
// in stats or health: no attempt was made. The failed attempts whose
// retries they were no longer say when the next one is due: none will come.
// Every way a webhook is stopped comes here (a user, a 410, the 5-day
// rule), so here the other replicas are told to drop what they claimed.
func cancelQueued(ctx context.Context, tx *Tx, webhookID string, now time.Time) error {
	if err := cancelWhere(ctx, tx, "webhook_id = $1", []any{webhookID}, now); err != nil {
		return err
	}
	return announce(ctx, tx, stoppedChannel, webhookID)
}

// cancelWhere cancels the queued deliveries matching where, whose
// arguments are numbered from $1 (see cancelQueued).
func cancelWhere(ctx context.Context, tx *Tx, where string, args []any, now time.Time) error {
	_, err := tx.ExecContext(ctx, `UPDATE deliveries SET next_retry_at = NULL WHERE id IN (
		SELECT retry_of FROM deliveries WHERE `+where+` AND status = 'pending' AND retry_of <> '')`, args...)
	if err != nil {
		return fmt.Errorf("cancel queued deliveries: %w", err)
	}
	reason, at := strconv.Itoa(len(args)+1), strconv.Itoa(len(args)+2)
	_, err = tx.ExecContext(ctx, `UPDATE deliveries SET status = 'failed', failure_reason = $`+reason+`, created_at = $`+at+`,
		scheduled_at = NULL, leased_until = NULL, next_retry_at = NULL
		WHERE `+where+` AND status = 'pending'`, append(args[:len(args):len(args)], webhooks.FailureWebhookDisabled, ms(now))...)
	if err != nil {
		return fmt.Errorf("cancel queued deliveries: %w", err)
	}
	return nil
}

// DeleteWebhook removes the webhook, its queued deliveries and its history.
func (db *DB) DeleteWebhook(ctx context.Context, shopID, id string) error {
	err := db.writeHooks(ctx, []string{id}, []string{shopID}, func(tx *Tx) error {
		// The webhook's row first, then the shop (see writeOp.hooks).
		if _, err := lockWebhook(ctx, tx, shopID, id); err != nil {
			return err
		}
		if err := lockShop(ctx, tx, shopID, true); err != nil { // see lockShop
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM webhooks WHERE id = $1 AND shop_id = $2`, id, shopID)
		if err != nil {
			return fmt.Errorf("delete webhook: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return webhooks.Errorf(webhooks.ENOTFOUND, "Webhook %s not found", id)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM deliveries WHERE webhook_id = $1`, id); err != nil {
			return fmt.Errorf("delete deliveries: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM webhook_stats WHERE webhook_id = $1`, id); err != nil {
			return fmt.Errorf("delete stats: %w", err)
		}
		return announce(ctx, tx, stoppedChannel, id)
	})
	if err == nil {
		db.notifyStopped(id)
	}
	return err
}

// RotateSecret makes secret the current one; the old one signs for overlap.
func (db *DB) RotateSecret(ctx context.Context, shopID, id, secret string, overlap time.Duration) (*webhooks.Webhook, error) {
	var out *webhooks.Webhook
	err := db.writeHooks(ctx, []string{id}, nil, func(tx *Tx) error {
		w, err := lockWebhook(ctx, tx, shopID, id)
		if err != nil {
			return err
		}
		now := db.now()
		w.PreviousSecret, w.Secret = w.Secret, secret
		w.PreviousSecretExpiresAt = now.Add(overlap)
		w.UpdatedAt = now
		_, err = tx.ExecContext(ctx, `UPDATE webhooks SET secret = $1, prev_secret = $2, prev_secret_expires_at = $3, updated_at = $4 WHERE id = $5`,
			w.Secret, w.PreviousSecret, ms(w.PreviousSecretExpiresAt), ms(now), w.ID)
		if err != nil {
			return fmt.Errorf("rotate secret: %w", err)
		}
		out = w
		return announce(ctx, tx, changedChannel, w.ID)
	})
	if err != nil {
		return nil, err
	}
	db.notifyChanged(id)
	if err := db.fillHealth(ctx, db.rdb, []*webhooks.Webhook{out}); err != nil {
		return nil, err
	}
	return out, nil
}

// WebhookStats counts the attempts made to the webhook in [from, to), from
// the hourly counters.
func (db *DB) WebhookStats(ctx context.Context, shopID, id string, from, to time.Time) (*webhooks.WebhookStats, error) {
	if _, err := findWebhook(ctx, db.rdb, shopID, id); err != nil {
		return nil, err
	}
	rows, err := db.rdb.QueryContext(ctx, `SELECT hour, event, total, success, failed, duration_ms_sum FROM webhook_stats
		WHERE webhook_id = $1 AND hour >= $2 AND hour < $3 ORDER BY hour`, id, ms(from), ms(to))
	if err != nil {
		return nil, fmt.Errorf("query stats: %w", err)
	}
	defer rows.Close()
	st := &webhooks.WebhookStats{EventCounts: map[string]int64{}, HourlyStats: []webhooks.HourlyStat{}}
	var durSum int64
	for rows.Next() {
		var hour, total, success, failed, dur int64
		var event string
		if err := rows.Scan(&hour, &event, &total, &success, &failed, &dur); err != nil {
			return nil, fmt.Errorf("scan stats: %w", err)
		}
		st.TotalDeliveries += total
		st.SuccessCount += success
		st.FailureCount += failed
		durSum += dur
		st.EventCounts[event] += total
		h := webhooks.FormatTime(fromMS(hour))
		if n := len(st.HourlyStats); n > 0 && st.HourlyStats[n-1].Hour == h {
			st.HourlyStats[n-1].Total += total
			st.HourlyStats[n-1].Success += success
			st.HourlyStats[n-1].Failed += failed
		} else {
			st.HourlyStats = append(st.HourlyStats, webhooks.HourlyStat{Hour: h, Total: total, Success: success, Failed: failed})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("scan stats: %w", err)
	}
	if st.TotalDeliveries > 0 {
		st.AverageDurationMS = float64(durSum*100/st.TotalDeliveries) / 100
	}
	return st, nil
}

// ClearHistory deletes finished deliveries of the webhook created before
// before (zero: all), of status only when given, and takes them out of the
// stats. Queued deliveries are not touched.
func (db *DB) ClearHistory(ctx context.Context, shopID, id string, before time.Time, status webhooks.DeliveryStatus) (int64, error) {
	var n int64
	err := db.write(ctx, func(tx *Tx) error {
		if _, err := findWebhook(ctx, tx, shopID, id); err != nil {
			return err
		}
		where := []string{"webhook_id = $1", "status <> 'pending'"}
		args := []any{id}
		if !before.IsZero() {
			args = append(args, ms(before))
			where = append(where, fmt.Sprintf("created_at < $%d", len(args)))
		}
		if status != "" {
			args = append(args, string(status))
			where = append(where, fmt.Sprintf("status = $%d", len(args)))
		}
		var err error
		n, err = deleteDeliveries(ctx, tx, strings.Join(where, " AND "), args)
		return err
	})
	return n, err
}

// deleteDeliveries deletes the finished deliveries matching where and
// subtracts the attempts among them from the hourly stats. Attempts are
// the rows with a duration or a response; rows cancelled without an
// attempt were never counted.
func deleteDeliveries(ctx context.Context, tx *Tx, where string, args []any) (int64, error) {
	var (
		buckets []statsBucket
		n       int64
		err     error
	)
	if tx.db.dialect.name == "postgres" {
		buckets, n, err = deleteCountingPostgres(ctx, tx, where, args)
	} else {
		buckets, n, err = deleteCountingSQLite(ctx, tx, where, args)
	}
	if err != nil {
		return 0, err
	}
	for _, b := range buckets {
		if b.total == 0 {
			continue
		}
		_, err := tx.ExecContext(ctx, `UPDATE webhook_stats SET total = total - $1, success = success - $2,
			failed = failed - $3, duration_ms_sum = duration_ms_sum - $4 WHERE webhook_id = $5 AND hour = $6 AND event = $7`,
			b.total, b.ok, b.total-b.ok, b.durMS, b.webhookID, b.hour, b.event)
		if err != nil {
			return 0, fmt.Errorf("update stats: %w", err)
		}
	}
	if ids := uniqueWebhooks(buckets, func(b statsBucket) string { return b.webhookID }); len(ids) > 0 {
		in, args := tx.db.dialect.in("webhook_id", 1, ids)
		_, err := tx.ExecContext(ctx, `DELETE FROM webhook_stats WHERE total <= 0 AND `+in, args...)
		if err != nil {
			return 0, fmt.Errorf("prune stats: %w", err)
		}
	}
	return n, nil
}

// statsBucket is what deleted rows counted in one hour of one webhook's
// stats for one event.
type statsBucket struct {
	webhookID, event       string
	hour, total, ok, durMS int64
	rows                   int64 // deleted, attempts or not (PostgreSQL only)
}

func scanBuckets(rows *sql.Rows, err error) ([]statsBucket, error) {
	if err != nil {
		return nil, fmt.Errorf("delete deliveries: %w", err)
	}
	defer rows.Close()
	var out []statsBucket
	for rows.Next() {
		var b statsBucket
		if err := rows.Scan(&b.webhookID, &b.hour, &b.event, &b.total, &b.ok, &b.durMS, &b.rows); err != nil {
			return nil, fmt.Errorf("delete deliveries: %w", err)
		}
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("delete deliveries: %w", err)
	}
	return out, nil
}

// deleteCountingSQLite counts, then deletes: the one writer runs nothing
// in between, and SQLite would hold a DELETE's RETURNING rows in memory
// (a clear of millions of rows).
func deleteCountingSQLite(ctx context.Context, tx *Tx, where string, args []any) ([]statsBucket, int64, error) {
	buckets, err := scanBuckets(tx.QueryContext(ctx, `SELECT webhook_id, created_at - created_at % 3600000, event,
		COUNT(*), CAST(SUM(CASE WHEN status = 'success' THEN 1 ELSE 0 END) AS BIGINT), CAST(SUM(duration_ms) AS BIGINT), 0
		FROM deliveries WHERE `+where+` AND failure_reason <> '`+webhooks.FailureWebhookDisabled+`'
		GROUP BY webhook_id, created_at - created_at % 3600000, event`, args...))
	if err != nil {
		return nil, 0, err
	}
	res, err := tx.ExecContext(ctx, `DELETE FROM deliveries WHERE `+where, args...)
	if err != nil {
		return nil, 0, fmt.Errorf("delete deliveries: %w", err)
	}
	n, err := res.RowsAffected()
	return buckets, n, err
}

// deleteCountingPostgres counts the rows its DELETE returns: at READ
// COMMITTED a count and a delete in two statements each see what has
// committed by then, so a clear beside another one, or beside attempts
// being recorded, subtracted what it did not delete (negative counts, a
// success rate of 200).
func deleteCountingPostgres(ctx context.Context, tx *Tx, where string, args []any) ([]statsBucket, int64, error) {
	buckets, err := scanBuckets(tx.QueryContext(ctx, `WITH d AS (DELETE FROM deliveries WHERE `+where+`
			RETURNING webhook_id, created_at, event, status, duration_ms, failure_reason <> '`+webhooks.FailureWebhookDisabled+`' AS tried)
		SELECT webhook_id, created_at - created_at % 3600000, event,
			COUNT(*) FILTER (WHERE tried), COUNT(*) FILTER (WHERE tried AND status = 'success'),
			COALESCE(SUM(duration_ms) FILTER (WHERE tried), 0), COUNT(*)
		FROM d GROUP BY 1, 2, 3`, args...))
	if err != nil {
		return nil, 0, err
	}
	var n int64
	for _, b := range buckets {
		n += b.rows
	}
	return buckets, n, nil
}
func uniqueWebhooks[T any](items []T, key func(T) string) []string {
	var out []string
	for _, it := range items {
		if k := key(it); !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}

// placeholders returns "$start, …" for n arguments.
func placeholders(start, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "$%d", start+i)
	}
	return b.String()
}

// multiRowSQL returns head, n rows of row (a format of cols placeholders,
// numbered on from $1 row after row) separated by commas, and tail;
// memoized in m by n, unless m is nil.
func multiRowSQL(m *sync.Map, head, row, tail string, cols, n int) string {
	if m != nil {
		if q, ok := m.Load(n); ok {
			return q.(string)
		}
	}
	var b strings.Builder
	b.WriteString(head)
	nums := make([]any, cols)
	for r := range n {
		if r > 0 {
			b.WriteString(", ")
		}
		for c := range nums {
			nums[c] = r*cols + c + 1
		}
		fmt.Fprintf(&b, row, nums...)
	}
	b.WriteString(tail)
	q := b.String()
	if m != nil {
		m.Store(n, q)
	}
	return q
}

func anySlice[T any](xs []T) []any {
	out := make([]any, len(xs))
	for i, x := range xs {
		out[i] = x
	}
	return out
}
