package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
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
	op := &writeOp{weight: len(events)}
	if !slices.ContainsFunc(events, func(e *webhooks.Event) bool { return e.IdempotencyKey != "" }) {
		op.pub = &publishReq{shopID: shopID, events: events, out: out, now: now}
	}
	_, err := db.submit(ctx, op, func(tx *Tx, queued *bool) error {
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

// publishReq is a publish the writer may merge with others.
type publishReq struct {
	shopID string
	events []*webhooks.Event
	out    []webhooks.PublishResult
	now    time.Time
}

// mergePublishes runs the mergeable publishes of a batch (those without
// idempotency keys) together: one subscriber query per shop, one multi-row
// insert for the events and one for their deliveries, instead of a
// savepoint and several statements for each. If that fails, the ops are
// left to run one by one, each in its own savepoint.
func (db *DB) mergePublishes(ctx context.Context, tx *Tx, ops []*writeOp) error {
	var reqs []*writeOp
	for _, op := range ops {
		op.handled = false
		if op.pub != nil && op.ctx.Err() == nil {
			reqs = append(reqs, op)
		}
	}
	if len(reqs) < 2 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, "SAVEPOINT merged"); err != nil {
		return fmt.Errorf("savepoint: %w", err)
	}
	err := db.publishMerged(ctx, tx, reqs)
	if err != nil {
		db.logger.Warn("merged publish failed; publishing one by one", "error", err)
		if _, err := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT merged"); err != nil {
			return fmt.Errorf("rollback to savepoint: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, "RELEASE SAVEPOINT merged"); err != nil {
		return fmt.Errorf("release savepoint: %w", err)
	}
	if err == nil {
		for _, op := range reqs {
			op.handled = true
		}
	}
	return nil
}

func (db *DB) publishMerged(ctx context.Context, tx *Tx, reqs []*writeOp) error {
	subs := map[string][]subscriber{}
	var events []*webhooks.Event
	var deliveries []*webhooks.Delivery
	for _, op := range reqs {
		p := op.pub
		ss, ok := subs[p.shopID]
		if !ok {
			var err error
			if ss, err = activeWebhooks(ctx, tx, p.shopID); err != nil {
				return err
			}
			subs[p.shopID] = ss
		}
		op.queued = false
		for i, e := range p.events {
			ds := pendingFor(e, ss, p.now)
			e.Deliveries = len(ds)
			p.out[i] = webhooks.PublishResult{EventID: e.ID, Deliveries: len(ds)}
			op.queued = op.queued || len(ds) > 0
			events = append(events, e)
			deliveries = append(deliveries, ds...)
		}
	}
	if err := insertEvents(ctx, tx, events); err != nil {
		return err
	}
	return insertPending(ctx, tx, deliveries)
}

// pendingFor returns the queued deliveries of e: one per subscriber.
func pendingFor(e *webhooks.Event, subs []subscriber, now time.Time) []*webhooks.Delivery {
	var out []*webhooks.Delivery
	for _, s := range subs {
		if !slices.Contains(s.events, e.Type) {
			continue
		}
		due := now
		out = append(out, &webhooks.Delivery{
			ID: webhooks.NewID(webhooks.PrefixDelivery, now), ShopID: e.ShopID, WebhookID: s.id, EventID: e.ID,
			Event: e.Type, Status: webhooks.StatusPending, Trigger: webhooks.TriggerEvent, Attempt: 1,
			CreatedAt: now, ScheduledAt: &due,
		})
	}
	return out
}

// insertEvents inserts events without idempotency keys, many per statement.
func insertEvents(ctx context.Context, tx *Tx, es []*webhooks.Event) error {
	const maxRows = 100
	for len(es) > 0 {
		chunk := es[:min(len(es), maxRows)]
		es = es[len(chunk):]
		var b strings.Builder
		b.WriteString(`INSERT INTO events (id, shop_id, type, envelope, deliveries, created_at) VALUES `)
		args := make([]any, 0, len(chunk)*6)
		for i, e := range chunk {
			if i > 0 {
				b.WriteString(", ")
			}
			n := len(args)
			fmt.Fprintf(&b, "($%d, $%d, $%d, $%d, $%d, $%d)", n+1, n+2, n+3, n+4, n+5, n+6)
			args = append(args, e.ID, e.ShopID, e.Type, []byte(e.Envelope), e.Deliveries, ms(e.CreatedAt))
		}
		if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
			return fmt.Errorf("insert events: %w", err)
		}
	}
	return nil
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
	rows := pendingFor(e, subs, now)
	e.Deliveries = len(rows)
	if err := insertEvent(ctx, tx, e, key); err != nil {
		return webhooks.PublishResult{}, false, err
	}
	if err := insertPending(ctx, tx, rows); err != nil {
		return webhooks.PublishResult{}, false, err
	}
	return webhooks.PublishResult{EventID: e.ID, Deliveries: len(rows)}, len(rows) > 0, nil
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
