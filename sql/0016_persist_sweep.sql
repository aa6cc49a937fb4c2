-- 0016_persist_sweep.sql — the persistence worker's sweep looks only at
-- receipts parked recently (issue #13).
--
-- Applied by scripts/migrate inside one transaction together with its row in
-- schema_migrations: no BEGIN/COMMIT here.
--
-- A receipt whose message is not stored yet is parked in pending_receipts;
-- the batch that stores the message takes its parked receipts with it
-- (chat_persist_apply, sql/0008, step 3).  The sweep is for the one case
-- that path misses: two transactions at once, one parking the receipt and
-- the other storing the message, neither seeing the other.  Both are over
-- within seconds, so only a receipt parked in the last minutes can be in
-- that case.
--
-- chat_persist_apply(true) swept every parked receipt, every
-- --sweep-interval (5 s).  Receipts whose message never comes (a broker
-- that dropped it, a client's bogus id) stay parked until chat-worker
-- cleanup's --pending-ttl, which only runs with the ephemeral retention:
-- on a stack that had served benchmarks, 257,000 of them made each sweep a
-- hash join over all of messages, 6.8 s of PostgreSQL every 5 s.
--
-- chat_persist_unpark(window_ms) moves the parked receipts of the last
-- window_ms whose message is stored now into this transaction's staged
-- receipts (chat_persist_in_rcpts), where chat_persist_apply(false) applies
-- them; NULL: every parked receipt, which the worker does once when it
-- starts (a race just before a long stop).  The recent ones are found by
-- pending_receipts_received_at_idx (sql/0005), each message by its key.
-- Returns how many it moved.
CREATE FUNCTION chat_persist_unpark(window_ms bigint) RETURNS int
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    moved  int;
BEGIN
    IF window_ms < 0 THEN
        RAISE EXCEPTION 'chat_persist_unpark: window_ms must not be '
                        'negative, not %', window_ms;
    END IF;

    WITH moved AS (
        DELETE FROM pending_receipts p
        WHERE (window_ms IS NULL
               OR p.received_at >= now() - window_ms * interval '1 millisecond')
          AND EXISTS (SELECT 1 FROM messages m
                      WHERE m.conv = p.conv AND m.id = p.id)
        RETURNING p.conv, p.id, p.recipient, p.delivered_ts, p.read_ts
    )
    INSERT INTO chat_persist_in_rcpts (conv, id, recipient, delivered_ts,
                                       read_ts)
    SELECT * FROM moved;

    GET DIAGNOSTICS moved = ROW_COUNT;

    RETURN moved;
END
$$;
