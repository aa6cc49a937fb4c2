-- 0003_messages.sql — message history, per-recipient delivery state and
-- receipts, written by the persistence worker (chat-worker persist) and
-- read by GET /v1/messages.
--
-- Applied by scripts/migrate inside one transaction together with its row in
-- schema_migrations: no BEGIN/COMMIT here.
--
-- Layout (docs/ARCHITECTURE.md, "Storage layout"):
--
--   messages          PRIMARY KEY (conv, seq), UNIQUE (conv, id), hash
--                     partitioned by conv: one conversation lives in one
--                     partition, history is one backward index scan.
--   deliveries        one row per message and recipient, PRIMARY KEY
--                     (recipient, conv, seq), hash partitioned by recipient:
--                     receipts and "what has U not received" touch one
--                     partition.
--   pending_receipts  receipts that arrived before their message.
--
-- Idempotency: a message id belongs to exactly one conversation (the
-- gateway makes the id and the conversation together), so UNIQUE (conv, id)
-- is as strong as a global UNIQUE (id) while it contains the partition key,
-- which PostgreSQL requires of unique constraints on partitioned tables.  A
-- replayed record hits it and changes nothing.  A different id at a taken
-- (conv, seq) means the gateway's seq counter (Redis) was lost and reused:
-- that message is kept under the next free seq of its conversation rather
-- than dropped (see chat_persist_apply).
--
-- Times are milliseconds since the Unix epoch (bigint), as in the Kafka
-- records and the API.  Conversation and message ids are ASCII compared
-- byte by byte (COLLATE "C"): the database's C.UTF-8 collation would make
-- every comparison in their indexes a strcoll() call.  There are no
-- foreign keys to users or groups: the history outlives deleted accounts,
-- and a worker batch must never fail on a row it cannot change (a failing
-- batch would stop the consumer).


-- --- tables -----------------------------------------------------------------

CREATE TABLE messages (
    conv        text        COLLATE "C" NOT NULL,   -- 'd:<lo>:<hi>', 'g:<gid>'
    seq         bigint      NOT NULL CONSTRAINT messages_seq_check
                                     CHECK (seq > 0),
    id          text        COLLATE "C" NOT NULL,   -- 26 chars of chat_id
    sender      bigint      NOT NULL,
    recipient   bigint,                 -- one-to-one
    group_id    bigint,                 -- group
    body        text        NOT NULL,
    media       text,
    e2e         boolean     NOT NULL DEFAULT false,
    client_id   text        NOT NULL,
    ts          bigint      NOT NULL,   -- ms, the gateway's clock
    stored_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT messages_pkey PRIMARY KEY (conv, seq),
    CONSTRAINT messages_conv_id_key UNIQUE (conv, id),
    CONSTRAINT messages_target_check
        CHECK ((recipient IS NULL) <> (group_id IS NULL))
) PARTITION BY HASH (conv);

CREATE TABLE deliveries (
    recipient     bigint    NOT NULL,
    conv          text      COLLATE "C" NOT NULL,
    seq           bigint    NOT NULL,
    ts            bigint    NOT NULL,   -- the message's, for "oldest first"
    state         text      NOT NULL DEFAULT 'sent'
                            CONSTRAINT deliveries_state_check
                            CHECK (state IN ('sent', 'delivered', 'read')),
    delivered_at  bigint,               -- ms, from the receipt
    read_at       bigint,
    CONSTRAINT deliveries_pkey PRIMARY KEY (recipient, conv, seq)
) PARTITION BY HASH (recipient);

-- "Undelivered messages for user U, oldest first": the gateway's fallback
-- for offline delivery when Redis lost the inbox.  Partial, so it holds
-- only what is still to deliver and stays small.
--
--   SELECT d.conv, d.seq FROM deliveries d
--   WHERE d.recipient = $1 AND d.state = 'sent'
--   ORDER BY d.ts, d.conv, d.seq LIMIT $2
CREATE INDEX deliveries_undelivered_idx
    ON deliveries (recipient, ts, conv, seq)
    WHERE state = 'sent';

-- A receipt whose message is not in `messages` yet (the two topics are
-- consumed independently, or the receipt's batch was written first).  Kept,
-- with what it says merged, until the message arrives; then applied and
-- deleted.  delivered_ts is always set (read implies delivered).
CREATE TABLE pending_receipts (
    conv          text        COLLATE "C" NOT NULL,
    id            text        COLLATE "C" NOT NULL,
    recipient     bigint      NOT NULL,
    delivered_ts  bigint      NOT NULL,
    read_ts       bigint,
    received_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT pending_receipts_pkey PRIMARY KEY (conv, id, recipient)
);

DO $$
BEGIN
    FOR i IN 0..15 LOOP
        EXECUTE format('CREATE TABLE %I PARTITION OF messages '
                       'FOR VALUES WITH (MODULUS 16, REMAINDER %s)',
                       'messages_p' || lpad(i::text, 2, '0'), i);
        EXECUTE format('CREATE TABLE %I PARTITION OF deliveries '
                       'FOR VALUES WITH (MODULUS 16, REMAINDER %s)',
                       'deliveries_p' || lpad(i::text, 2, '0'), i);
    END LOOP;
END
$$;


-- --- the persistence worker -----------------------------------------------
--
-- Per batch, in one transaction:
--
--   COPY chat_persist_in_msgs FROM STDIN     (the batch's messages)
--   COPY chat_persist_in_rcpts FROM STDIN    (the batch's receipts)
--   SELECT * FROM chat_persist_apply(false)
--   COMMIT
--
-- The two staging tables are temporary (one pair per connection, so several
-- workers never see each other's rows) and emptied at every commit.
-- chat_persist_prepare() makes them; the worker calls it once per
-- connection.

CREATE FUNCTION chat_persist_prepare() RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    CREATE TEMP TABLE IF NOT EXISTS chat_persist_in_msgs (
        conv       text COLLATE "C",
        seq        bigint,
        id         text COLLATE "C",
        sender     bigint,
        recipient  bigint,
        group_id   bigint,
        body       text,
        media      text,
        e2e        boolean,
        client_id  text,
        ts         bigint
    ) ON COMMIT DELETE ROWS;

    -- one row per receipt: delivered_ts = its ts, read_ts = its ts for a
    -- "read" receipt (NULL for "delivered")
    CREATE TEMP TABLE IF NOT EXISTS chat_persist_in_rcpts (
        conv          text COLLATE "C",
        id            text COLLATE "C",
        recipient     bigint,
        delivered_ts  bigint,
        read_ts       bigint
    ) ON COMMIT DELETE ROWS;
END
$$;

-- Applies the staged batch; what it did, in counts:
--   stored       messages new to the table
--   duplicates   messages already there (replays)
--   resequenced  messages stored under another seq (their seq was taken by
--                another id: the gateway's counter was lost)
--   receipts     delivery rows whose state or times changed
--   pending      receipts kept for a message not stored yet
--
-- sweep: also apply every pending receipt whose message is there by now, not
-- only those of this batch's messages.  Two workers can race (one stores a
-- message while the other, not seeing it yet, parks its receipt); the worker
-- sweeps every few seconds so that such a receipt waits at most that long.
CREATE FUNCTION chat_persist_apply(sweep boolean,
    OUT stored int, OUT duplicates int, OUT resequenced int,
    OUT receipts int, OUT pending int)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    staged  int;
    lost    record;
    n       bigint;
BEGIN
    resequenced := 0;

    -- 1. messages, and a delivery row ('sent') for each recipient: the
    -- other user, or every other member of the group at this moment.
    -- DO NOTHING without a target covers both keys: (conv, id) for a
    -- replay, (conv, seq) for a reused seq (handled below), also between
    -- two rows of the batch.  Sorted by key so that index insertions stay
    -- close together.
    WITH ins AS (
        INSERT INTO messages (conv, seq, id, sender, recipient, group_id,
                              body, media, e2e, client_id, ts)
        SELECT s.conv, s.seq, s.id, s.sender, s.recipient, s.group_id,
               s.body, s.media, s.e2e, s.client_id, s.ts
        FROM chat_persist_in_msgs s
        ORDER BY s.conv, s.seq
        ON CONFLICT DO NOTHING
        RETURNING conv, seq, sender, recipient, group_id, ts
    ), dl AS (
        INSERT INTO deliveries (recipient, conv, seq, ts)
        SELECT i.recipient, i.conv, i.seq, i.ts
        FROM ins i WHERE i.recipient IS NOT NULL
        UNION ALL
        SELECT gm.user_id, i.conv, i.seq, i.ts
        FROM ins i
        JOIN group_members gm ON gm.group_id = i.group_id
                             AND gm.user_id <> i.sender
        ON CONFLICT DO NOTHING
    )
    SELECT (SELECT count(*) FROM ins),
           (SELECT count(*) FROM chat_persist_in_msgs)
    INTO stored, staged;

    duplicates := staged - stored;

    -- 2. what was not stored: a replay (its id is there), or a reused seq
    -- (it is not): the latter goes under the next free seq.  Only looked
    -- at when something was not stored, which is rare.  duplicates counts
    -- records, so a record twice in one batch counts once here.
    IF duplicates > 0 THEN
        FOR lost IN
            SELECT DISTINCT ON (s.conv, s.id) s.*
            FROM chat_persist_in_msgs s
            WHERE NOT EXISTS (SELECT 1 FROM messages m
                              WHERE m.conv = s.conv AND m.id = s.id)
            ORDER BY s.conv, s.id
        LOOP
            LOOP
                SELECT coalesce(max(m.seq), 0) + 1 INTO n
                FROM messages m WHERE m.conv = lost.conv;

                INSERT INTO messages (conv, seq, id, sender, recipient,
                                      group_id, body, media, e2e, client_id,
                                      ts)
                VALUES (lost.conv, n, lost.id, lost.sender, lost.recipient,
                        lost.group_id, lost.body, lost.media, lost.e2e,
                        lost.client_id, lost.ts)
                ON CONFLICT DO NOTHING;
                EXIT WHEN FOUND;
            END LOOP;

            INSERT INTO deliveries (recipient, conv, seq, ts)
            SELECT lost.recipient, lost.conv, n, lost.ts
            WHERE lost.recipient IS NOT NULL
            UNION ALL
            SELECT gm.user_id, lost.conv, n, lost.ts
            FROM group_members gm
            WHERE gm.group_id = lost.group_id AND gm.user_id <> lost.sender
            ON CONFLICT DO NOTHING;

            RAISE WARNING 'chat_persist_apply: message % of % stored as '
                          'seq % instead of % (seq reused)',
                          lost.id, lost.conv, n, lost.seq;
            resequenced := resequenced + 1;
            duplicates := duplicates - 1;
        END LOOP;
    END IF;

    -- 3. receipts parked earlier whose message is there now join this
    -- batch's receipts
    IF sweep THEN
        WITH moved AS (
            DELETE FROM pending_receipts p
            WHERE EXISTS (SELECT 1 FROM messages m
                          WHERE m.conv = p.conv AND m.id = p.id)
            RETURNING p.conv, p.id, p.recipient, p.delivered_ts, p.read_ts
        )
        INSERT INTO chat_persist_in_rcpts
        SELECT * FROM moved;
    ELSIF staged > 0 AND EXISTS (SELECT 1 FROM pending_receipts) THEN
        WITH moved AS (
            DELETE FROM pending_receipts p
            USING (SELECT DISTINCT s.conv, s.id
                   FROM chat_persist_in_msgs s) s
            WHERE p.conv = s.conv AND p.id = s.id
            RETURNING p.conv, p.id, p.recipient, p.delivered_ts, p.read_ts
        )
        INSERT INTO chat_persist_in_rcpts
        SELECT * FROM moved;
    END IF;

    -- 4. receipts: merged per message and recipient (the earliest time of
    -- each kind), applied so that state only moves forward (sent <
    -- delivered < read; read implies delivered) and times keep the earliest
    -- report.  A replay changes nothing.  Receipts of messages not stored
    -- yet are parked.  A receipt by someone who is not a recipient of the
    -- message matches no delivery row and is dropped.
    receipts := 0;
    pending := 0;

    IF NOT EXISTS (SELECT 1 FROM chat_persist_in_rcpts) THEN
        RETURN;
    END IF;

    WITH agg AS (
        SELECT r.conv, r.id, r.recipient,
               min(r.delivered_ts) AS delivered_ts,
               min(r.read_ts) AS read_ts
        FROM chat_persist_in_rcpts r
        GROUP BY r.conv, r.id, r.recipient
    ), tgt AS (
        SELECT a.*, m.seq
        FROM agg a
        LEFT JOIN messages m ON m.conv = a.conv AND m.id = a.id
    ), upd AS (
        UPDATE deliveries d
        SET state = CASE WHEN d.state = 'read' OR t.read_ts IS NOT NULL
                         THEN 'read' ELSE 'delivered' END,
            delivered_at = least(d.delivered_at, t.delivered_ts),
            read_at = least(d.read_at, t.read_ts)
        FROM tgt t
        WHERE t.seq IS NOT NULL
          AND d.recipient = t.recipient AND d.conv = t.conv
          AND d.seq = t.seq
          AND (d.state = 'sent'
               OR (d.state = 'delivered' AND t.read_ts IS NOT NULL)
               OR d.delivered_at IS DISTINCT FROM
                  least(d.delivered_at, t.delivered_ts)
               OR d.read_at IS DISTINCT FROM least(d.read_at, t.read_ts))
        RETURNING 1
    ), park AS (
        INSERT INTO pending_receipts AS p (conv, id, recipient, delivered_ts,
                                           read_ts)
        SELECT t.conv, t.id, t.recipient, t.delivered_ts, t.read_ts
        FROM tgt t
        WHERE t.seq IS NULL
        ON CONFLICT ON CONSTRAINT pending_receipts_pkey DO UPDATE
            SET delivered_ts = least(p.delivered_ts, excluded.delivered_ts),
                read_ts = least(p.read_ts, excluded.read_ts)
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM upd), (SELECT count(*) FROM park)
    INTO receipts, pending;
END
$$;


-- --- history: GET /v1/messages ----------------------------------------------

-- The status of a message as its sender sees it, as JSON members:
-- {"status"} for one-to-one (the recipient's delivery row), and for groups
-- also {"delivered_count","read_count"} over the delivery rows of the
-- group's current members (those who joined later have none and are not
-- counted; a message nobody else was there to receive stays "sent").
CREATE FUNCTION chat_message_json(m messages) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT json_strip_nulls(json_build_object(
        'id', m.id,
        'seq', m.seq,
        'from', m.sender,
        CASE WHEN m.group_id IS NULL THEN 'to' ELSE 'group' END,
            coalesce(m.recipient, m.group_id),
        'body', m.body,
        'media', m.media,
        'e2e', CASE WHEN m.e2e THEN true END,
        'client_id', m.client_id,
        'ts', m.ts,
        'status', s.status,
        'delivered_count', s.delivered_count,
        'read_count', s.read_count))
    FROM (SELECT coalesce((SELECT d.state FROM deliveries d
                           WHERE d.recipient = m.recipient
                             AND d.conv = m.conv AND d.seq = m.seq),
                          'sent') AS status,
                 NULL::bigint AS delivered_count, NULL::bigint AS read_count
          WHERE m.group_id IS NULL
          UNION ALL
          SELECT CASE WHEN g.n > 0 AND g.r = g.n THEN 'read'
                      WHEN g.n > 0 AND g.dl = g.n THEN 'delivered'
                      ELSE 'sent' END,
                 g.dl, g.r
          FROM (SELECT count(*) AS n,
                       count(*) FILTER (WHERE d.state <> 'sent') AS dl,
                       count(*) FILTER (WHERE d.state = 'read') AS r
                FROM group_members gm
                JOIN deliveries d ON d.recipient = gm.user_id
                                 AND d.conv = m.conv AND d.seq = m.seq
                WHERE gm.group_id = m.group_id) g
          WHERE m.group_id IS NOT NULL) s
$$;

-- GET /v1/messages: the caller's conversation with user `peer`, or group
-- `gid` (exactly one of them is not NULL), newest first, seq < before
-- (NULL: from the newest), at most lim (1..100) messages:
--   {"messages":[...],"next_before":<seq of the oldest one>|null}
-- next_before is null when nothing older exists.  A group that does not
-- exist is a not_found error object, one the caller is not a member of a
-- forbidden one.  A user the caller never talked to (or no such user) has
-- an empty conversation.
CREATE FUNCTION chat_history_json(me bigint, peer bigint, gid bigint,
                                  before bigint, lim int) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    c  text;
BEGIN
    IF gid IS NOT NULL THEN
        IF NOT EXISTS (SELECT 1 FROM groups g WHERE g.id = gid) THEN
            RETURN chat_error_json('not_found', 'no such group');
        END IF;
        IF NOT EXISTS (SELECT 1 FROM group_members m
                       WHERE m.group_id = gid AND m.user_id = me) THEN
            RETURN chat_error_json('forbidden', 'not a member of this group');
        END IF;
        c := 'g:' || gid;
    ELSE
        c := 'd:' || least(me, peer) || ':' || greatest(me, peer);
    END IF;

    RETURN (
        SELECT row_to_json(r)
        FROM (SELECT coalesce(array_to_json(array_agg(p.obj
                                                      ORDER BY p.seq DESC)
                                            FILTER (WHERE p.rn <= lim)),
                              '[]') AS messages,
                     CASE WHEN count(*) > lim
                          THEN min(p.seq) FILTER (WHERE p.rn <= lim)
                     END AS next_before
              FROM (SELECT q.seq, q.obj,
                           row_number() OVER (ORDER BY q.seq DESC) AS rn
                    FROM (SELECT m.seq, chat_message_json(m) AS obj
                          FROM messages m
                          WHERE m.conv = c
                            AND m.seq < coalesce(before,
                                                 9223372036854775807)
                          ORDER BY m.seq DESC
                          LIMIT lim + 1) q) p) r);
END
$$;
