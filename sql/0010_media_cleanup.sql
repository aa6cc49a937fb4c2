-- 0010_media_cleanup.sql — images whose messages are gone (issue #15):
-- what `chat-worker cleanup --retention ephemeral --media-path DIR`
-- collects in each pass, after the messages.
--
-- Applied by scripts/migrate inside one transaction together with its row in
-- schema_migrations: no BEGIN/COMMIT here.
--
-- An upload (a row of media) goes once no message carries it any more and
-- it is older than the grace (uploaded, not sent yet); a content (a row of
-- media_blobs) goes with the last upload of it.  The function deletes
-- both and answers the contents deleted; the worker removes their files
-- BEFORE it commits, while the deleted rows are still locked: an upload of
-- the same bytes meanwhile waits in chat_media_put() for the commit,
-- writes its rows anew, and then links its file again (the gateway links
-- once more after chat_media_put()), so no row is left without its file.
-- The foreign key from media to media_blobs keeps a content that an
-- upload names from being deleted under it.

CREATE FUNCTION chat_cleanup_media(grace_ms bigint, lim int)
RETURNS TABLE (sha256 text, type text)
LANGUAGE sql AS $$
    WITH gone AS (
        DELETE FROM media m
        WHERE m.id IN (
            SELECT x.id
            FROM media x
            WHERE x.created_at < now() - make_interval(secs => $1 / 1000.0)
              AND NOT EXISTS (SELECT 1 FROM messages g
                              WHERE g.media = x.id)
            ORDER BY x.created_at
            LIMIT greatest($2, 0)
            FOR UPDATE SKIP LOCKED)
        RETURNING m.id, m.sha256
    )
    DELETE FROM media_blobs b
    WHERE b.sha256 IN (SELECT DISTINCT g.sha256 FROM gone g)
      -- the statement still sees the rows it deletes above
      AND NOT EXISTS (SELECT 1 FROM media m
                      WHERE m.sha256 = b.sha256
                        AND m.id NOT IN (SELECT g.id FROM gone g))
    RETURNING b.sha256, b.type
$$;
