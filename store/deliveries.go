package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	webhooks "github.com/pancake-pos/pancake-webhooks"
)

const deliveryColumns = `d.id, d.shop_id, d.webhook_id, d.event_id, d.event, d.status, d.trigger, d.attempt, d.retry_of,
	d.created_at, d.scheduled_at, d.response_status, d.response_headers, d.response_body, d.response_truncated,
	d.request_headers, d.failure_reason, d.duration_ms, d.next_retry_at, e.envelope`

func scanDelivery(row rowScanner) (*webhooks.Delivery, error) {
	var (
		d                    webhooks.Delivery
		status, trigger      string
		created              int64
		scheduled, nextRetry sql.NullInt64
		respStatus           int
		respHeaders, reqHdrs string
		body                 string
		truncated            bool
		envelope             []byte
	)
	err := row.Scan(&d.ID, &d.ShopID, &d.WebhookID, &d.EventID, &d.Event, &status, &trigger, &d.Attempt, &d.RetryOf,
		&created, &scheduled, &respStatus, &respHeaders, &body, &truncated, &reqHdrs, &d.FailureReason, &d.DurationMS,
		&nextRetry, &envelope)
	if err != nil {
		return nil, err
	}
	d.Status, d.Trigger = webhooks.DeliveryStatus(status), webhooks.Trigger(trigger)
	d.CreatedAt = fromMS(created)
	d.ScheduledAt, d.NextRetryAt = ptrMS(scheduled), ptrMS(nextRetry)
	d.Payload = json.RawMessage(envelope)
	if d.Status != webhooks.StatusPending {
		d.Response = &webhooks.Response{StatusCode: respStatus, Headers: map[string]string{}, Body: body, BodyTruncated: truncated}
		if respHeaders != "" {
			if err := json.Unmarshal([]byte(respHeaders), &d.Response.Headers); err != nil {
				return nil, fmt.Errorf("decode response headers of %s: %w", d.ID, err)
			}
		}
	}
	if reqHdrs != "" {
		if err := json.Unmarshal([]byte(reqHdrs), &d.RequestHeaders); err != nil {
			return nil, fmt.Errorf("decode request headers of %s: %w", d.ID, err)
		}
	}
	return &d, nil
}

// FindDelivery returns one delivery of the shop, or ENOTFOUND.
func (db *DB) FindDelivery(ctx context.Context, shopID, id string) (*webhooks.Delivery, error) {
	return findDelivery(ctx, db.rdb, shopID, id)
}

func findDelivery(ctx context.Context, q querier, shopID, id string) (*webhooks.Delivery, error) {
	d, err := scanDelivery(q.QueryRowContext(ctx, `SELECT `+deliveryColumns+` FROM deliveries d JOIN events e ON e.id = d.event_id
		WHERE d.id = $1 AND d.shop_id = $2`, id, shopID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, webhooks.Errorf(webhooks.ENOTFOUND, "Delivery %s not found", id)
	} else if err != nil {
		return nil, fmt.Errorf("find delivery: %w", err)
	}
	return d, nil
}

// FindDeliveries returns a page of the shop's deliveries and the total.
// Finished attempts come newest first; with Status pending, queued rows
// come next due first.
func (db *DB) FindDeliveries(ctx context.Context, f webhooks.DeliveryFilter) ([]*webhooks.Delivery, int, error) {
	where := []string{"d.shop_id = $1"}
	args := []any{f.ShopID}
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if f.WebhookID != "" {
		add("d.webhook_id = $%d", f.WebhookID)
	}
	order := "d.created_at DESC, d.id DESC"
	switch f.Status {
	case "":
		where = append(where, "d.status <> 'pending'")
	case webhooks.StatusPending:
		add("d.status = $%d", string(f.Status))
		order = "d.scheduled_at, d.id"
	default:
		add("d.status = $%d", string(f.Status))
	}
	if f.Event != "" {
		add("d.event = $%d", f.Event)
	}
	if !f.From.IsZero() {
		add("d.created_at >= $%d", ms(f.From))
	}
	if !f.To.IsZero() {
		add("d.created_at < $%d", ms(f.To))
	}
	cond := strings.Join(where, " AND ")
	var total int
	if err := db.rdb.QueryRowContext(ctx, `SELECT COUNT(*) FROM deliveries d WHERE `+cond, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count deliveries: %w", err)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 20
	}
	out := []*webhooks.Delivery{}
	if total == 0 || f.Offset >= total {
		return out, total, nil
	}
	args = append(args, limit, f.Offset)
	rows, err := db.rdb.QueryContext(ctx, `SELECT `+deliveryColumns+` FROM deliveries d JOIN events e ON e.id = d.event_id
		WHERE `+cond+` ORDER BY `+order+fmt.Sprintf(` LIMIT $%d OFFSET $%d`, len(args)-1, len(args)), args...)
	if err != nil {
		return nil, 0, fmt.Errorf("list deliveries: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, 0, fmt.Errorf("list deliveries: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("list deliveries: %w", err)
	}
	return out, total, nil
}
