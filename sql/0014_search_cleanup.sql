-- 0014_search_cleanup.sql — the search index in the ephemeral retention
-- mode: rows of messages the cleanup deleted before the index worker wrote
-- them (issue #17).
--
-- Applied by scripts/migrate inside one transaction together with its row in
-- schema_migrations: no BEGIN/COMMIT here.
--
-- The index worker and the persist worker read chat.messages each in its
-- own consumer group, and the cleanup deletes a message once every
-- recipient has it.  A message delivered and deleted while the index
-- worker lagged is written to message_search afterwards, and the trigger
-- of sql/0012 that removes a message's row when the message goes has
-- already run: the row stays.  Such a row is never a search result (a
-- result is joined with its stored message), but it keeps the words and
-- tokens of a deleted message.  chat-worker cleanup sweeps them.
--
-- An orphan is a row
--   - whose message is not in messages,
--   - at or below its conversation's floor (conv_seq_floor: the highest
--     seq the cleanup deleted there), so a message of that conversation
--     at least as new was stored and deleted already; a row of a message
--     the persist worker has not stored yet (the index worker ahead of
--     it, the usual case) is above the floor,
--   - and indexed more than grace_ms ago, for a message stored out of its
--     seq order (two devices of one user sending at once) by a persist
--     worker that lags.


-- One call is one transaction: a window of lim rows of message_search in
-- primary key order after (after_conv, after_seq), the last key passed
-- back; a window shorter than lim ends the pass (as
-- chat_cleanup_messages, sql/0005).  Rows are locked FOR UPDATE SKIP
-- LOCKED: several workers delete (and count) each row once.
--
-- Counts: scanned (the window), deleted (orphans removed).
--
-- Nested loops over the window into the primary keys only, as in
-- chat_cleanup_messages (messages is partitioned: one partition per row by
-- run-time pruning).
CREATE FUNCTION chat_cleanup_search(after_conv text, after_seq bigint,
    lim int, grace_ms bigint,
    OUT scanned int, OUT deleted int, OUT last_conv text, OUT last_seq bigint)
LANGUAGE plpgsql VOLATILE
SET enable_hashjoin = off
SET enable_mergejoin = off
SET jit = off
AS $$
BEGIN
    IF lim IS NULL OR lim < 1 OR grace_ms IS NULL OR grace_ms < 0 THEN
        RAISE EXCEPTION 'chat_cleanup_search: lim must be positive and '
                        'grace_ms not negative';
    END IF;

    WITH win AS (
        SELECT s.conv, s.seq, s.indexed_at
        FROM message_search s
        WHERE (s.conv, s.seq) > (coalesce(after_conv, ''),
                                 coalesce(after_seq, 0))
        ORDER BY s.conv, s.seq
        LIMIT lim
    ), orphan AS MATERIALIZED (
        SELECT w.conv, w.seq
        FROM win w
        JOIN conv_seq_floor f ON f.conv = w.conv
        WHERE w.seq <= f.seq
          AND w.indexed_at < now() - grace_ms * interval '1 millisecond'
          AND NOT EXISTS (SELECT 1 FROM messages m
                          WHERE m.conv = w.conv AND m.seq = w.seq)
    ), locked AS (
        SELECT s.conv, s.seq
        FROM orphan o
        JOIN message_search s ON s.conv = o.conv AND s.seq = o.seq
        FOR UPDATE OF s SKIP LOCKED
    ), del AS (
        DELETE FROM message_search s
        USING locked l
        WHERE s.conv = l.conv AND s.seq = l.seq
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM win),
           (SELECT count(*) FROM del),
           (SELECT w.conv FROM win w
            ORDER BY w.conv DESC, w.seq DESC LIMIT 1),
           (SELECT w.seq FROM win w
            ORDER BY w.conv DESC, w.seq DESC LIMIT 1)
    INTO scanned, deleted, last_conv, last_seq;
END
$$;
