-- 0011_media_get.sql — chat_media_get() (sql/0009_media.sql) again, in
-- PL/pgSQL and with the uploader in its answer (issue #15).
--
-- Applied by scripts/migrate inside one transaction together with its row in
-- schema_migrations: no BEGIN/COMMIT here.
--
-- Why: a download asks it once per request, and as one SQL statement it
-- was planned on every call: with a user, the EXISTS over the messages'
-- 16 hash partitions (4 indexes each) took 1.3 ms of planning for a
-- 0.1 ms lookup (docs/BENCHMARKS.md, "Images").  PL/pgSQL keeps the plans
-- of its statements for the session, and the uploader is answered without
-- the EXISTS.  The gateway keeps what it learns per worker
-- (ngx_chat_media_cache.c), so that the uploader and signed URLs need no
-- query at all for an id it has seen.

DROP FUNCTION chat_media_get(text, bigint);

-- The stored content of media p_id and its uploader, if p_user may see it
-- (the same rule as before: its uploader, or a recipient of a message its
-- uploader sent with it; p_user NULL: anyone, a signed URL was checked).
-- No row: no such media, or not for p_user.
CREATE FUNCTION chat_media_get(p_id text, p_user bigint)
RETURNS TABLE (sha256 text, type text, owner bigint)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    m_owner   bigint;
    m_sha256  text;
    m_type    text;
BEGIN
    SELECT m.owner, b.sha256, b.type INTO m_owner, m_sha256, m_type
    FROM media m
    JOIN media_blobs b ON b.sha256 = m.sha256
    WHERE m.id = p_id;

    IF NOT FOUND THEN
        RETURN;
    END IF;

    IF p_user IS NOT NULL AND p_user <> m_owner AND NOT EXISTS (
        SELECT 1
        FROM messages x
        WHERE x.media = p_id
          AND x.sender = m_owner
          AND (x.recipient = p_user
               OR EXISTS (
                   SELECT 1
                   FROM group_members gm
                   WHERE gm.group_id = x.group_id
                     AND gm.user_id = p_user
                     AND x.ts >= chat_ms(gm.joined_at))))
    THEN
        RETURN;
    END IF;

    sha256 := m_sha256;
    type := m_type;
    owner := m_owner;
    RETURN NEXT;
END
$$;
