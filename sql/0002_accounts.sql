-- 0002_accounts.sql — friends, groups, public keys, push devices, presence,
-- and the functions the module calls for them.
--
-- Applied by scripts/migrate inside one transaction together with its row in
-- schema_migrations: no BEGIN/COMMIT here.
--
-- The module sends one parameterized statement per request
-- (PQsendQueryParams, text parameters), so every operation that needs more
-- than one statement is a function here that does it whole and atomically,
-- and answers with a short status text or with JSON that goes to the client
-- as it is (docs: /work/shared/CONTRACT.md sections 2 and 4).  JSON is built
-- with row_to_json/array_to_json, which print it compact ({"a":1,"b":[..]})
-- and keep the keys in the order written here; ids are JSON numbers, times
-- milliseconds since the epoch.
--
-- `me` is always the authenticated caller.  No function builds SQL from its
-- inputs.  Errors the module may meet from the functions that return void
-- (and from any function when `me` no longer exists and a row must refer to
-- it): 23514 check_violation (bad key, platform, token), 23503
-- foreign_key_violation (the caller's account was deleted).


-- --- tables -----------------------------------------------------------------

-- One row per direction.  A asks B: (A,B,'requested').  B accepts (asks back):
-- (A,B) becomes 'accepted' and (B,A,'accepted') is added.  So "my friends"
-- are my rows with status 'accepted', "I asked" my rows with 'requested', and
-- "they asked me" their rows with 'requested' that point at me.
CREATE TABLE friends (
    user_id      bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    friend_id    bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    status       text        NOT NULL
                             CONSTRAINT friends_status_check
                             CHECK (status IN ('requested', 'accepted')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    accepted_at  timestamptz,
    PRIMARY KEY (user_id, friend_id),
    CONSTRAINT friends_not_self CHECK (user_id <> friend_id),
    CONSTRAINT friends_accepted_at_check
        CHECK ((status = 'accepted') = (accepted_at IS NOT NULL))
);
CREATE INDEX friends_friend_id_idx ON friends (friend_id);

-- The creator is kept for information only (GET /v1/groups/{gid} shows it):
-- deleting its account must not delete the group for everyone else.
CREATE TABLE groups (
    id          bigserial   PRIMARY KEY,
    name        text        NOT NULL
                            CONSTRAINT groups_name_check
                            CHECK (char_length(name) BETWEEN 1 AND 100
                                   AND name ~ '[^[:space:]]'
                                   AND name !~ '[[:cntrl:]]'),
    created_by  bigint      REFERENCES users (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX groups_created_by_idx ON groups (created_by);

-- Invariants kept by the trigger below, whatever removes a member (the API or
-- a deleted account): a group with members has at least one admin, and a
-- group without members does not exist.
CREATE TABLE group_members (
    group_id   bigint      NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    user_id    bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       text        NOT NULL DEFAULT 'member'
                           CONSTRAINT group_members_role_check
                           CHECK (role IN ('admin', 'member')),
    joined_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user_id_idx ON group_members (user_id);

-- The user's public key for end-to-end encryption: standard base64 (RFC 4648
-- section 4, padded), at most 8 KiB of it.  The server never reads it.
CREATE TABLE user_keys (
    user_id     bigint      PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    public_key  text        NOT NULL
                            CONSTRAINT user_keys_public_key_check
                            CHECK (octet_length(public_key) BETWEEN 4 AND 8192
                                   AND public_key ~ '^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$'),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Push targets.  A token belongs to one user: registered again by another
-- user (a phone that changed hands, a re-login) it moves to that user.
CREATE TABLE devices (
    token       text        PRIMARY KEY
                            CONSTRAINT devices_token_check
                            CHECK (char_length(token) BETWEEN 1 AND 4096),
    user_id     bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    platform    text        NOT NULL
                            CONSTRAINT devices_platform_check
                            CHECK (platform IN ('fcm', 'apns', 'webhook')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX devices_user_id_idx ON devices (user_id);

-- Written by the presence worker (write-behind from Redis); read here.
-- last_seen: when the user went offline (while online: the last heartbeat).
CREATE TABLE presence (
    user_id    bigint      PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    last_seen  timestamptz
);


-- --- group invariants ---------------------------------------------------------

-- After a member leaves (removed, or its account deleted): no members left ->
-- the group goes; no admin left -> the longest-standing member (earliest
-- joined_at, then lowest user id) becomes admin.  The group row is locked
-- first, the same lock chat_group_add_member/remove_member take, so that two
-- admins leaving at once cannot both miss the other's departure.
CREATE FUNCTION chat_group_members_after_delete() RETURNS trigger
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM 1 FROM groups g WHERE g.id = OLD.group_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN NULL;    -- the group itself is being deleted
    END IF;

    IF NOT EXISTS (SELECT 1 FROM group_members m
                   WHERE m.group_id = OLD.group_id) THEN
        DELETE FROM groups g WHERE g.id = OLD.group_id;
    ELSIF NOT EXISTS (SELECT 1 FROM group_members m
                      WHERE m.group_id = OLD.group_id AND m.role = 'admin') THEN
        UPDATE group_members m SET role = 'admin'
        WHERE m.group_id = OLD.group_id
          AND m.user_id = (SELECT n.user_id FROM group_members n
                           WHERE n.group_id = OLD.group_id
                           ORDER BY n.joined_at, n.user_id
                           LIMIT 1);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER group_members_after_delete
    AFTER DELETE ON group_members
    FOR EACH ROW EXECUTE FUNCTION chat_group_members_after_delete();


-- --- helpers ------------------------------------------------------------------

-- {"error":code,"message":message}, the contract's error body.
CREATE FUNCTION chat_error_json(code text, message text) RETURNS json
LANGUAGE sql IMMUTABLE AS $$
    SELECT row_to_json(e) FROM (SELECT code AS error, message AS message) e
$$;

-- Everyone in a friend relation with me, with the state as I see it:
-- 'requested' (I asked), 'pending' (they asked me), 'friends'; last_seen
-- only for friends (presence is visible to friends only).
CREATE FUNCTION chat_friend_rows(me bigint)
RETURNS TABLE (user_id bigint, username text, state text, last_seen timestamptz)
LANGUAGE sql STABLE AS $$
    SELECT u.id, u.username, x.state,
           CASE WHEN x.state = 'friends' THEN p.last_seen END
    FROM (SELECT f.friend_id AS uid,
                 CASE f.status WHEN 'accepted' THEN 'friends'
                               ELSE 'requested' END AS state
          FROM friends f
          WHERE f.user_id = me
          UNION ALL
          SELECT f.user_id, 'pending'
          FROM friends f
          WHERE f.friend_id = me AND f.status = 'requested'
            AND NOT EXISTS (SELECT 1 FROM friends b
                            WHERE b.user_id = me AND b.friend_id = f.user_id)
         ) x
    JOIN users u ON u.id = x.uid
    LEFT JOIN presence p ON p.user_id = x.uid
$$;

-- [{"user_id","username","role"}...] ordered by user id.
CREATE FUNCTION chat_group_members_json(gid bigint) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT coalesce(array_to_json(array_agg(m ORDER BY m.user_id)), '[]')
    FROM (SELECT gm.user_id, u.username, gm.role
          FROM group_members gm
          JOIN users u ON u.id = gm.user_id
          WHERE gm.group_id = gid) m
$$;

-- The advisory lock that serializes everything done to one pair of users'
-- friendship, whichever side does it: one 64-bit key per unordered pair.
CREATE FUNCTION chat_friend_pair_lock(a bigint, b bigint) RETURNS void
LANGUAGE sql VOLATILE AS $$
    SELECT pg_advisory_xact_lock(
        hashtextextended(format('chat_friend %s %s', least(a, b),
                                greatest(a, b)), 0))
$$;


-- --- friends --------------------------------------------------------------------

-- PUT /v1/friends/{other}: 'self', 'not_found', 'requested' or 'friends'.
-- Asking again is harmless; asking someone who asked me accepts.  Two
-- crossing requests end as friends: the pair lock makes the second one see
-- the first one's row.
CREATE FUNCTION chat_friend_request(me bigint, other bigint) RETURNS text
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    fwd text;   -- my row (me -> other)
    rev text;   -- theirs (other -> me)
BEGIN
    IF me = other THEN
        RETURN 'self';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM users u WHERE u.id = other) THEN
        RETURN 'not_found';
    END IF;

    PERFORM chat_friend_pair_lock(me, other);

    SELECT f.status INTO fwd FROM friends f
    WHERE f.user_id = me AND f.friend_id = other;
    SELECT f.status INTO rev FROM friends f
    WHERE f.user_id = other AND f.friend_id = me;

    IF fwd = 'accepted' AND rev = 'accepted' THEN
        RETURN 'friends';
    END IF;

    IF rev IS NOT NULL THEN
        -- They asked me (or, should one half of a friendship be missing,
        -- were friends): both sides accepted.
        UPDATE friends f SET status = 'accepted',
                             accepted_at = coalesce(f.accepted_at, now())
        WHERE f.user_id = other AND f.friend_id = me;
        INSERT INTO friends (user_id, friend_id, status, accepted_at)
        VALUES (me, other, 'accepted', now())
        ON CONFLICT ON CONSTRAINT friends_pkey DO UPDATE
            SET status = 'accepted',
                accepted_at = coalesce(friends.accepted_at, now());
        RETURN 'friends';
    END IF;

    IF fwd IS NOT NULL THEN
        -- Mine alone: asked already (or the other half of a friendship is
        -- missing, which asking again cannot repair: still 'requested').
        IF fwd = 'accepted' THEN
            UPDATE friends f SET status = 'requested', accepted_at = NULL
            WHERE f.user_id = me AND f.friend_id = other;
        END IF;
        RETURN 'requested';
    END IF;

    INSERT INTO friends (user_id, friend_id, status)
    VALUES (me, other, 'requested');
    RETURN 'requested';
END
$$;

-- DELETE /v1/friends/{other}: withdraws my request, declines theirs, or ends
-- the friendship: both directions go.
CREATE FUNCTION chat_friend_remove(me bigint, other bigint) RETURNS void
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM chat_friend_pair_lock(me, other);
    DELETE FROM friends f
    WHERE (f.user_id = me AND f.friend_id = other)
       OR (f.user_id = other AND f.friend_id = me);
END
$$;

-- GET /v1/friends (without "online", which comes from Redis):
-- {"friends":[{"user_id","username","state","last_seen"}...]} by username.
CREATE FUNCTION chat_friends_json(me bigint) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT row_to_json(r)
    FROM (SELECT coalesce(array_to_json(array_agg(f ORDER BY f.username COLLATE "C")),
                          '[]') AS friends
          FROM (SELECT x.user_id, x.username, x.state,
                       floor(extract(epoch FROM x.last_seen) * 1000)::bigint
                           AS last_seen
                FROM chat_friend_rows(me) x) f
         ) r
$$;


-- --- me -------------------------------------------------------------------------

-- GET /v1/me (without "ws_url", which the module knows): NULL when the
-- account no longer exists.  friends by username, groups by group id.
CREATE FUNCTION chat_me_json(me bigint) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT row_to_json(r)
    FROM (SELECT u.id AS user_id, u.username, u.display_name, u.avatar_url,
                 (SELECT coalesce(array_to_json(array_agg(f ORDER BY f.username COLLATE "C")),
                                  '[]')
                  FROM (SELECT x.user_id, x.username, x.state
                        FROM chat_friend_rows(u.id) x) f) AS friends,
                 (SELECT coalesce(array_to_json(array_agg(g ORDER BY g.group_id)),
                                  '[]')
                  FROM (SELECT gm.group_id, gr.name, gm.role
                        FROM group_members gm
                        JOIN groups gr ON gr.id = gm.group_id
                        WHERE gm.user_id = u.id) g) AS groups
          FROM users u
          WHERE u.id = me) r
$$;


-- --- groups -----------------------------------------------------------------------

-- POST /v1/groups.  The name is trimmed of surrounding white space and must
-- then be 1..100 characters, not blank, without control characters.  The
-- creator is admin; everyone in `members` (duplicates, NULLs and the creator
-- ignored) a member.  max_members (NULL: no limit) counts the creator.
-- {"group_id","name","members":[...]} or an error object: invalid_name,
-- not_found ("no such user: 7, 9"), too_many_members.
CREATE FUNCTION chat_group_create(me bigint, name text, members bigint[],
                                  max_members int) RETURNS json
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    gname   text := regexp_replace(chat_group_create.name,
                                   '^[[:space:]]+|[[:space:]]+$', '', 'g');
    ids     bigint[];
    missing text;
    gid     bigint;
BEGIN
    IF gname IS NULL OR char_length(gname) NOT BETWEEN 1 AND 100
       OR gname !~ '[^[:space:]]' OR gname ~ '[[:cntrl:]]' THEN
        RETURN chat_error_json('invalid_name',
            'group name must be 1 to 100 characters, not blank, '
            'without control characters');
    END IF;

    SELECT coalesce(array_agg(DISTINCT i ORDER BY i), '{}') INTO ids
    FROM unnest(chat_group_create.members) AS i
    WHERE i IS NOT NULL AND i <> me;

    SELECT string_agg(i::text, ', ' ORDER BY i) INTO missing
    FROM unnest(ids) AS i
    WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = i);
    IF missing IS NOT NULL THEN
        RETURN chat_error_json('not_found', 'no such user: ' || missing);
    END IF;

    IF 1 + cardinality(ids) > max_members THEN
        RETURN chat_error_json('too_many_members',
            format('a group has at most %s members, creator included',
                   max_members));
    END IF;

    INSERT INTO groups (name, created_by) VALUES (gname, me)
    RETURNING id INTO gid;
    INSERT INTO group_members (group_id, user_id, role)
    VALUES (gid, me, 'admin');
    INSERT INTO group_members (group_id, user_id, role)
    SELECT gid, i, 'member' FROM unnest(ids) AS i;

    RETURN (SELECT row_to_json(r)
            FROM (SELECT gid AS group_id, gname AS name,
                         chat_group_members_json(gid) AS members) r);
END
$$;

-- GET /v1/groups/{gid}: NULL when there is no such group, a "forbidden"
-- error object for non-members, else
-- {"group_id","name","created_by","members":[...by user id]}.
-- created_by is null once the creator's account is gone.
CREATE FUNCTION chat_group_get(me bigint, gid bigint) RETURNS json
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM groups g WHERE g.id = gid) THEN
        RETURN NULL;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM group_members m
                   WHERE m.group_id = gid AND m.user_id = me) THEN
        RETURN chat_error_json('forbidden', 'not a member of this group');
    END IF;
    RETURN (SELECT row_to_json(r)
            FROM (SELECT g.id AS group_id, g.name, g.created_by,
                         chat_group_members_json(g.id) AS members
                  FROM groups g WHERE g.id = gid) r);
END
$$;

-- PUT /v1/groups/{gid}/members/{uid}, in this order of checks:
-- 'not_found' (no group), 'forbidden' (me is not an admin of it),
-- 'user_not_found', 'already_member' (so that a repeated PUT succeeds even
-- when the group is full), 'too_many_members' (max_members, NULL: no limit),
-- 'added'.  The group row lock serializes adds to one group, so the limit
-- holds under concurrency.
CREATE FUNCTION chat_group_add_member(me bigint, gid bigint, uid bigint,
                                      max_members int) RETURNS text
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM 1 FROM groups g WHERE g.id = gid FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN 'not_found';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM group_members m
                   WHERE m.group_id = gid AND m.user_id = me
                     AND m.role = 'admin') THEN
        RETURN 'forbidden';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM users u WHERE u.id = uid) THEN
        RETURN 'user_not_found';
    END IF;
    IF EXISTS (SELECT 1 FROM group_members m
               WHERE m.group_id = gid AND m.user_id = uid) THEN
        RETURN 'already_member';
    END IF;
    IF (SELECT count(*) FROM group_members m WHERE m.group_id = gid)
           >= max_members THEN
        RETURN 'too_many_members';
    END IF;
    INSERT INTO group_members (group_id, user_id, role)
    VALUES (gid, uid, 'member');
    RETURN 'added';
END
$$;

-- DELETE /v1/groups/{gid}/members/{uid}: 'not_found' (no group),
-- 'forbidden' (me is neither an admin nor uid), 'not_member', 'removed'.
-- The trigger on group_members hands the admin role over when the last admin
-- left and deletes the group when the last member did.
CREATE FUNCTION chat_group_remove_member(me bigint, gid bigint, uid bigint)
RETURNS text
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM 1 FROM groups g WHERE g.id = gid FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN 'not_found';
    END IF;
    IF me IS DISTINCT FROM uid
       AND NOT EXISTS (SELECT 1 FROM group_members m
                       WHERE m.group_id = gid AND m.user_id = me
                         AND m.role = 'admin') THEN
        RETURN 'forbidden';
    END IF;
    DELETE FROM group_members m WHERE m.group_id = gid AND m.user_id = uid;
    IF NOT FOUND THEN
        RETURN 'not_member';
    END IF;
    RETURN 'removed';
END
$$;


-- --- keys and devices -----------------------------------------------------------

-- PUT /v1/keys: set or replace my public key (23514 when not base64 or over
-- 8 KiB).
CREATE FUNCTION chat_put_key(me bigint, key text) RETURNS void
LANGUAGE sql VOLATILE AS $$
    INSERT INTO user_keys AS k (user_id, public_key) VALUES ($1, $2)
    ON CONFLICT ON CONSTRAINT user_keys_pkey DO UPDATE
        SET public_key = excluded.public_key, updated_at = now()
$$;

-- GET /v1/users/{uid}/keys: {"user_id","public_key"}, NULL without a key.
CREATE FUNCTION chat_get_key(uid bigint) RETURNS json
LANGUAGE sql STABLE AS $$
    SELECT row_to_json(r)
    FROM (SELECT k.user_id, k.public_key FROM user_keys k
          WHERE k.user_id = $1) r
$$;

-- PUT /v1/devices/{token}: register (or refresh) a push target of mine; a
-- token registered by someone else before moves to me (created_at then
-- starts again).  23514 for a bad platform or token length.
CREATE FUNCTION chat_put_device(me bigint, token text, platform text)
RETURNS void
LANGUAGE sql VOLATILE AS $$
    INSERT INTO devices AS d (token, user_id, platform) VALUES ($2, $1, $3)
    ON CONFLICT ON CONSTRAINT devices_pkey DO UPDATE
        SET user_id    = excluded.user_id,
            platform   = excluded.platform,
            created_at = CASE WHEN d.user_id = excluded.user_id
                              THEN d.created_at ELSE now() END,
            updated_at = now()
$$;
