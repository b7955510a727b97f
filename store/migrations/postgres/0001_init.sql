-- Shops, their API keys (hashed), webhooks, events and deliveries.
-- Times are Unix milliseconds, UTC. The deliveries table is the queue.
CREATE TABLE shops (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL DEFAULT '',
    created_at BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    shop_id    TEXT NOT NULL REFERENCES shops (id) ON DELETE CASCADE,
    hash       TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
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
    prev_secret_expires_at BIGINT NOT NULL DEFAULT 0,
    created_at             BIGINT NOT NULL,
    updated_at             BIGINT NOT NULL,
    last_triggered_at      BIGINT,
    disabled_reason        TEXT NOT NULL DEFAULT '',
    consecutive_failures   BIGINT NOT NULL DEFAULT 0,
    failing_since          BIGINT,
    last_success_at        BIGINT,
    last_failure_at        BIGINT,
    last_failure_reason    TEXT NOT NULL DEFAULT ''
);
CREATE INDEX webhooks_shop ON webhooks (shop_id, id);
CREATE INDEX webhooks_failing ON webhooks (failing_since) WHERE failing_since IS NOT NULL;

CREATE TABLE events (
    id              TEXT PRIMARY KEY,
    shop_id         TEXT NOT NULL,
    type            TEXT NOT NULL,
    idempotency_key TEXT,
    envelope        BYTEA NOT NULL,
    deliveries      BIGINT NOT NULL,
    created_at      BIGINT NOT NULL
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
    attempt            BIGINT NOT NULL,
    retry_of           TEXT NOT NULL DEFAULT '',
    created_at         BIGINT NOT NULL,
    scheduled_at       BIGINT,
    leased_until       BIGINT,
    response_status    BIGINT NOT NULL DEFAULT 0,
    response_headers   TEXT NOT NULL DEFAULT '',
    response_body      TEXT NOT NULL DEFAULT '',
    response_truncated BOOLEAN NOT NULL DEFAULT FALSE,
    request_headers    TEXT NOT NULL DEFAULT '',
    failure_reason     TEXT NOT NULL DEFAULT '',
    duration_ms        BIGINT NOT NULL DEFAULT 0,
    next_retry_at      BIGINT
);
-- The queue: due pending rows, oldest due first.
CREATE INDEX deliveries_due ON deliveries (scheduled_at) WHERE status = 'pending';
CREATE INDEX deliveries_pending_shop ON deliveries (shop_id, scheduled_at) WHERE status = 'pending';
CREATE INDEX deliveries_pending_webhook ON deliveries (webhook_id, scheduled_at) WHERE status = 'pending';
-- History lists, newest first.
CREATE INDEX deliveries_shop_created ON deliveries (shop_id, created_at, id) WHERE status <> 'pending';
CREATE INDEX deliveries_webhook_created ON deliveries (webhook_id, created_at, id) WHERE status <> 'pending';
CREATE INDEX deliveries_event ON deliveries (event_id);

-- Attempt counts per webhook, UTC hour and event type, kept with every
-- recorded attempt so stats and health never scan deliveries.
CREATE TABLE webhook_stats (
    webhook_id      TEXT NOT NULL,
    hour            BIGINT NOT NULL,
    event           TEXT NOT NULL,
    total           BIGINT NOT NULL,
    success         BIGINT NOT NULL,
    failed          BIGINT NOT NULL,
    duration_ms_sum BIGINT NOT NULL,
    PRIMARY KEY (webhook_id, hour, event)
);
