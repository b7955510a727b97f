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
-- Pending lists, next due first (their totals come from pending_counts).
CREATE INDEX deliveries_pending_shop ON deliveries (shop_id, scheduled_at) WHERE status = 'pending';
CREATE INDEX deliveries_pending_webhook ON deliveries (webhook_id, scheduled_at, shop_id) WHERE status = 'pending';
-- History lists, newest first. The filter columns follow, so a filtered
-- page skips what does not match in the index, without reading rows.
-- Their totals come from delivery_counts, not from these.
CREATE INDEX deliveries_shop_created ON deliveries (shop_id, created_at, id, event, status) WHERE status <> 'pending';
CREATE INDEX deliveries_webhook_created ON deliveries (webhook_id, created_at, id, shop_id, event, status) WHERE status <> 'pending';
CREATE INDEX deliveries_event ON deliveries (event_id);

-- When the earliest queued row that is not leased is due (NextDue), read
-- with sorts disabled: its only sortless plan is an ordered scan of
-- deliveries_due that stops at the first row. With statistics older than
-- a fast-growing backlog, the planner otherwise sorted every queued row
-- for that one (156,326 of them, in 166 ms; auto_explain, the fanout
-- scenario). JIT would be switched on by the disabled sort's cost.
CREATE FUNCTION deliveries_next_due() RETURNS BIGINT LANGUAGE sql STABLE
    SET enable_sort = off SET jit = off
    AS $$ SELECT scheduled_at FROM deliveries WHERE status = 'pending' AND leased_until IS NULL ORDER BY scheduled_at LIMIT 1 $$;

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

-- Finished deliveries (attempts and cancellations) per shop, webhook,
-- event type and UTC day (day = its first millisecond), kept by triggers
-- on deliveries, so a list's exact total sums a few thousand counters
-- instead of counting millions of rows, and stays right whatever writes
-- the rows (attempts, cancellations, retention, deletes, copies). Queued
-- rows are counted in pending_counts instead (below): queuing or claiming
-- one touches no counter here.
CREATE TABLE delivery_counts (
    shop_id    TEXT NOT NULL,
    webhook_id TEXT NOT NULL,
    event      TEXT NOT NULL,
    day        BIGINT NOT NULL,
    success    BIGINT NOT NULL,
    failed     BIGINT NOT NULL,
    PRIMARY KEY (shop_id, webhook_id, event, day)
);
-- A transaction's changes to the counts wait here and are folded in at
-- its commit, all at once and in key order: concurrent transactions
-- (other writers, other replicas) then lock counters in one order and
-- cannot deadlock on them, and hold them only while committing. These
-- tables are empty between transactions: the only rows a transaction sees
-- in them are its own, so they need no key. The first change of a
-- transaction (a transaction-local setting says which) adds a mark, whose
-- deferred trigger folds.
CREATE UNLOGGED TABLE delivery_count_changes (
    shop_id    TEXT NOT NULL,
    webhook_id TEXT NOT NULL,
    event      TEXT NOT NULL,
    day        BIGINT NOT NULL,
    success    BIGINT NOT NULL,
    failed     BIGINT NOT NULL
);
CREATE UNLOGGED TABLE delivery_count_folds (marked BOOLEAN NOT NULL DEFAULT TRUE);

-- Queued deliveries (status 'pending') per shop and webhook, so a pending
-- list's exact total reads one counter (a shop's: one per webhook) instead
-- of counting a million entries of a partial index. A row counts here from
-- its insert or its update into 'pending' until its update out of
-- 'pending' (an attempt recorded, a cancellation) or its delete (a webhook
-- deleted). A counter at 0 is deleted. Changes wait in
-- pending_count_changes and are folded at commit with the other counters'
-- (same mark, same fold, in key order): every publish and every recorded
-- attempt changes its webhook's counter, and concurrent writers then hold
-- it only while committing, and cannot deadlock on it (two commits that
-- change one webhook's counter still take turns on its row).
CREATE TABLE pending_counts (
    shop_id    TEXT NOT NULL,
    webhook_id TEXT NOT NULL,
    event      TEXT NOT NULL,
    pending    BIGINT NOT NULL,
    PRIMARY KEY (shop_id, webhook_id, event)
);
CREATE UNLOGGED TABLE pending_count_changes (
    shop_id    TEXT NOT NULL,
    webhook_id TEXT NOT NULL,
    event      TEXT NOT NULL,
    pending    BIGINT NOT NULL
);

-- Both counters change per statement, from its transition tables: one
-- function call and one change row per counter a statement moves, however
-- many rows it writes (a publish inserts up to 50 rows a statement, a
-- recorded batch updates up to 256, retention deletes millions). A row
-- counts out of the counter its old values name and into the one its new
-- values name; what nets to zero (a claim, which changes only the lease;
-- an update that moves no counted column) adds no change. Per-row
-- triggers cost two function calls per recorded attempt, a quarter of
-- recording it; these cost less than half of that. A transition table
-- cannot go with UPDATE OF, so claims build one too, at no cost that
-- showed.
CREATE FUNCTION delivery_counts_mark() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('pancake.delivery_counts_marked', true) IS DISTINCT FROM 'on' THEN
        PERFORM set_config('pancake.delivery_counts_marked', 'on', true);
        INSERT INTO delivery_count_folds DEFAULT VALUES;
    END IF;
END
$$;
-- Rows inserted count in (sign 1), rows deleted count out (sign -1).
CREATE FUNCTION delivery_counts_moved() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    sign BIGINT := CASE TG_OP WHEN 'INSERT' THEN 1 ELSE -1 END;
    n BIGINT;
    m BIGINT;
BEGIN
    INSERT INTO delivery_count_changes (shop_id, webhook_id, event, day, success, failed)
    SELECT shop_id, webhook_id, event, created_at - created_at % 86400000,
        sign * COUNT(*) FILTER (WHERE status = 'success'), sign * COUNT(*) FILTER (WHERE status <> 'success')
    FROM moved WHERE status <> 'pending' GROUP BY 1, 2, 3, 4;
    GET DIAGNOSTICS n = ROW_COUNT;
    INSERT INTO pending_count_changes (shop_id, webhook_id, event, pending)
    SELECT shop_id, webhook_id, event, sign * COUNT(*) FROM moved WHERE status = 'pending' GROUP BY 1, 2, 3;
    GET DIAGNOSTICS m = ROW_COUNT;
    IF n + m > 0 THEN
        PERFORM delivery_counts_mark();
    END IF;
    RETURN NULL;
END
$$;
CREATE FUNCTION delivery_counts_updated() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    n BIGINT;
    m BIGINT;
BEGIN
    INSERT INTO delivery_count_changes (shop_id, webhook_id, event, day, success, failed)
    SELECT shop_id, webhook_id, event, day, SUM(success), SUM(failed) FROM (
        SELECT shop_id, webhook_id, event, created_at - created_at % 86400000 AS day,
            -(status = 'success')::int AS success, -(status <> 'success')::int AS failed
        FROM old_rows WHERE status <> 'pending'
        UNION ALL
        SELECT shop_id, webhook_id, event, created_at - created_at % 86400000,
            (status = 'success')::int, (status <> 'success')::int
        FROM new_rows WHERE status <> 'pending') c
    GROUP BY 1, 2, 3, 4 HAVING SUM(success) <> 0 OR SUM(failed) <> 0;
    GET DIAGNOSTICS n = ROW_COUNT;
    INSERT INTO pending_count_changes (shop_id, webhook_id, event, pending)
    SELECT shop_id, webhook_id, event, SUM(d) FROM (
        SELECT shop_id, webhook_id, event, -1 AS d FROM old_rows WHERE status = 'pending'
        UNION ALL
        SELECT shop_id, webhook_id, event, 1 FROM new_rows WHERE status = 'pending') c
    GROUP BY 1, 2, 3 HAVING SUM(d) <> 0;
    GET DIAGNOSTICS m = ROW_COUNT;
    IF n + m > 0 THEN
        PERFORM delivery_counts_mark();
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER delivery_counts_insert AFTER INSERT ON deliveries
    REFERENCING NEW TABLE AS moved FOR EACH STATEMENT EXECUTE FUNCTION delivery_counts_moved();
CREATE TRIGGER delivery_counts_update AFTER UPDATE ON deliveries
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION delivery_counts_updated();
CREATE TRIGGER delivery_counts_delete AFTER DELETE ON deliveries
    REFERENCING OLD TABLE AS moved FOR EACH STATEMENT EXECUTE FUNCTION delivery_counts_moved();

-- The fold, at commit: finished counts first, then queued counts, each in
-- key order, so that every transaction locks counters in one order.
CREATE FUNCTION delivery_counts_fold() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    k RECORD;
    p RECORD;
BEGIN
    PERFORM set_config('pancake.delivery_counts_marked', '', true);
    DELETE FROM delivery_count_folds;
    FOR k IN
        WITH c AS (DELETE FROM delivery_count_changes RETURNING *),
        s AS (SELECT shop_id, webhook_id, event, day, SUM(success) AS success, SUM(failed) AS failed
            FROM c GROUP BY shop_id, webhook_id, event, day),
        u AS (INSERT INTO delivery_counts AS d (shop_id, webhook_id, event, day, success, failed)
            SELECT * FROM s WHERE success <> 0 OR failed <> 0 ORDER BY shop_id, webhook_id, event, day
            ON CONFLICT (shop_id, webhook_id, event, day)
            DO UPDATE SET success = d.success + excluded.success, failed = d.failed + excluded.failed
            RETURNING d.shop_id, d.webhook_id, d.event, d.day, d.success, d.failed)
        SELECT * FROM u WHERE u.success = 0 AND u.failed = 0
    LOOP
        DELETE FROM delivery_counts WHERE shop_id = k.shop_id AND webhook_id = k.webhook_id AND event = k.event
            AND day = k.day AND success = 0 AND failed = 0;
    END LOOP;
    FOR p IN
        WITH c AS (DELETE FROM pending_count_changes RETURNING *),
        s AS (SELECT shop_id, webhook_id, event, SUM(pending) AS pending FROM c GROUP BY shop_id, webhook_id, event),
        u AS (INSERT INTO pending_counts AS d (shop_id, webhook_id, event, pending)
            SELECT * FROM s WHERE pending <> 0 ORDER BY shop_id, webhook_id, event
            ON CONFLICT (shop_id, webhook_id, event) DO UPDATE SET pending = d.pending + excluded.pending
            RETURNING d.shop_id, d.webhook_id, d.event, d.pending)
        SELECT * FROM u WHERE u.pending = 0
    LOOP
        DELETE FROM pending_counts WHERE shop_id = p.shop_id AND webhook_id = p.webhook_id AND event = p.event AND pending = 0;
    END LOOP;
    RETURN NULL;
END
$$;
CREATE CONSTRAINT TRIGGER delivery_count_folds_at_commit AFTER INSERT ON delivery_count_folds
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION delivery_counts_fold();
