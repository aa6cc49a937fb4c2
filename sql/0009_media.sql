-- 0009_media.sql — images (issue #15): what was uploaded, by whom, and who
-- may download it.
--
-- Applied by scripts/migrate inside one transaction together with its row in
-- schema_migrations: no BEGIN/COMMIT here.
--
-- The bytes are stored once per content (content-addressed by SHA-256, in
-- the media store: a directory, or an S3 bucket); media_blobs describes
-- each stored content.  An upload is a row of media: its own id, its
-- uploader, the content.  The same user uploading the same image again
-- gets the same id back (UNIQUE (owner, sha256)); another user uploading
-- it gets an id of its own for the same stored bytes.

CREATE TABLE media_blobs (
    sha256      text        COLLATE "C" PRIMARY KEY
                            CONSTRAINT media_blobs_sha256_check
                            CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    type        text        NOT NULL
                            CONSTRAINT media_blobs_type_check
                            CHECK (type IN ('image/jpeg', 'image/png',
                                            'image/gif', 'image/webp')),
    size        bigint      NOT NULL CONSTRAINT media_blobs_size_check
                                     CHECK (size > 0),
    width       integer     NOT NULL CONSTRAINT media_blobs_width_check
                                     CHECK (width > 0),
    height      integer     NOT NULL CONSTRAINT media_blobs_height_check
                                     CHECK (height > 0),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE media (
    id          text        COLLATE "C" PRIMARY KEY
                            CONSTRAINT media_id_check
                            CHECK (id ~ '^[A-Za-z0-9_-]{1,255}$'),
    owner       bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    sha256      text        COLLATE "C" NOT NULL
                            REFERENCES media_blobs (sha256),
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT media_owner_sha256_key UNIQUE (owner, sha256)
);
CREATE INDEX media_sha256_idx ON media (sha256);

-- the messages that carry a media id (who may see it, below)
CREATE INDEX messages_media_idx ON messages (media) WHERE media IS NOT NULL;


-- An upload: the content's row if it is new, then the uploader's row for
-- it (the one it had if it uploaded the same bytes before).  The id of
-- the uploader's row and whether the content was new.
CREATE FUNCTION chat_media_put(p_id text, p_owner bigint, p_sha256 text,
                               p_type text, p_size bigint, p_width integer,
                               p_height integer)
RETURNS TABLE (media_id text, stored boolean)
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO media_blobs (sha256, type, size, width, height)
    VALUES (p_sha256, p_type, p_size, p_width, p_height)
    ON CONFLICT DO NOTHING;
    stored := FOUND;

    INSERT INTO media AS m (id, owner, sha256)
    VALUES (p_id, p_owner, p_sha256)
    ON CONFLICT ON CONSTRAINT media_owner_sha256_key
    DO UPDATE SET owner = excluded.owner
    RETURNING m.id INTO media_id;

    RETURN NEXT;
END
$$;


-- The stored content of media p_id if p_user may see it: its uploader, or
-- someone in a conversation where its uploader sent a message carrying it
-- (the recipient of a one-to-one message; a current member of the group
-- the message went to, who had joined by the time it was sent, as group
-- history has it).  Only the uploader's own messages count: a message
-- naming someone else's media id shows nothing to anyone.  p_user NULL:
-- anyone (a signed URL was checked).  No row: no such media, or not for
-- p_user; the API answers both alike.
CREATE FUNCTION chat_media_get(p_id text, p_user bigint)
RETURNS TABLE (sha256 text, type text, size bigint, width integer,
               height integer)
LANGUAGE sql STABLE AS $$
    SELECT b.sha256, b.type, b.size, b.width, b.height
    FROM media m
    JOIN media_blobs b ON b.sha256 = m.sha256
    WHERE m.id = p_id
      AND (p_user IS NULL
           OR m.owner = p_user
           OR EXISTS (
               SELECT 1
               FROM messages x
               WHERE x.media = p_id
                 AND x.sender = m.owner
                 AND (x.recipient = p_user
                      OR EXISTS (
                          SELECT 1
                          FROM group_members gm
                          WHERE gm.group_id = x.group_id
                            AND gm.user_id = p_user
                            AND x.ts >= chat_ms(gm.joined_at)))))
$$;
