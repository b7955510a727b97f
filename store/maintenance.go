package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	webhooks "github.com/pancake-pos/pancake-webhooks"
)

// DeleteFinishedBefore deletes up to limit finished deliveries whose
// attempt was made before t (taking them out of the stats), then up to
// limit events older than t that no delivery refers to any more. It
// returns how many deliveries went; call it again while it returns limit.
// Deliveries are taken in id order: ids sort by the time they were queued,
// never after the attempt, so the primary key bounds the scan and no index
// on times is kept for it. A retry queued before t but made after it stays
// (created_at is the attempt's time): it is as old as its attempt.
func (db *DB) DeleteFinishedBefore(ctx context.Context, t time.Time, limit int) (int64, error) {
	var n int64
	err := db.write(ctx, func(tx *Tx) error {
		var err error
		n, err = deleteDeliveries(ctx, tx, `id IN (SELECT id FROM deliveries WHERE id < $1 AND status <> 'pending' AND created_at < $3 ORDER BY id LIMIT $2)`,
			[]any{webhooks.MinID(webhooks.PrefixDelivery, t), limit, ms(t)})
		if err != nil {
			return fmt.Errorf("delete old deliveries: %w", err)
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM events WHERE id IN (SELECT e.id FROM events e WHERE e.created_at < $1
			AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id) ORDER BY e.created_at LIMIT $2)`, ms(t), limit)
		if err != nil {
			return fmt.Errorf("delete old events: %w", err)
		}
		return nil
	})
	return n, err
}

// DisableFailingWebhooks disables the active webhooks whose deliveries have
// all failed since before t, in a spell that lasted webhooks.AutoDisableAfter
// to its last failure, cancelling their queued deliveries. Recording that
// failure disables them already; this finds those it did not (recorded
// by an earlier build).
func (db *DB) DisableFailingWebhooks(ctx context.Context, t time.Time, reason string) (int64, error) {
	const failing = `is_active = TRUE AND failing_since IS NOT NULL AND failing_since <= $1 AND last_failure_at - failing_since >= $2`
	args := []any{ms(t), webhooks.AutoDisableAfter.Milliseconds()}
	// Found outside the writer, so that the write can name the webhooks
	// whose rows it locks (see writeOp.hooks); usually there are none.
	ids, err := failingWebhooks(ctx, db.rdb, `SELECT id, shop_id FROM webhooks WHERE `+failing+` ORDER BY id`, args)
	if err != nil || len(ids) == 0 {
		return 0, err
	}
	hooks := make([]string, len(ids))
	for i, d := range ids {
		hooks[i] = d.id
	}
	var stopped []disabled
	err = db.writeHooks(ctx, hooks, nil, func(tx *Tx) error {
		stopped = nil
		in, inArgs := tx.db.dialect.in("id", 3, hooks)
		found, err := failingWebhooks(ctx, tx, `SELECT id, shop_id FROM webhooks WHERE `+failing+` AND `+in+` ORDER BY id`+tx.db.dialect.rowLock,
			append(args, inArgs...))
		if err != nil {
			return err
		}
		now := db.now()
		for _, d := range found {
			d.reason = reason
			done, err := disableWebhook(ctx, tx, d.id, reason, now)
			if err != nil {
				return err
			}
			if done {
				stopped = append(stopped, d)
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	db.disabledWebhooks(stopped)
	return int64(len(stopped)), nil
}

// failingWebhooks runs query, which selects webhooks' id and shop_id.
func failingWebhooks(ctx context.Context, q querier, query string, args []any) ([]disabled, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("find failing webhooks: %w", err)
	}
	defer rows.Close()
	var out []disabled
	for rows.Next() {
		var d disabled
		if err := rows.Scan(&d.id, &d.shopID); err != nil {
			return nil, fmt.Errorf("find failing webhooks: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find failing webhooks: %w", err)
	}
	return out, nil
}

// QueueStats reads the gauges exported as metrics.
func (db *DB) QueueStats(ctx context.Context) (*webhooks.QueueStats, error) {
	now := ms(db.now())
	st := &webhooks.QueueStats{WebhooksHealth: map[string]int64{}}
	var oldest sql.NullInt64
	// A claimed delivery (leased) is being sent or waits for a worker:
	// counted as due, a slow receiver's attempts alone made the oldest
	// due age climb to the attempt timeout (observability audit).
	err := db.rdb.QueryRowContext(ctx, `SELECT
		CAST(COALESCE(SUM(CASE WHEN leased_until > $1 THEN 0 WHEN scheduled_at <= $1 THEN 1 ELSE 0 END), 0) AS BIGINT),
		CAST(COALESCE(SUM(CASE WHEN leased_until > $1 THEN 1 ELSE 0 END), 0) AS BIGINT),
		CAST(COALESCE(SUM(CASE WHEN leased_until > $1 THEN 0 WHEN scheduled_at > $1 THEN 1 ELSE 0 END), 0) AS BIGINT),
		MIN(CASE WHEN leased_until > $1 THEN NULL ELSE scheduled_at END)
		FROM deliveries WHERE status = 'pending'`, now).Scan(&st.Due, &st.Claimed, &st.Scheduled, &oldest)
	if err != nil {
		return nil, fmt.Errorf("queue stats: %w", err)
	}
	if oldest.Valid && oldest.Int64 < now {
		st.OldestDueAge = time.Duration(now-oldest.Int64) * time.Millisecond
	}
	rows, err := db.rdb.QueryContext(ctx, `SELECT w.disabled_reason, w.consecutive_failures, COALESCE(s.total, 0), COALESCE(s.success, 0)
		FROM webhooks w LEFT JOIN (SELECT webhook_id, CAST(SUM(total) AS BIGINT) AS total, CAST(SUM(success) AS BIGINT) AS success FROM webhook_stats
		WHERE hour >= $1 GROUP BY webhook_id) s ON s.webhook_id = w.id`, healthWindowStart(db.now()))
	if err != nil {
		return nil, fmt.Errorf("webhook health stats: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var w webhooks.Webhook
		if err := rows.Scan(&w.DisabledReason, &w.Health.ConsecutiveFailures, &w.Health.Attempts24h, &w.Health.Successes24h); err != nil {
			return nil, fmt.Errorf("webhook health stats: %w", err)
		}
		st.WebhooksHealth[w.HealthStatus().Status]++
	}
	return st, rows.Err()
}
