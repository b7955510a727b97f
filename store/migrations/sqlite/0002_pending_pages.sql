-- Pending lists page in (scheduled_at, id) order, filtered by webhook or
-- event type. Without id and event in their indexes, every row a page
-- skipped was read from the table, for its id or its event type, and each
-- run of equal scheduled_at was sorted: a page 2,000 deep in a shop's
-- 100,000 queued rows took ~5 µs a skipped row. With them, a page's ids
-- and their order come from the index alone, as the history lists' do.
DROP INDEX deliveries_pending_shop;
CREATE INDEX deliveries_pending_shop ON deliveries (shop_id, scheduled_at, id, event) WHERE status = 'pending';
DROP INDEX deliveries_pending_webhook;
CREATE INDEX deliveries_pending_webhook ON deliveries (webhook_id, scheduled_at, id, shop_id, event) WHERE status = 'pending';
