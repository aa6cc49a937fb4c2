-- 0013_search_api.sql — GET /v1/search (issue #17): the one query of a
-- search, over the index of sql/0012_search.sql.
--
-- Applied by scripts/migrate inside one transaction together with its row in
-- schema_migrations: no BEGIN/COMMIT here.

-- A page of me's search: messages that match q (words, in the index's
-- language, all of them: plainto_tsquery) or tokens (an e2e message's
-- blind-index terms, all of them), in the conversations me belongs to
-- now: a one-to-one conversation of me's, or a group me is a member of,
-- from when me joined (a member who left finds nothing of it any more).
-- Ranked by relevance (ts_rank; 0 for tokens), then newest first; the
-- page after the cursor (c_rank, c_ts, c_conv, c_seq: the last result of
-- the page before, all NULL for the first page).  Answers
--   {"results":[{<the message object, as in the history>,
--                "conv":"d:1:2","snippet":"..<b>word</b>.."|null,
--                "rank":0.06}...],
--    "next_before":"<cursor>"|null}
-- where next_before, there when the page is full, is the last result's
-- "rank|ts|conv|seq" in base64url (the gateway reads it back, checks it
-- and passes its parts as c_rank, c_ts, c_conv, c_seq).  PL/pgSQL, so
-- that its plan is kept per session: as an SQL function it was planned on
-- every call (the join with messages' 16 partitions: most of a search's
-- time on a small table).  A hit whose message is not
-- stored yet (the index may be ahead of the persist worker) is left out.
-- The hits of a search in me's conversations: by the words of tsq, or
-- (tsq NULL) by all of toks.  PL/pgSQL, so that each kind of search has a
-- statement of its own whose plan starts from the caller's conversations
-- (btree) and combines them with the GIN index, not an OR that no plan
-- can use an index for.
CREATE FUNCTION chat_search_hits(me bigint, tsq tsquery, toks text[])
RETURNS TABLE (conv text, seq bigint, ts bigint, rank real)
LANGUAGE plpgsql STABLE ROWS 50 AS $$
BEGIN
    IF tsq IS NOT NULL THEN
        RETURN QUERY
        SELECT s.conv, s.seq, s.ts, ts_rank(s.doc, tsq)::real
        FROM message_search s
        WHERE s.sender = me AND s.recipient IS NOT NULL AND s.doc @@ tsq
        UNION ALL
        SELECT s.conv, s.seq, s.ts, ts_rank(s.doc, tsq)::real
        FROM message_search s
        WHERE s.recipient = me AND s.sender <> me AND s.doc @@ tsq
        UNION ALL
        SELECT s.conv, s.seq, s.ts, ts_rank(s.doc, tsq)::real
        FROM group_members gm
        JOIN message_search s ON s.group_id = gm.group_id
                             AND s.ts >= chat_ms(gm.joined_at)
        WHERE gm.user_id = me AND s.doc @@ tsq;
    ELSE
        RETURN QUERY
        SELECT s.conv, s.seq, s.ts, 0::real
        FROM message_search s
        WHERE s.sender = me AND s.recipient IS NOT NULL AND s.tokens @> toks
        UNION ALL
        SELECT s.conv, s.seq, s.ts, 0::real
        FROM message_search s
        WHERE s.recipient = me AND s.sender <> me AND s.tokens @> toks
        UNION ALL
        SELECT s.conv, s.seq, s.ts, 0::real
        FROM group_members gm
        JOIN message_search s ON s.group_id = gm.group_id
                             AND s.ts >= chat_ms(gm.joined_at)
        WHERE gm.user_id = me AND s.tokens @> toks;
    END IF;
END
$$;

CREATE FUNCTION chat_search_json(me bigint, q text, toks text[], lim int,
                                 c_rank real, c_ts bigint, c_conv text,
                                 c_seq bigint)
RETURNS json
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (
    WITH cfg AS (
        SELECT c.language,
               CASE WHEN $2 IS NULL THEN NULL
                    ELSE plainto_tsquery(c.language, $2) END AS tsq
        FROM search_config c
    ),
    hits AS (
        SELECT h.*
        FROM cfg, chat_search_hits($1, cfg.tsq, $3) h
    ),
    page AS (
        -- each hit's stored message by its key (LATERAL: an index
        -- lookup per hit, never a scan of messages)
        SELECT h.*, x.m
        FROM hits h
        CROSS JOIN LATERAL (SELECT m FROM messages m
                            WHERE m.conv = h.conv AND m.seq = h.seq) x
        WHERE $5 IS NULL
           OR (h.rank, h.ts, h.conv, h.seq) < ($5, $6, $7, $8)
        ORDER BY h.rank DESC, h.ts DESC, h.conv DESC, h.seq DESC
        LIMIT $4
    ),
    shaped AS (
        SELECT p.rank, p.ts, p.conv, p.seq,
               (chat_message_json(p.m)::jsonb || jsonb_build_object(
                   'conv', p.conv,
                   'snippet', CASE WHEN (p.m).e2e OR cfg.tsq IS NULL
                                   THEN NULL
                                   ELSE ts_headline(cfg.language, (p.m).body,
                                                    cfg.tsq,
                                                    'StartSel=<b>, '
                                                    'StopSel=</b>, '
                                                    'MaxWords=24, '
                                                    'MinWords=8, '
                                                    'MaxFragments=2') END,
                   'rank', p.rank))::json AS obj
        FROM page p, cfg
    )
    SELECT json_build_object(
        'results', coalesce((SELECT json_agg(s.obj ORDER BY s.rank DESC,
                                             s.ts DESC, s.conv DESC,
                                             s.seq DESC)
                             FROM shaped s), '[]'::json),
        'next_before', (SELECT CASE WHEN count(*) = $4 THEN
                            (SELECT translate(rtrim(replace(encode(
                                        convert_to(s.rank::text || '|'
                                                   || s.ts || '|' || s.conv
                                                   || '|' || s.seq, 'UTF8'),
                                        'base64'), E'\n', ''), '='),
                                        '+/', '-_')
                             FROM shaped s
                             ORDER BY s.rank, s.ts, s.conv, s.seq
                             LIMIT 1)
                        END
                 FROM shaped))
    );
END
$$;
