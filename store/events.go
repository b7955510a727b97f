package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

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
	keyed := slices.ContainsFunc(events, func(e *webhooks.Event) bool { return e.IdempotencyKey != "" })
	for try := 0; ; try++ {
		op := &writeOp{weight: len(events)}
		if !keyed {
			op.pub = &publishReq{shopID: shopID, events: events, out: out, now: now}
		}
		_, err := db.submit(ctx, op, func(tx *Tx, queued *bool) error {
			subs, err := activeWebhooks(ctx, tx, shopID, now)
			if err != nil {
				return err
			}
			for i, e := range events {
				res, q, err := db.publishOne(ctx, tx, op, e, subs, now)
				if err != nil {
					return err
				}
				out[i] = res
				*queued = *queued || q
			}
			return nil
		})
		if err != nil && try == 0 && isIdempotencyRace(err) {
			continue // the other publish has committed: this time its answer is found
		}
		if err != nil {
			return nil, err
		}
		return out, nil
	}
}

// isIdempotencyRace reports whether err is another publish of the same
// idempotency key having committed first. On PostgreSQL two writers, or
// two replicas, run such publishes at once: neither finds the key, and the
// unique index makes the later insert wait for the first, then fail.
func isIdempotencyRace(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "events_idempotency"
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
// insert for the events and one for their deliveries, instead of two
// statements for each event. A publish alone in its batch is merged too: a
// batch of 500 events alone was 1,000 statements (on PostgreSQL, as many
// round trips: 133 ms). It must run first in its transaction, without a
// savepoint (SQLite copies every page a savepoint's statements change into
// its journal, most of a large merged insert's cost): when it fails it
// says so, and the caller starts the transaction again and runs the ops
// one by one, each in its own savepoint.
func (db *DB) mergePublishes(ctx context.Context, tx *Tx, ops []*writeOp) (ok bool) {
	var reqs []*writeOp
	for _, op := range ops {
		op.handled = false
		if op.pub != nil && op.ctx.Err() == nil {
			reqs = append(reqs, op)
		}
	}
	if len(reqs) == 0 {
		return true
	}
	if err := db.publishMerged(ctx, tx, reqs); err != nil {
		for _, op := range reqs {
			db.dropHandoff(op)
			op.pub = nil // if the batch runs again, not merged again
		}
		db.logger.Warn("merged publish failed; publishing one by one", "error", err)
		return false
	}
	for _, op := range reqs {
		op.handled = true
	}
	return true
}

func (db *DB) publishMerged(ctx context.Context, tx *Tx, reqs []*writeOp) error {
	subs := map[string][]subscriber{}
	var events []*webhooks.Event
	var rows queuedRows
	for _, op := range reqs {
		p := op.pub
		ss, ok := subs[p.shopID]
		if !ok {
			var err error
			if ss, err = activeWebhooks(ctx, tx, p.shopID, p.now); err != nil {
				return err
			}
			subs[p.shopID] = ss
		}
		op.queued, op.told, op.untold = false, false, false
		for i, e := range p.events {
			n := len(rows.ds)
			op.queued = db.queueFor(op, &rows, e, ss, p.now) || op.queued
			e.Deliveries = len(rows.ds) - n
			p.out[i] = webhooks.PublishResult{EventID: e.ID, Deliveries: e.Deliveries}
			events = append(events, e)
		}
	}
	if err := insertEvents(ctx, tx, events); err != nil {
		return err
	}
	return insertQueued(ctx, tx, rows)
}

// queuedRows are deliveries to insert as pending, each leased until the
// Unix millisecond in leased (0: not leased).
type queuedRows struct {
	ds     []*webhooks.Delivery
	leased []int64
}

// queueFor adds to rows the queued deliveries of e, one per subscriber.
// Those the local dispatcher has room for (see Handoff) are leased to it
// and kept on op, to be handed over once op commits. It reports whether
// any is left for a claim to find.
func (db *DB) queueFor(op *writeOp, rows *queuedRows, e *webhooks.Event, subs []subscriber, now time.Time) (queued bool) {
	h := op.handoffTo // one op hands over to one dispatcher
	if h == nil {
		h = db.handoffTo()
	}
	for i := range subs {
		s := &subs[i]
		if !slices.Contains(s.events, e.Type) {
			continue
		}
		due := now
		d := &webhooks.Delivery{
			ID: webhooks.NewID(webhooks.PrefixDelivery, now), ShopID: e.ShopID, WebhookID: s.id, EventID: e.ID,
			Event: e.Type, Status: webhooks.StatusPending, Trigger: webhooks.TriggerEvent, Attempt: 1,
			CreatedAt: now, ScheduledAt: &due,
		}
		var leased int64
		if h != nil {
			if until, ok := h.Reserve(e.ShopID, s.id); ok {
				leased = ms(until)
				op.handoffTo = h
				op.handoff = append(op.handoff, &webhooks.Job{
					DeliveryID: d.ID, ShopID: d.ShopID, WebhookID: d.WebhookID, EventID: d.EventID, Event: d.Event,
					Attempt: d.Attempt, Trigger: d.Trigger, Payload: e.Envelope, URL: s.url, Secrets: s.secrets,
					SecretsUntil: s.until, CreatedAt: now, LeasedUntil: fromMS(leased),
				})
			}
		}
		if leased == 0 {
			queued = true
			if h != nil {
				op.told = true // Reserve said no: the dispatcher knows
			} else {
				op.untold = true
			}
		}
		rows.ds = append(rows.ds, d)
		rows.leased = append(rows.leased, leased)
	}
	return queued
}

// insertEvents inserts events without idempotency keys, many per statement.
func insertEvents(ctx context.Context, tx *Tx, es []*webhooks.Event) error {
	if len(es) == 0 {
		return nil
	}
	if tx.db.dialect.name == "postgres" {
		var c struct {
			ids, shops, types     []string
			envelopes             [][]byte
			deliveries, createdAt []int64
		}
		for _, e := range es {
			c.ids, c.shops, c.types = append(c.ids, e.ID), append(c.shops, e.ShopID), append(c.types, string(e.Type))
			c.envelopes, c.deliveries = append(c.envelopes, e.Envelope), append(c.deliveries, int64(e.Deliveries))
			c.createdAt = append(c.createdAt, ms(e.CreatedAt))
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO events (id, shop_id, type, envelope, deliveries, created_at)
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[], $5::bigint[], $6::bigint[])`,
			c.ids, c.shops, c.types, c.envelopes, c.deliveries, c.createdAt); err != nil {
			return fmt.Errorf("insert events: %w", err)
		}
		return nil
	}
	const maxRows = 100
	for len(es) > 0 {
		chunk := es[:min(len(es), maxRows)]
		es = es[len(chunk):]
		args := make([]any, 0, len(chunk)*6)
		for _, e := range chunk {
			args = append(args, e.ID, e.ShopID, e.Type, []byte(e.Envelope), e.Deliveries, ms(e.CreatedAt))
		}
		q := multiRowSQL(&eventsSQLs, `INSERT INTO events (id, shop_id, type, envelope, deliveries, created_at) VALUES `,
			"($%d, $%d, $%d, $%d, $%d, $%d)", "", 6, len(chunk))
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("insert events: %w", err)
		}
	}
	return nil
}

// subscriber is what publishing needs of an active webhook: what it
// subscribes to, and what sending to it takes, for a delivery handed
// straight to the dispatcher.
type subscriber struct {
	id      string
	events  []string
	url     string
	secrets []string  // signing secrets at the publish's time
	until   time.Time // when the previous one stops signing (see webhooks.Job)
}

func activeWebhooks(ctx context.Context, tx *Tx, shopID string, now time.Time) ([]subscriber, error) {
	if err := lockShop(ctx, tx, shopID, false); err != nil {
		return nil, err
	}
	rows, err := tx.QueryContext(ctx, `SELECT id, events, url, secret, prev_secret, prev_secret_expires_at
		FROM webhooks WHERE shop_id = $1 AND is_active = TRUE ORDER BY id`, shopID)
	if err != nil {
		return nil, fmt.Errorf("find subscribers: %w", err)
	}
	defer rows.Close()
	var subs []subscriber
	for rows.Next() {
		var (
			s       subscriber
			w       webhooks.Webhook
			events  string
			prevExp int64
		)
		if err := rows.Scan(&s.id, &events, &s.url, &w.Secret, &w.PreviousSecret, &prevExp); err != nil {
			return nil, fmt.Errorf("scan subscriber: %w", err)
		}
		s.events = decodeEvents(events)
		w.PreviousSecretExpiresAt = fromMS(prevExp)
		s.secrets, s.until = w.SigningSecrets(now), w.PreviousSecretExpiresAt
		subs = append(subs, s)
	}
	return subs, rows.Err()
}

// lockShop takes, on PostgreSQL, the shop's lock until tx ends: shared by
// publishes, before they read the subscribers; exclusive by what stops or
// deletes a webhook. At READ COMMITTED a publish that read a webhook as
// active before a stop committed could queue its deliveries after the
// stop cancelled what was queued, and hand them to its engine to send;
// now one waits for the other, and a stop's cancel sees the rows of every
// publish that went first. SQLite's one writer runs them in turn anyway.
// The key holds the schema: replicas of other schemas in one database
// don't share shops.
func lockShop(ctx context.Context, tx *Tx, shopID string, exclusive bool) error {
	if tx.db.dialect.name != "postgres" {
		return nil
	}
	fn := "pg_advisory_xact_lock_shared"
	if exclusive {
		fn = "pg_advisory_xact_lock"
	}
	if _, err := tx.ExecContext(ctx, `SELECT `+fn+`(7240120, hashtext(current_schema() || '/' || $1))`, shopID); err != nil {
		return fmt.Errorf("lock shop: %w", err)
	}
	return nil
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

func (db *DB) publishOne(ctx context.Context, tx *Tx, op *writeOp, e *webhooks.Event, subs []subscriber, now time.Time) (webhooks.PublishResult, bool, error) {
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
	var rows queuedRows
	queued := db.queueFor(op, &rows, e, subs, now)
	e.Deliveries = len(rows.ds)
	if err := insertEvent(ctx, tx, e, key); err != nil {
		return webhooks.PublishResult{}, false, err
	}
	if err := insertQueued(ctx, tx, rows); err != nil {
		return webhooks.PublishResult{}, false, err
	}
	return webhooks.PublishResult{EventID: e.ID, Deliveries: e.Deliveries}, queued, nil
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
	return insertQueued(ctx, tx, queuedRows{ds: ds})
}

// insertQueued inserts queued deliveries, leased where rows.leased says.
func insertQueued(ctx context.Context, tx *Tx, rows queuedRows) error {
	if len(rows.ds) == 0 {
		return nil // most recorded batches retry nothing
	}
	if tx.db.dialect.name == "postgres" {
		return insertQueuedPostgres(ctx, tx, rows)
	}
	const cols = 11
	const maxRows = 50
	ds := rows.ds
	for off := 0; off < len(ds); off += maxRows {
		chunk := ds[off:min(len(ds), off+maxRows)]
		args := make([]any, 0, len(chunk)*cols)
		for i, d := range chunk {
			var leased sql.NullInt64
			if rows.leased != nil && rows.leased[off+i] != 0 {
				leased = sql.NullInt64{Int64: rows.leased[off+i], Valid: true}
			}
			args = append(args, d.ID, d.ShopID, d.WebhookID, d.EventID, d.Event, string(d.Trigger), d.Attempt, d.RetryOf, ms(d.CreatedAt), ms(*d.ScheduledAt), leased)
		}
		q := multiRowSQL(&queuedSQLs, `INSERT INTO deliveries (id, shop_id, webhook_id, event_id, event, status, trigger, attempt, retry_of, created_at, scheduled_at, leased_until) VALUES `,
			"($%d, $%d, $%d, $%d, $%d, 'pending', $%d, $%d, $%d, $%d, $%d, $%d)", "", cols, len(chunk))
		if _, err := tx.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("queue deliveries: %w", err)
		}
	}
	return nil
}

// insertQueuedPostgres is insertQueued in one statement of one text,
// whatever the row count: each column is an array. With a VALUES list per
// row count (as on SQLite), pgx prepared and cached each count's text on
// each connection (up to 512 a connection), and each server backend kept
// every one prepared, with its plan: in one load-tool run of the single,
// batch and fan-out scenarios the PostgreSQL backends' private memory
// peaked at 742–848 MiB (one backend 202–211 MiB) with the VALUES lists,
// 142–145 MiB (60 MiB) with arrays. The same goes for the other
// statements of a batch (finishSQLPostgres, healthSQLPostgres,
// statsSQLPostgres, insertEvents, dialect.in).
func insertQueuedPostgres(ctx context.Context, tx *Tx, rows queuedRows) error {
	n := len(rows.ds)
	var (
		ids, shops, webhookIDs, eventIDs, events, triggers, retryOf = make([]string, n), make([]string, n),
			make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		attempts, created, scheduled = make([]int64, n), make([]int64, n), make([]int64, n)
		leased                       = make([]*int64, n)
	)
	for i, d := range rows.ds {
		ids[i], shops[i], webhookIDs[i], eventIDs[i], events[i] = d.ID, d.ShopID, d.WebhookID, d.EventID, d.Event
		triggers[i], retryOf[i], attempts[i] = string(d.Trigger), d.RetryOf, int64(d.Attempt)
		created[i], scheduled[i] = ms(d.CreatedAt), ms(*d.ScheduledAt)
		if rows.leased != nil && rows.leased[i] != 0 {
			leased[i] = &rows.leased[i]
		}
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO deliveries (id, shop_id, webhook_id, event_id, event, status, trigger, attempt, retry_of,
			created_at, scheduled_at, leased_until)
		SELECT id, shop_id, webhook_id, event_id, event, 'pending', trigger, attempt, retry_of, created_at, scheduled_at, leased_until
		FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::text[],
			$9::bigint[], $10::bigint[], $11::bigint[])
			AS v (id, shop_id, webhook_id, event_id, event, trigger, attempt, retry_of, created_at, scheduled_at, leased_until)`,
		ids, shops, webhookIDs, eventIDs, events, triggers, attempts, retryOf, created, scheduled, leased)
	if err != nil {
		return fmt.Errorf("queue deliveries: %w", err)
	}
	return nil
}

// The texts of the multi-row inserts, by row count: building one with
// fmt took ~7 % of the time insertQueued spent on a batch of publishes.
var eventsSQLs, queuedSQLs sync.Map
