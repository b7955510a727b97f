-- Shops, their API keys (hashed), webhooks, events and deliveries.
-- Times are Unix milliseconds, UTC. The deliveries table is the queue.
CREATE TABLE shops (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL
);

CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    shop_id    TEXT NOT NULL REFERENCES shops (id) ON DELETE CASCADE,
    hash       TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);
CREATE INDEX api_keys_shop ON api_keys (shop_id);

CREATE TABLE webhooks (
    id                     TEXT PRIMARY KEY,
    shop_id                TEXT NOT NULL REFERENCES shops (id) ON DELETE CASCADE,
    url                    TEXT NOT NULL,
    events                 TEXT NOT NULL,
    is_active              BOOLEAN NOT NULL,
    description            TEXT NOT NULL DEFAULT '',
    secret                 TEXT NOT NULL,
    prev_secret            TEXT NOT NULL DEFAULT '',
    prev_secret_expires_at INTEGER NOT NULL DEFAULT 0,
    created_at             INTEGER NOT NULL,
    updated_at             INTEGER NOT NULL,
    last_triggered_at      INTEGER,
    disabled_reason        TEXT NOT NULL DEFAULT '',
    consecutive_failures   INTEGER NOT NULL DEFAULT 0,
    failing_since          INTEGER,
    last_success_at        INTEGER,
    last_failure_at        INTEGER,
    last_failure_reason    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX webhooks_shop ON webhooks (shop_id, id);
CREATE INDEX webhooks_failing ON webhooks (failing_since) WHERE failing_since IS NOT NULL;

CREATE TABLE events (
    id              TEXT PRIMARY KEY,
    shop_id         TEXT NOT NULL,
    type            TEXT NOT NULL,
    idempotency_key TEXT,
    envelope        BLOB NOT NULL,
    deliveries      INTEGER NOT NULL,
    created_at      INTEGER NOT NULL
);
CREATE UNIQUE INDEX events_idempotency ON events (shop_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX events_created ON events (created_at);

CREATE TABLE deliveries (
    id                 TEXT PRIMARY KEY,
    shop_id            TEXT NOT NULL,
    webhook_id         TEXT NOT NULL,
    event_id           TEXT NOT NULL,
    event              TEXT NOT NULL,
    status             TEXT NOT NULL,
    trigger            TEXT NOT NULL,
    attempt            INTEGER NOT NULL,
    retry_of           TEXT NOT NULL DEFAULT '',
    created_at         INTEGER NOT NULL,
    scheduled_at       INTEGER,
    leased_until       INTEGER,
    response_status    INTEGER NOT NULL DEFAULT 0,
    response_headers   TEXT NOT NULL DEFAULT '',
    response_body      TEXT NOT NULL DEFAULT '',
    response_truncated BOOLEAN NOT NULL DEFAULT FALSE,
    request_headers    TEXT NOT NULL DEFAULT '',
    failure_reason     TEXT NOT NULL DEFAULT '',
    duration_ms        INTEGER NOT NULL DEFAULT 0,
    next_retry_at      INTEGER
);
-- The queue: due pending rows, oldest due first.
CREATE INDEX deliveries_due ON deliveries (scheduled_at) WHERE status = 'pending';
-- Pending lists, next due first (their totals come from pending_counts).
CREATE INDEX deliveries_pending_shop ON deliveries (shop_id, scheduled_at) WHERE status = 'pending';
CREATE INDEX deliveries_pending_webhook ON deliveries (webhook_id, scheduled_at, shop_id) WHERE status = 'pending';
-- History lists, newest first. The filter columns follow, so a filtered
-- page skips what does not match in the index, without reading rows.
-- Their totals come from delivery_counts, not from these.
CREATE INDEX deliveries_shop_created ON deliveries (shop_id, created_at, id, event, status) WHERE status <> 'pending';
CREATE INDEX deliveries_webhook_created ON deliveries (webhook_id, created_at, id, shop_id, event, status) WHERE status <> 'pending';
CREATE INDEX deliveries_event ON deliveries (event_id);

-- Attempt counts per webhook, UTC hour and event type, kept with every
-- recorded attempt so stats and health never scan deliveries.
CREATE TABLE webhook_stats (
    webhook_id      TEXT NOT NULL,
    hour            INTEGER NOT NULL,
    event           TEXT NOT NULL,
    total           INTEGER NOT NULL,
    success         INTEGER NOT NULL,
    failed          INTEGER NOT NULL,
    duration_ms_sum INTEGER NOT NULL,
    PRIMARY KEY (webhook_id, hour, event)
) WITHOUT ROWID;

-- Finished deliveries (attempts and cancellations) per shop, webhook,
-- event type and UTC day (day = its first millisecond), kept by triggers
-- on deliveries, so a list's exact total sums a few thousand counters
-- instead of counting millions of rows, and stays right whatever writes
-- the rows (attempts, cancellations, retention, deletes, copies). Queued
-- rows are counted in pending_counts instead: queuing or claiming one
-- touches no counter here.
CREATE TABLE delivery_counts (
    shop_id    TEXT NOT NULL,
    webhook_id TEXT NOT NULL,
    event      TEXT NOT NULL,
    day        INTEGER NOT NULL,
    success    INTEGER NOT NULL,
    failed     INTEGER NOT NULL,
    PRIMARY KEY (shop_id, webhook_id, event, day)
) WITHOUT ROWID;
CREATE TRIGGER delivery_counts_insert AFTER INSERT ON deliveries WHEN NEW.status <> 'pending' BEGIN
    INSERT INTO delivery_counts (shop_id, webhook_id, event, day, success, failed)
    VALUES (NEW.shop_id, NEW.webhook_id, NEW.event, NEW.created_at - NEW.created_at % 86400000, NEW.status = 'success', NEW.status <> 'success')
    ON CONFLICT (shop_id, webhook_id, event, day) DO UPDATE SET success = success + excluded.success, failed = failed + excluded.failed;
END;
-- A row attempted, cancelled, re-recorded or copied over: out of its old
-- counter if it was counted, into its new one if it is.
CREATE TRIGGER delivery_counts_update AFTER UPDATE OF shop_id, webhook_id, event, status, created_at ON deliveries
WHEN (OLD.status <> 'pending' OR NEW.status <> 'pending') AND (OLD.shop_id <> NEW.shop_id OR OLD.webhook_id <> NEW.webhook_id
    OR OLD.event <> NEW.event OR OLD.status <> NEW.status OR OLD.created_at <> NEW.created_at) BEGIN
    INSERT INTO delivery_counts (shop_id, webhook_id, event, day, success, failed)
    SELECT OLD.shop_id, OLD.webhook_id, OLD.event, OLD.created_at - OLD.created_at % 86400000, -(OLD.status = 'success'), -(OLD.status <> 'success')
    WHERE OLD.status <> 'pending'
    ON CONFLICT (shop_id, webhook_id, event, day) DO UPDATE SET success = success + excluded.success, failed = failed + excluded.failed;
    DELETE FROM delivery_counts WHERE OLD.status <> 'pending' AND shop_id = OLD.shop_id AND webhook_id = OLD.webhook_id
        AND event = OLD.event AND day = OLD.created_at - OLD.created_at % 86400000 AND success = 0 AND failed = 0;
    INSERT INTO delivery_counts (shop_id, webhook_id, event, day, success, failed)
    SELECT NEW.shop_id, NEW.webhook_id, NEW.event, NEW.created_at - NEW.created_at % 86400000, NEW.status = 'success', NEW.status <> 'success'
    WHERE NEW.status <> 'pending'
    ON CONFLICT (shop_id, webhook_id, event, day) DO UPDATE SET success = success + excluded.success, failed = failed + excluded.failed;
END;
CREATE TRIGGER delivery_counts_delete AFTER DELETE ON deliveries WHEN OLD.status <> 'pending' BEGIN
    INSERT INTO delivery_counts (shop_id, webhook_id, event, day, success, failed)
    VALUES (OLD.shop_id, OLD.webhook_id, OLD.event, OLD.created_at - OLD.created_at % 86400000, -(OLD.status = 'success'), -(OLD.status <> 'success'))
    ON CONFLICT (shop_id, webhook_id, event, day) DO UPDATE SET success = success + excluded.success, failed = failed + excluded.failed;
    DELETE FROM delivery_counts WHERE shop_id = OLD.shop_id AND webhook_id = OLD.webhook_id AND event = OLD.event
        AND day = OLD.created_at - OLD.created_at % 86400000 AND success = 0 AND failed = 0;
END;

-- Queued deliveries (status 'pending') per shop and webhook, kept by
-- triggers on deliveries, so a pending list's exact total reads one
-- counter (a shop's: one per webhook) instead of counting a million
-- entries of a partial index. A row counts here from its insert or its
-- update into 'pending' until its update out of 'pending' (an attempt
-- recorded, a cancellation) or its delete (a webhook deleted). A counter
-- at 0 is deleted. Claiming a row (leased_until only) fires nothing: the
-- update triggers watch shop_id, webhook_id and status alone.
CREATE TABLE pending_counts (
    shop_id    TEXT NOT NULL,
    webhook_id TEXT NOT NULL,
    event      TEXT NOT NULL,
    pending    INTEGER NOT NULL,
    PRIMARY KEY (shop_id, webhook_id, event)
) WITHOUT ROWID;
CREATE TRIGGER pending_counts_insert AFTER INSERT ON deliveries WHEN NEW.status = 'pending' BEGIN
    INSERT INTO pending_counts (shop_id, webhook_id, event, pending) VALUES (NEW.shop_id, NEW.webhook_id, NEW.event, 1)
    ON CONFLICT (shop_id, webhook_id, event) DO UPDATE SET pending = pending + 1;
END;
CREATE TRIGGER pending_counts_update AFTER UPDATE OF shop_id, webhook_id, event, status ON deliveries
WHEN (OLD.status = 'pending' OR NEW.status = 'pending')
    AND (OLD.shop_id <> NEW.shop_id OR OLD.webhook_id <> NEW.webhook_id OR OLD.event <> NEW.event OR OLD.status <> NEW.status) BEGIN
    UPDATE pending_counts SET pending = pending - 1
        WHERE OLD.status = 'pending' AND shop_id = OLD.shop_id AND webhook_id = OLD.webhook_id AND event = OLD.event;
    DELETE FROM pending_counts WHERE OLD.status = 'pending' AND shop_id = OLD.shop_id AND webhook_id = OLD.webhook_id
        AND event = OLD.event AND pending = 0;
    INSERT INTO pending_counts (shop_id, webhook_id, event, pending) SELECT NEW.shop_id, NEW.webhook_id, NEW.event, 1
    WHERE NEW.status = 'pending'
    ON CONFLICT (shop_id, webhook_id, event) DO UPDATE SET pending = pending + 1;
END;
CREATE TRIGGER pending_counts_delete AFTER DELETE ON deliveries WHEN OLD.status = 'pending' BEGIN
    UPDATE pending_counts SET pending = pending - 1 WHERE shop_id = OLD.shop_id AND webhook_id = OLD.webhook_id AND event = OLD.event;
    DELETE FROM pending_counts WHERE shop_id = OLD.shop_id AND webhook_id = OLD.webhook_id AND event = OLD.event AND pending = 0;
END;
