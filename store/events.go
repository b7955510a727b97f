package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	webhooks "github.com/pancake-pos/pancake-webhooks"
)

// Publish stores the events of one shop and one queued delivery per
// subscribed active webhook, all in one commit shared with concurrent
// writes (group commit). When it returns without error, everything is on
// disk. A repeated idempotency key within 24 hours gets the first answer.
func (db *DB) Publish(ctx context.Context, shopID string, in []webhooks.PublishInput) ([]webhooks.PublishResult, error) {
	now := db.now().UTC()
	events := make([]*webhooks.Event, len(in))
	for i, p := range in {
		e, err := webhooks.NewEvent(shopID, p.Event, p.Data, p.IdempotencyKey, false, now)
		if err != nil {
			return nil, fmt.Errorf("build event: %w", err)
		}
		events[i] = e
	}
	out := make([]webhooks.PublishResult, len(in))
	_, err := db.writeQueued(ctx, func(tx *Tx, queued *bool) error {
		subs, err := activeWebhooks(ctx, tx, shopID)
		if err != nil {
			return err
		}
		for i, e := range events {
			res, q, err := publishOne(ctx, tx, e, subs, now)
			if err != nil {
				return err
			}
			out[i] = res
			*queued = *queued || q
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// subscriber is what publishing needs of an active webhook.
type subscriber struct {
	id     string
	events []string
}

func activeWebhooks(ctx context.Context, tx *Tx, shopID string) ([]subscriber, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id, events FROM webhooks WHERE shop_id = $1 AND is_active = TRUE ORDER BY id`, shopID)
	if err != nil {
		return nil, fmt.Errorf("find subscribers: %w", err)
	}
	defer rows.Close()
	var subs []subscriber
	for rows.Next() {
		var s subscriber
		var events string
		if err := rows.Scan(&s.id, &events); err != nil {
			return nil, fmt.Errorf("scan subscriber: %w", err)
		}
		s.events = decodeEvents(events)
		subs = append(subs, s)
	}
	return subs, rows.Err()
}

// decodeEvents reads the stored JSON list of event names without
// reflection: names are plain ASCII (validated on the way in).
func decodeEvents(s string) []string {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "[")
	s = strings.TrimSuffix(s, "]")
	if s == "" {
		return nil
	}
	parts := strings.Split(s, ",")
	for i, p := range parts {
		parts[i] = strings.Trim(strings.TrimSpace(p), `"`)
	}
	return parts
}

func publishOne(ctx context.Context, tx *Tx, e *webhooks.Event, subs []subscriber, now time.Time) (webhooks.PublishResult, bool, error) {
	var key any
	if e.IdempotencyKey != "" {
		key = e.IdempotencyKey
		var (
			id      string
			n       int
			created int64
		)
		err := tx.QueryRowContext(ctx, `SELECT id, deliveries, created_at FROM events WHERE shop_id = $1 AND idempotency_key = $2`,
			e.ShopID, e.IdempotencyKey).Scan(&id, &n, &created)
		switch {
		case err == nil && fromMS(created).After(now.Add(-webhooks.IdempotencyWindow)):
			return webhooks.PublishResult{EventID: id, Deliveries: n}, false, nil
		case err == nil:
			// The window is over: the key may be used again.
			if _, err := tx.ExecContext(ctx, `UPDATE events SET idempotency_key = NULL WHERE id = $1`, id); err != nil {
				return webhooks.PublishResult{}, false, fmt.Errorf("expire idempotency key: %w", err)
			}
		case !errors.Is(err, sql.ErrNoRows):
			return webhooks.PublishResult{}, false, fmt.Errorf("find idempotent event: %w", err)
		}
	}
	var targets []string
	for _, s := range subs {
		for _, ev := range s.events {
			if ev == e.Type {
				targets = append(targets, s.id)
				break
			}
		}
	}
	e.Deliveries = len(targets)
	if err := insertEvent(ctx, tx, e, key); err != nil {
		return webhooks.PublishResult{}, false, err
	}
	if len(targets) > 0 {
		rows := make([]*webhooks.Delivery, len(targets))
		for i, wh := range targets {
			due := now
			rows[i] = &webhooks.Delivery{
				ID: webhooks.NewID(webhooks.PrefixDelivery, now), ShopID: e.ShopID, WebhookID: wh, EventID: e.ID,
				Event: e.Type, Status: webhooks.StatusPending, Trigger: webhooks.TriggerEvent, Attempt: 1,
				CreatedAt: now, ScheduledAt: &due,
			}
		}
		if err := insertPending(ctx, tx, rows); err != nil {
			return webhooks.PublishResult{}, false, err
		}
	}
	return webhooks.PublishResult{EventID: e.ID, Deliveries: len(targets)}, len(targets) > 0, nil
}

func insertEvent(ctx context.Context, tx *Tx, e *webhooks.Event, key any) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO events (id, shop_id, type, idempotency_key, envelope, deliveries, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, e.ID, e.ShopID, e.Type, key, []byte(e.Envelope), e.Deliveries, ms(e.CreatedAt))
	if err != nil {
		return fmt.Errorf("insert event: %w", err)
	}
	return nil
}

// insertPending inserts queued deliveries, many rows per statement.
func insertPending(ctx context.Context, tx *Tx, ds []*webhooks.Delivery) error {
	const cols = 10
	const maxRows = 50
	for len(ds) > 0 {
		chunk := ds[:min(len(ds), maxRows)]
		ds = ds[len(chunk):]
		var b strings.Builder
		b.WriteString(`INSERT INTO deliveries (id, shop_id, webhook_id, event_id, event, status, trigger, attempt, retry_of, created_at, scheduled_at) VALUES `)
		args := make([]any, 0, len(chunk)*cols)
		for i, d := range chunk {
			if i > 0 {
				b.WriteString(", ")
			}
			n := len(args)
			fmt.Fprintf(&b, "($%d, $%d, $%d, $%d, $%d, 'pending', $%d, $%d, $%d, $%d, $%d)", n+1, n+2, n+3, n+4, n+5, n+6, n+7, n+8, n+9, n+10)
			args = append(args, d.ID, d.ShopID, d.WebhookID, d.EventID, d.Event, string(d.Trigger), d.Attempt, d.RetryOf, ms(d.CreatedAt), ms(*d.ScheduledAt))
		}
		if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
			return fmt.Errorf("queue deliveries: %w", err)
		}
	}
	return nil
}
