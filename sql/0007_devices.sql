-- 0007_devices.sql — a push token belongs to the user who registered it
-- first: another user's PUT no longer moves it (issue #12, defect 6), and
-- DELETE /v1/devices/{token} removes one of mine.
--
-- Applied by scripts/migrate inside one transaction together with its row in
-- schema_migrations: no BEGIN/COMMIT here.

-- PUT /v1/devices/{token}: register (or refresh) a push target of mine.
-- true when the token is mine now; false when another user holds it (the
-- API answers 409 and nothing changes).  23514 for a bad platform or token
-- length.  The conflict arm updates only my own row, so two users racing
-- for a new token cannot both win: the loser's INSERT waits for the
-- winner's, then finds the row it cannot update.
DROP FUNCTION chat_put_device(bigint, text, text);

CREATE FUNCTION chat_put_device(me bigint, token text, platform text)
RETURNS boolean
LANGUAGE sql VOLATILE AS $$
    WITH up AS (
        INSERT INTO devices AS d (token, user_id, platform)
        VALUES ($2, $1, $3)
        ON CONFLICT ON CONSTRAINT devices_pkey DO UPDATE
            SET platform   = excluded.platform,
                updated_at = now()
            WHERE d.user_id = excluded.user_id
        RETURNING 1
    )
    SELECT EXISTS (SELECT 1 FROM up)
$$;

-- DELETE /v1/devices/{token}: true when the token was mine and is gone;
-- false when I do not hold it (nobody does, or another user does: that
-- one is left alone).
CREATE FUNCTION chat_delete_device(me bigint, token text)
RETURNS boolean
LANGUAGE sql VOLATILE AS $$
    WITH del AS (
        DELETE FROM devices d WHERE d.token = $2 AND d.user_id = $1
        RETURNING 1
    )
    SELECT EXISTS (SELECT 1 FROM del)
$$;
