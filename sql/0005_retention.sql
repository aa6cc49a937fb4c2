-- 0005_retention.sql — the ephemeral retention mode: what `chat-worker
-- cleanup --retention ephemeral` needs to delete messages once every
-- recipient has them (or after a TTL), in bounded batches
-- (docs/ARCHITECTURE.md, "Retention").  In the default permanent mode
-- nothing calls these functions.
--
-- Applied by scripts/migrate inside one transaction together with its row in
-- schema_migrations: no BEGIN/COMMIT here.
--
-- Who the recipients of a message are: its delivery rows, written in the
-- transaction that stores the message (the other user; for a group, every
-- other member at that moment) and never added later.  So a message whose
-- rows are all 'delivered' or 'read' stays so: states only move forward.
-- A message with no delivery row at all (a group nobody else was in, or a
-- row lost) is not "delivered": only the TTL removes it.


-- --- tables ------------------------------------------------------------------

-- The highest seq deleted per conversation.  When Redis lost a
-- conversation's counter, the gateway sets it from PostgreSQL
-- (chat_seq_top(), sql/0006): without this row a conversation whose
-- messages were all deleted would start again at seq 1, and a client
-- would take the new messages for ones it has.
CREATE TABLE conv_seq_floor (
    conv  text    COLLATE "C" NOT NULL,
    seq   bigint  NOT NULL,
    CONSTRAINT conv_seq_floor_pkey PRIMARY KEY (conv)
);


-- --- indexes -----------------------------------------------------------------

-- The delivery rows of one group message.  deliveries is partitioned by
-- recipient, so this is one probe per partition; one-to-one messages need
-- no index (their recipient is in the message: one primary key probe) and
-- are left out, which keeps the index off the persist worker's path for
-- them.  Queries must repeat the predicate (conv LIKE 'g:%') to use it.
CREATE INDEX deliveries_group_msg_idx
    ON deliveries (conv, seq)
    WHERE conv LIKE 'g:%';

-- Receipts parked for a message that never came (or came and was deleted
-- before a later receipt): the oldest first.
CREATE INDEX pending_receipts_received_at_idx
    ON pending_receipts (received_at);


-- --- chat-worker cleanup -----------------------------------------------------
--
-- One call is one transaction.  The worker walks `messages` in primary key
-- order, a window of lim rows after (after_conv, after_seq) per call,
-- passing back the last key of the window; a window shorter than lim ends
-- the pass.  Within the window it deletes what every recipient has (all of
-- its delivery rows 'delivered' or 'read', at least one row) and, when
-- ttl_ms is not NULL, whatever is older than ttl_ms (the message's ts, the
-- gateway's clock), with their delivery rows.
--
-- Several workers may run: the rows to delete are locked FOR UPDATE SKIP
-- LOCKED, so each message is deleted (and counted) by one of them; a
-- message another worker holds is left for it.  Deleting again what is
-- gone deletes nothing: the call is idempotent.
--
-- Counts: scanned (the window), delivered (deleted as delivered), expired
-- (deleted by the TTL and not delivered), delivery_rows (delivery rows
-- deleted with them).
--
-- The plan must be nested loops over the window (at most lim rows) into
-- the primary keys, one partition per row (run-time pruning): the planner
-- cannot know how few rows the window's CTEs hold and, costing every
-- partition, prefers hashing all of messages (120,000 rows: 650 ms instead
-- of 50 ms per 1,000).  Hence no hash or merge joins here; and no JIT,
-- which the resulting costs would switch on for nothing (400 ms).
CREATE FUNCTION chat_cleanup_messages(after_conv text, after_seq bigint,
    lim int, ttl_ms bigint,
    OUT scanned int, OUT delivered int, OUT expired int,
    OUT delivery_rows int, OUT last_conv text, OUT last_seq bigint)
LANGUAGE plpgsql VOLATILE
SET enable_hashjoin = off
SET enable_mergejoin = off
SET jit = off
AS $$
DECLARE
    cutoff  bigint;
BEGIN
    IF lim IS NULL OR lim < 1 THEN
        RAISE EXCEPTION 'chat_cleanup_messages: lim must be positive';
    END IF;

    IF ttl_ms IS NOT NULL THEN
        cutoff := floor(extract(epoch FROM now()) * 1000)::bigint - ttl_ms;
    END IF;

    WITH win AS (
        SELECT m.conv, m.seq, m.recipient, m.ts
        FROM messages m
        WHERE (m.conv, m.seq) > (coalesce(after_conv, ''),
                                 coalesce(after_seq, 0))
        ORDER BY m.conv, m.seq
        LIMIT lim
    ), cand AS MATERIALIZED (
        -- done: every recipient has it.  One-to-one: the recipient's
        -- row (one primary key probe); group: every row, at least one.
        SELECT w.conv, w.seq, w.recipient, w.ts,
               CASE WHEN w.recipient IS NOT NULL THEN
                   coalesce((SELECT d.state <> 'sent'
                             FROM deliveries d
                             WHERE d.recipient = w.recipient
                               AND d.conv = w.conv AND d.seq = w.seq),
                            false)
               ELSE
                   coalesce((SELECT count(*) > 0
                                    AND bool_and(d.state <> 'sent')
                             FROM deliveries d
                             WHERE d.conv LIKE 'g:%'
                               AND d.conv = w.conv AND d.seq = w.seq),
                            false)
               END AS done
        FROM win w
    ), chosen AS (
        SELECT c.conv, c.seq, c.recipient, c.done
        FROM cand c
        WHERE c.done OR c.ts < cutoff
    ), locked AS (
        SELECT m.conv, m.seq, m.recipient, c.done
        FROM chosen c
        JOIN messages m ON m.conv = c.conv AND m.seq = c.seq
        FOR UPDATE OF m SKIP LOCKED
    ), dd1 AS (
        DELETE FROM deliveries d
        USING locked l
        WHERE l.recipient IS NOT NULL
          AND d.recipient = l.recipient
          AND d.conv = l.conv AND d.seq = l.seq
        RETURNING 1
    ), ddg AS (
        DELETE FROM deliveries d
        USING locked l
        WHERE l.recipient IS NULL
          AND d.conv LIKE 'g:%'
          AND d.conv = l.conv AND d.seq = l.seq
        RETURNING 1
    ), dm AS (
        DELETE FROM messages m
        USING locked l
        WHERE m.conv = l.conv AND m.seq = l.seq
        RETURNING l.conv, l.seq, l.done
    ), fl AS (
        -- run whether read or not, as every data-modifying WITH
        INSERT INTO conv_seq_floor AS f (conv, seq)
        SELECT dm.conv, max(dm.seq) FROM dm GROUP BY dm.conv
        ON CONFLICT (conv) DO UPDATE SET seq = greatest(f.seq, excluded.seq)
    )
    SELECT (SELECT count(*) FROM win),
           (SELECT count(*) FROM dm WHERE dm.done),
           (SELECT count(*) FROM dm WHERE NOT dm.done),
           (SELECT count(*) FROM dd1) + (SELECT count(*) FROM ddg),
           (SELECT w.conv FROM win w
            ORDER BY w.conv DESC, w.seq DESC LIMIT 1),
           (SELECT w.seq FROM win w
            ORDER BY w.conv DESC, w.seq DESC LIMIT 1)
    INTO scanned, delivered, expired, delivery_rows, last_conv, last_seq;
END
$$;

-- Parked receipts older than max_age_ms: at most lim of them, the oldest
-- first, locked SKIP LOCKED like the messages.  In the ephemeral mode every
-- receipt that comes after its message was deleted (a "read" after the
-- "delivered" that deleted it) is parked, so they would pile up.  A
-- receipt that is only early (its message still on the way) is younger
-- than any sensible max_age; deleting one anyway costs nothing but that
-- message's status: it is then kept until the TTL.  The number deleted.
CREATE FUNCTION chat_cleanup_pending(max_age_ms bigint, lim int)
RETURNS int
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    n  int;
BEGIN
    IF lim IS NULL OR lim < 1 OR max_age_ms IS NULL OR max_age_ms < 0 THEN
        RAISE EXCEPTION 'chat_cleanup_pending: lim must be positive and '
                        'max_age_ms not negative';
    END IF;

    WITH old AS (
        SELECT p.conv, p.id, p.recipient
        FROM pending_receipts p
        WHERE p.received_at < now() - max_age_ms * interval '1 millisecond'
        ORDER BY p.received_at
        LIMIT lim
        FOR UPDATE SKIP LOCKED
    ), del AS (
        DELETE FROM pending_receipts p
        USING old o
        WHERE p.conv = o.conv AND p.id = o.id AND p.recipient = o.recipient
        RETURNING 1
    )
    SELECT count(*) INTO n FROM del;

    RETURN n;
END
$$;
