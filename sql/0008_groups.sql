-- 0008_groups.sql — group chat (issue #14) in PostgreSQL: a group message
-- is stored once, with no delivery row per member; per member and group a
-- POSITION (group_positions) says how far its devices got.  Receipts of
-- group messages move positions, GET /v1/messages counts from them,
-- GET /v1/messages/{id}/receipts lists them for the sender, and
-- chat_group_backlog() is the gateway's fallback for a member's offline
-- backlog (docs/ARCHITECTURE.md, "Storage layout").
--
-- Applied by scripts/migrate inside one transaction together with its row in
-- schema_migrations: no BEGIN/COMMIT here.
--
-- Why positions: a delivery row per member per message is 1,000 rows for
-- one message in a group of 1,000, and a row rewrite for each of its 2,000
-- receipts.  Clients receive a group's messages in seq order and
-- acknowledge what they receive, so one (delivered_seq, read_seq) pair per
-- member says the same thing for every message at once, approximately:
--
--   a member's delivered_seq (read_seq) at s means that every message of
--   the group with seq <= s sent while it was a member reached (was read
--   on) one of its devices.
--
-- A receipt for seq s by member u moves u's positions to greatest(old, s)
-- ("read" moves both: read implies delivered); *_at is the ts of the
-- receipt that last moved the position.  Replayed and out-of-order
-- receipts change nothing.  A receipt needs no parking: the record carries
-- the message's seq.  A receipt by someone who is not a member changes
-- nothing.  A receipt by a member for a message sent before it joined
-- cannot move it past anything that counts: a new member's position
-- starts at the group's newest stored seq (below), and the messages that
-- count for it (sent after it joined) all have a greater seq.
--
-- Counts of message m (seq s, sender f, ts t): over the CURRENT members
-- other than f who joined at or before t (in ms), delivered_count = those
-- with delivered_seq >= s, read_count = read_seq >= s; status 'read' when
-- read_count is all of them (and they are some), 'delivered' when
-- delivered_count is, else 'sent'.  joined_at is PostgreSQL's clock, ts
-- the gateway's: a member added within the clock skew of a message may be
-- counted for it or not.


-- --- tables ------------------------------------------------------------------

-- No foreign key to group_members: the persist worker must never fail a
-- batch on a member that left while the batch ran (it only writes rows of
-- members it sees; one that leaves at that very moment may keep a row
-- nobody reads: every reader joins group_members, and a member added
-- again starts over, see chat_group_positions_join()).
CREATE TABLE group_positions (
    group_id       bigint  NOT NULL,
    user_id        bigint  NOT NULL,
    delivered_seq  bigint  NOT NULL DEFAULT 0,
    delivered_at   bigint,                  -- ms, the receipt's ts
    read_seq       bigint  NOT NULL DEFAULT 0,
    read_at        bigint,
    CONSTRAINT group_positions_pkey PRIMARY KEY (group_id, user_id),
    CONSTRAINT group_positions_read_check CHECK (read_seq <= delivered_seq)
);


-- --- indexes -----------------------------------------------------------------

-- A message by its id alone (GET /v1/messages/{id}/receipts): messages is
-- partitioned by conv, so this is one probe per partition.  Not unique
-- (a unique index must contain the partition key; UNIQUE (conv, id) and
-- the gateway making ids unique are what hold).
CREATE INDEX messages_id_idx ON messages (id);


-- --- what was there before ---------------------------------------------------

-- Group messages stored by 0003's chat_persist_apply had a delivery row per
-- member: their furthest delivered/read rows become the member's
-- positions, then the rows (and their index) go.  Receipts parked for
-- group messages are applied by the next sweep like any (their message's
-- seq is looked up then).
INSERT INTO group_positions (group_id, user_id, delivered_seq, delivered_at,
                             read_seq, read_at)
SELECT gm.group_id, gm.user_id,
       coalesce(max(d.seq) FILTER (WHERE d.state <> 'sent'), 0),
       (array_agg(d.delivered_at ORDER BY d.seq DESC)
            FILTER (WHERE d.state <> 'sent'))[1],
       coalesce(max(d.seq) FILTER (WHERE d.state = 'read'), 0),
       (array_agg(d.read_at ORDER BY d.seq DESC)
            FILTER (WHERE d.state = 'read'))[1]
FROM deliveries d
JOIN group_members gm ON d.conv = 'g:' || gm.group_id
                     AND gm.user_id = d.recipient
WHERE d.conv LIKE 'g:%'
GROUP BY gm.group_id, gm.user_id;

DELETE FROM deliveries d WHERE d.conv LIKE 'g:%';

DROP INDEX deliveries_group_msg_idx;


-- --- membership --------------------------------------------------------------

-- A member who joins (group created, member added) starts at the newest
-- seq the group has stored: nothing sent before it joined is owed to it,
-- and chat_group_backlog() need not scan the history before it.  Messages
-- acknowledged but not stored yet have a greater seq and a ts before
-- joined_at: the ts tells them apart.  A row left by an earlier
-- membership is overwritten.
CREATE FUNCTION chat_group_positions_join() RETURNS trigger
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    top  bigint := chat_seq_top('g:' || NEW.group_id);
BEGIN
    INSERT INTO group_positions AS p (group_id, user_id, delivered_seq,
                                      read_seq)
    VALUES (NEW.group_id, NEW.user_id, top, top)
    ON CONFLICT ON CONSTRAINT group_positions_pkey DO UPDATE
        SET delivered_seq = excluded.delivered_seq, delivered_at = NULL,
            read_seq = excluded.read_seq, read_at = NULL;
    RETURN NULL;
END
$$;

CREATE TRIGGER group_members_positions_join
    AFTER INSERT ON group_members
    FOR EACH ROW EXECUTE FUNCTION chat_group_positions_join();

-- A member who leaves (removed, left, its account or the group deleted)
-- takes its position along: it is no longer counted anywhere.
CREATE FUNCTION chat_group_positions_leave() RETURNS trigger
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    DELETE FROM group_positions p
    WHERE p.group_id = OLD.group_id AND p.user_id = OLD.user_id;
    RETURN NULL;
END
$$;

CREATE TRIGGER group_members_positions_leave
    AFTER DELETE ON group_members
    FOR EACH ROW EXECUTE FUNCTION chat_group_positions_leave();


-- --- the persistence worker ------------------------------------------------

-- The receipts' staging table gains the message's seq (the record's
-- "seq"), the last column: chat-worker persist names the columns it
-- copies.  The worker asks for the layout it writes, 2 here; an older
-- worker (which calls chat_persist_prepare() and copies 5 columns) is
-- refused when it connects, so it retries and writes nothing until it is
-- replaced, instead of sending receipts to the dead-letter topic.  One
-- still connected from before fails its batches with receipts (the
-- column is missing) the same way.
CREATE OR REPLACE FUNCTION chat_persist_prepare() RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RAISE EXCEPTION 'chat-worker persist is older than the schema '
                    '(sql/0008_groups.sql): install the new one';
END
$$;

CREATE FUNCTION chat_persist_prepare(layout int) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF layout IS DISTINCT FROM 2 THEN
        RAISE EXCEPTION 'chat_persist_prepare: layout % is not 2', layout;
    END IF;

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
    -- "read" receipt (NULL for "delivered"), seq the message's (NULL for
    -- a receipt parked by an earlier version: looked up)
    CREATE TEMP TABLE IF NOT EXISTS chat_persist_in_rcpts (
        conv          text COLLATE "C",
        id            text COLLATE "C",
        recipient     bigint,
        delivered_ts  bigint,
        read_ts       bigint,
        seq           bigint
    ) ON COMMIT DELETE ROWS;
END
$$;

-- As in 0003, but group messages get no delivery rows, and group receipts
-- (conv 'g:...') move positions instead of parking or updating rows:
--   receipts  delivery rows and positions that changed
--   pending   one-to-one receipts kept for a message not stored yet
CREATE OR REPLACE FUNCTION chat_persist_apply(sweep boolean,
    OUT stored int, OUT duplicates int, OUT resequenced int,
    OUT receipts int, OUT pending int)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    staged  int;
    moved1  int;
    moved2  int;
    lost    record;
    n       bigint;
BEGIN
    resequenced := 0;

    -- 1. messages, and a delivery row ('sent') for the recipient of a
    -- one-to-one message.  DO NOTHING without a target covers both keys:
    -- (conv, id) for a replay, (conv, seq) for a reused seq (handled
    -- below), also between two rows of the batch.  Sorted by key so that
    -- index insertions stay close together.
    WITH ins AS (
        INSERT INTO messages (conv, seq, id, sender, recipient, group_id,
                              body, media, e2e, client_id, ts)
        SELECT s.conv, s.seq, s.id, s.sender, s.recipient, s.group_id,
               s.body, s.media, s.e2e, s.client_id, s.ts
        FROM chat_persist_in_msgs s
        ORDER BY s.conv, s.seq
        ON CONFLICT DO NOTHING
        RETURNING conv, seq, recipient, ts
    ), dl AS (
        INSERT INTO deliveries (recipient, conv, seq, ts)
        SELECT i.recipient, i.conv, i.seq, i.ts
        FROM ins i WHERE i.recipient IS NOT NULL
        ON CONFLICT DO NOTHING
    )
    SELECT (SELECT count(*) FROM ins),
           (SELECT count(*) FROM chat_persist_in_msgs)
    INTO stored, staged;

    duplicates := staged - stored;

    -- 2. what was not stored: a replay (its id is there), or a reused seq
    -- (it is not): the latter goes under the next free seq.
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
            ON CONFLICT DO NOTHING;

            RAISE WARNING 'chat_persist_apply: message % of % stored as '
                          'seq % instead of % (seq reused)',
                          lost.id, lost.conv, n, lost.seq;
            resequenced := resequenced + 1;
            duplicates := duplicates - 1;
        END LOOP;
    END IF;

    -- 3. receipts parked earlier whose message is there now join this
    -- batch's receipts (seq NULL: looked up below where needed)
    IF sweep THEN
        WITH moved AS (
            DELETE FROM pending_receipts p
            WHERE EXISTS (SELECT 1 FROM messages m
                          WHERE m.conv = p.conv AND m.id = p.id)
            RETURNING p.conv, p.id, p.recipient, p.delivered_ts, p.read_ts
        )
        INSERT INTO chat_persist_in_rcpts (conv, id, recipient,
                                           delivered_ts, read_ts)
        SELECT * FROM moved;
    ELSIF staged > 0 AND EXISTS (SELECT 1 FROM pending_receipts) THEN
        WITH moved AS (
            DELETE FROM pending_receipts p
            USING (SELECT DISTINCT s.conv, s.id
                   FROM chat_persist_in_msgs s) s
            WHERE p.conv = s.conv AND p.id = s.id
            RETURNING p.conv, p.id, p.recipient, p.delivered_ts, p.read_ts
        )
        INSERT INTO chat_persist_in_rcpts (conv, id, recipient,
                                           delivered_ts, read_ts)
        SELECT * FROM moved;
    END IF;

    receipts := 0;
    pending := 0;

    IF NOT EXISTS (SELECT 1 FROM chat_persist_in_rcpts) THEN
        RETURN;
    END IF;

    -- 4. one-to-one receipts, as in 0003: merged per message and
    -- recipient (the earliest time of each kind), state only forward,
    -- times keep the earliest report; receipts of messages not stored yet
    -- are parked; a receipt by someone who is not the recipient matches no
    -- delivery row and is dropped.
    WITH agg AS (
        SELECT r.conv, r.id, r.recipient,
               min(r.delivered_ts) AS delivered_ts,
               min(r.read_ts) AS read_ts
        FROM chat_persist_in_rcpts r
        WHERE r.conv NOT LIKE 'g:%'
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
    INTO moved1, pending;

    -- 5. group receipts move positions, merged per member first: the
    -- greatest seq of each kind, with the ts of (the earliest receipt at)
    -- that seq.  Only members' rows are written; a position only moves
    -- forward.  Sorted by key, like the messages.
    WITH gr AS (
        SELECT substr(r.conv, 3)::bigint AS gid, r.recipient AS uid,
               r.delivered_ts, r.read_ts,
               coalesce(r.seq, (SELECT m.seq FROM messages m
                                WHERE m.conv = r.conv AND m.id = r.id)) AS seq
        FROM chat_persist_in_rcpts r
        WHERE r.conv LIKE 'g:%'
    ), agg AS (
        SELECT g.gid, g.uid,
               max(g.seq) AS dseq,
               (array_agg(g.delivered_ts
                          ORDER BY g.seq DESC, g.delivered_ts))[1] AS dts,
               coalesce(max(g.seq) FILTER (WHERE g.read_ts IS NOT NULL), 0)
                   AS rseq,
               (array_agg(g.read_ts ORDER BY g.seq DESC, g.read_ts)
                    FILTER (WHERE g.read_ts IS NOT NULL))[1] AS rts
        FROM gr g
        WHERE g.seq IS NOT NULL
        GROUP BY g.gid, g.uid
    ), up AS (
        INSERT INTO group_positions AS p (group_id, user_id, delivered_seq,
                                          delivered_at, read_seq, read_at)
        SELECT a.gid, a.uid, a.dseq, a.dts, a.rseq, a.rts
        FROM agg a
        JOIN group_members gm ON gm.group_id = a.gid AND gm.user_id = a.uid
        ORDER BY a.gid, a.uid
        ON CONFLICT ON CONSTRAINT group_positions_pkey DO UPDATE
            SET delivered_seq = greatest(p.delivered_seq,
                                         excluded.delivered_seq),
                delivered_at = CASE
                    WHEN excluded.delivered_seq > p.delivered_seq
                    THEN excluded.delivered_at ELSE p.delivered_at END,
                read_seq = greatest(p.read_seq, excluded.read_seq),
                read_at = CASE
                    WHEN excluded.read_seq > p.read_seq
                    THEN excluded.read_at ELSE p.read_at END
            WHERE excluded.delivered_seq > p.delivered_seq
               OR excluded.read_seq > p.read_seq
        RETURNING 1
    )
    SELECT count(*) INTO moved2 FROM up;

    receipts := moved1 + moved2;
END
$$;


-- --- counts and the message object ------------------------------------------

-- ms since the epoch of a timestamptz, as the records have times
CREATE FUNCTION chat_ms(t timestamptz) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
    SELECT floor(extract(epoch FROM t) * 1000)::bigint
$$;

-- The members a group message counts (see the top): the current members
-- but its sender who joined at or before its ts, with their positions.
CREATE FUNCTION chat_group_audience(gid bigint, sender bigint, ts bigint)
RETURNS TABLE (user_id bigint, delivered_seq bigint, delivered_at bigint,
               read_seq bigint, read_at bigint)
LANGUAGE sql STABLE AS $$
    SELECT gm.user_id, coalesce(p.delivered_seq, 0), p.delivered_at,
           coalesce(p.read_seq, 0), p.read_at
    FROM group_members gm
    LEFT JOIN group_positions p ON p.group_id = gm.group_id
                               AND p.user_id = gm.user_id
    WHERE gm.group_id = $1 AND gm.user_id <> $2
      AND chat_ms(gm.joined_at) <= $3
$$;

-- status from the counts of n members
CREATE FUNCTION chat_group_status(n bigint, dl bigint, r bigint)
RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN n > 0 AND r = n THEN 'read'
                WHEN n > 0 AND dl = n THEN 'delivered'
                ELSE 'sent' END
$$;

-- The message object of the API with the given status and counts (NULL:
-- left out), members in the order of docs/API.md.
CREATE FUNCTION chat_message_obj(m messages, status text,
                                 delivered_count bigint, read_count bigint)
RETURNS json
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
        'status', status,
        'delivered_count', delivered_count,
        'read_count', read_count))
$$;

-- As in 0003, with a group message's counts from the positions.
CREATE OR REPLACE FUNCTION chat_message_json(m messages) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT chat_message_obj(m, s.status, s.dl, s.r)
    FROM (SELECT coalesce((SELECT d.state FROM deliveries d
                           WHERE d.recipient = m.recipient
                             AND d.conv = m.conv AND d.seq = m.seq),
                          'sent') AS status,
                 NULL::bigint AS dl, NULL::bigint AS r
          WHERE m.group_id IS NULL
          UNION ALL
          SELECT chat_group_status(g.n, g.dl, g.r), g.dl, g.r
          FROM (SELECT count(*) AS n,
                       count(*) FILTER (WHERE a.delivered_seq >= m.seq)
                           AS dl,
                       count(*) FILTER (WHERE a.read_seq >= m.seq) AS r
                FROM chat_group_audience(m.group_id, m.sender, m.ts) a) g
          WHERE m.group_id IS NOT NULL) s
$$;

-- As in 0003; a group's page reads the members and their positions once
-- for all its messages instead of once per message.
CREATE OR REPLACE FUNCTION chat_history_json(me bigint, peer bigint,
                                             gid bigint, before bigint,
                                             lim int) RETURNS json
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
        WITH page AS MATERIALIZED (
            SELECT m
            FROM messages m
            WHERE m.conv = c
              AND m.seq < coalesce(before, 9223372036854775807)
            ORDER BY m.seq DESC
            LIMIT lim + 1
        ), mem AS MATERIALIZED (
            SELECT gm.user_id, chat_ms(gm.joined_at) AS joined,
                   coalesce(p.delivered_seq, 0) AS dseq,
                   coalesce(p.read_seq, 0) AS rseq
            FROM group_members gm
            LEFT JOIN group_positions p ON p.group_id = gm.group_id
                                       AND p.user_id = gm.user_id
            WHERE gid IS NOT NULL AND gm.group_id = gid
        ), objs AS (
            SELECT (pg.m).seq AS seq,
                   CASE WHEN gid IS NULL THEN chat_message_json(pg.m)
                   ELSE chat_message_obj(pg.m,
                                         chat_group_status(g.n, g.dl, g.r),
                                         g.dl, g.r)
                   END AS obj
            FROM page pg
            LEFT JOIN LATERAL (
                SELECT count(*) AS n,
                       count(*) FILTER (WHERE x.dseq >= (pg.m).seq) AS dl,
                       count(*) FILTER (WHERE x.rseq >= (pg.m).seq) AS r
                FROM mem x
                WHERE x.user_id <> (pg.m).sender AND x.joined <= (pg.m).ts
            ) g ON gid IS NOT NULL
        )
        SELECT row_to_json(r)
        FROM (SELECT coalesce(array_to_json(array_agg(p.obj
                                                      ORDER BY p.seq DESC)
                                            FILTER (WHERE p.rn <= lim)),
                              '[]') AS messages,
                     CASE WHEN count(*) > lim
                          THEN min(p.seq) FILTER (WHERE p.rn <= lim)
                     END AS next_before
              FROM (SELECT o.seq, o.obj,
                           row_number() OVER (ORDER BY o.seq DESC) AS rn
                    FROM objs o) p) r);
END
$$;


-- --- GET /v1/messages/{id}/receipts ------------------------------------------

-- For the sender of message `mid`: {"receipts":[{"user_id","status","ts"}]}.
-- A group message: one entry per member it counts (see the top), by user
-- id, status from the positions, ts the time the member's position last
-- moved (at or after this message reached it: positions keep no time per
-- message), null while 'sent'.  A one-to-one message: one entry, the
-- recipient's delivery row.  No such message (or a malformed id): a
-- not_found error object; a message of someone else: forbidden.
CREATE FUNCTION chat_receipts_json(me bigint, mid text) RETURNS json
LANGUAGE plpgsql STABLE AS $$
DECLARE
    m  messages;
BEGIN
    SELECT * INTO m FROM messages x WHERE x.id = mid COLLATE "C" LIMIT 1;

    IF NOT FOUND THEN
        RETURN chat_error_json('not_found', 'no such message');
    END IF;
    IF m.sender <> me THEN
        RETURN chat_error_json('forbidden',
                               'only the sender sees the receipts of a '
                               'message');
    END IF;

    -- compact JSON, as the history's: row_to_json, array_to_json
    RETURN (
        SELECT row_to_json(o)
        FROM (SELECT coalesce(array_to_json(array_agg(e ORDER BY e.user_id)),
                              '[]') AS receipts
              FROM (SELECT m.recipient AS user_id,
                           coalesce(d.state, 'sent') AS status,
                           CASE d.state WHEN 'read' THEN d.read_at
                                        WHEN 'delivered' THEN d.delivered_at
                           END AS ts
                    FROM (SELECT 1) one
                    LEFT JOIN deliveries d ON d.recipient = m.recipient
                                          AND d.conv = m.conv
                                          AND d.seq = m.seq
                    WHERE m.group_id IS NULL
                    UNION ALL
                    SELECT a.user_id,
                           CASE WHEN a.read_seq >= m.seq THEN 'read'
                                WHEN a.delivered_seq >= m.seq
                                THEN 'delivered'
                                ELSE 'sent' END,
                           CASE WHEN a.read_seq >= m.seq THEN a.read_at
                                WHEN a.delivered_seq >= m.seq
                                THEN a.delivered_at END
                    FROM chat_group_audience(m.group_id, m.sender, m.ts) a
                    WHERE m.group_id IS NOT NULL) e) o);
END
$$;


-- --- the gateway: a member's backlog ------------------------------------------

-- The messages of group gid that member uid is still owed, oldest first,
-- at most lim: seq > greatest(after_seq, its delivered position) and sent
-- since it joined (ts >= joined_at in ms).  Nothing for a non-member.
-- frame is the message as members get it, without status or counts:
-- {"type":"message","id","seq","from","group","body","client_id","ts",
--  "media"?,"e2e"?}.  One forward range scan of the group's primary key
-- from the position (which starts at the group's top when it joins).
CREATE FUNCTION chat_group_backlog(uid bigint, gid bigint, after_seq bigint,
                                   lim int)
RETURNS TABLE (seq bigint, id text, sender bigint, frame json)
LANGUAGE sql STABLE AS $$
    SELECT m.seq, m.id, m.sender,
           json_strip_nulls(json_build_object(
               'type', 'message',
               'id', m.id,
               'seq', m.seq,
               'from', m.sender,
               'group', m.group_id,
               'body', m.body,
               'client_id', m.client_id,
               'ts', m.ts,
               'media', m.media,
               'e2e', CASE WHEN m.e2e THEN true END))
    FROM group_members gm
    LEFT JOIN group_positions p ON p.group_id = gm.group_id
                               AND p.user_id = gm.user_id
    CROSS JOIN LATERAL (
        SELECT x.*
        FROM messages x
        WHERE x.conv = ('g:' || gm.group_id) COLLATE "C"
          AND x.seq > greatest(coalesce($3, 0),
                               coalesce(p.delivered_seq, 0))
          AND x.ts >= chat_ms(gm.joined_at)
        ORDER BY x.seq
        LIMIT greatest($4, 0)) m
    WHERE gm.group_id = $2 AND gm.user_id = $1
    ORDER BY m.seq
$$;


-- --- retention ---------------------------------------------------------------

-- As in 0005, with "every recipient has it" for a group message read from
-- the positions: every member it counts (see the top) has delivered_seq
-- >= its seq, and it counts at least one (a message nobody else was
-- there to receive is only removed by the TTL).  A member who left is no
-- longer waited for; one who joined later never was.  Once done, a
-- message stays done but for a member added afterwards with an earlier
-- joined_at, which cannot happen.  Group messages have no delivery rows,
-- so delivery_rows counts one-to-one rows only.
CREATE OR REPLACE FUNCTION chat_cleanup_messages(after_conv text,
    after_seq bigint, lim int, ttl_ms bigint,
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
        SELECT m.conv, m.seq, m.recipient, m.group_id, m.sender, m.ts
        FROM messages m
        WHERE (m.conv, m.seq) > (coalesce(after_conv, ''),
                                 coalesce(after_seq, 0))
        ORDER BY m.conv, m.seq
        LIMIT lim
    ), mem AS MATERIALIZED (
        -- the members and positions of the window's groups, read once
        SELECT gm.group_id, gm.user_id, chat_ms(gm.joined_at) AS joined,
               coalesce(p.delivered_seq, 0) AS dseq
        FROM (SELECT DISTINCT w.group_id FROM win w
              WHERE w.group_id IS NOT NULL) wg
        JOIN group_members gm ON gm.group_id = wg.group_id
        LEFT JOIN group_positions p ON p.group_id = gm.group_id
                                   AND p.user_id = gm.user_id
    ), cand AS MATERIALIZED (
        -- done: one-to-one, the recipient's row (one primary key probe);
        -- group, no member it counts without it, and some member
        SELECT w.conv, w.seq, w.recipient, w.ts,
               CASE WHEN w.recipient IS NOT NULL THEN
                   coalesce((SELECT d.state <> 'sent'
                             FROM deliveries d
                             WHERE d.recipient = w.recipient
                               AND d.conv = w.conv AND d.seq = w.seq),
                            false)
               ELSE
                   NOT EXISTS (SELECT 1 FROM mem x
                               WHERE x.group_id = w.group_id
                                 AND x.user_id <> w.sender
                                 AND x.joined <= w.ts
                                 AND x.dseq < w.seq)
                   AND EXISTS (SELECT 1 FROM mem x
                               WHERE x.group_id = w.group_id
                                 AND x.user_id <> w.sender
                                 AND x.joined <= w.ts)
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
           (SELECT count(*) FROM dd1),
           (SELECT w.conv FROM win w
            ORDER BY w.conv DESC, w.seq DESC LIMIT 1),
           (SELECT w.seq FROM win w
            ORDER BY w.conv DESC, w.seq DESC LIMIT 1)
    INTO scanned, delivered, expired, delivery_rows, last_conv, last_seq;
END
$$;
