-- 0004_presence.sql — presence in PostgreSQL: last_seen written behind by
-- `chat-worker presence` from chat.presence, read by the gateway when Redis has
-- nothing (docs/ARCHITECTURE.md, "Presence").

-- GET /v1/users/{id}/presence: NULL for an unknown user, {"error":
-- "forbidden"} for one who is not the caller's friend (nor the caller),
-- else {"user_id", "last_seen"} with last_seen in ms or null.
CREATE FUNCTION chat_presence_get(me bigint, uid bigint) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN me <> uid
             AND NOT EXISTS (SELECT 1 FROM chat_friend_rows(me) f
                             WHERE f.user_id = uid AND f.state = 'friends')
        THEN json_build_object('error', 'forbidden')
        ELSE json_build_object(
                 'user_id', u.id,
                 'last_seen', (SELECT floor(extract(epoch FROM p.last_seen)
                                            * 1000)::bigint
                               FROM presence p WHERE p.user_id = u.id))
        END
    FROM users u
    WHERE u.id = uid
$$;


-- The write-behind: last_seen only moves forward, whatever order the
-- records come in.  seen: ms since the epoch.
CREATE FUNCTION chat_presence_seen(uid bigint, seen bigint) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO presence AS p (user_id, last_seen)
    SELECT uid, to_timestamp(seen / 1000.0)
    WHERE EXISTS (SELECT 1 FROM users WHERE id = uid)
    ON CONFLICT (user_id) DO UPDATE
        SET last_seen = greatest(p.last_seen, excluded.last_seen)
$$;
