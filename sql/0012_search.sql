-- 0012_search.sql — the search index (issue #17): what chat-worker index
-- writes, and the one query of a search.
--
-- Applied by scripts/migrate inside one transaction together with its row in
-- schema_migrations: no BEGIN/COMMIT here.
--
-- One row per message, keyed like messages (conv, seq), written by
-- chat-worker index from chat.messages (its own
-- consumer group, so it does not wait for the persist worker, nor it for
-- the index):
--   doc     the body as a tsvector in the configured language; NULL for an
--           e2e message: its body is ciphertext and is never indexed
--   tokens  an e2e message's blind-index terms ("search_tokens", keyed
--           hashes of words computed by the client), as they came; NULL
--           otherwise
-- Not partitioned: a search plans and scans one GIN index, not sixteen
-- (sixteen partitions made planning a search take 60 ms).
-- A message deleted from messages (the ephemeral retention mode) leaves the
-- index with it (a trigger).

-- The language of the index: one for all rows, so that a query is parsed
-- as the documents were.  'simple' (no stemming, no stop words) suits
-- mixed-language text; change it with
--   UPDATE search_config SET language = 'english';
-- and index again (rows keep the language they were written with).
CREATE TABLE search_config (
    only_one  boolean   PRIMARY KEY DEFAULT true CHECK (only_one),
    language  regconfig NOT NULL DEFAULT 'simple'
);
INSERT INTO search_config DEFAULT VALUES;

CREATE TABLE message_search (
    conv        text        COLLATE "C" NOT NULL,
    seq         bigint      NOT NULL,
    id          text        COLLATE "C" NOT NULL,
    sender      bigint      NOT NULL,
    recipient   bigint,                 -- one-to-one
    group_id    bigint,                 -- group
    ts          bigint      NOT NULL,   -- ms, the gateway's clock
    doc         tsvector,
    tokens      text[],
    indexed_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT message_search_pkey PRIMARY KEY (conv, seq),
    CONSTRAINT message_search_target_check
        CHECK ((recipient IS NULL) <> (group_id IS NULL))
);

CREATE INDEX message_search_doc_idx ON message_search USING gin (doc);
CREATE INDEX message_search_tokens_idx ON message_search USING gin (tokens);
-- a user's one-to-one conversations, a group's messages
CREATE INDEX message_search_sender_idx ON message_search (sender, ts);
CREATE INDEX message_search_recipient_idx ON message_search (recipient, ts)
    WHERE recipient IS NOT NULL;
CREATE INDEX message_search_group_idx ON message_search (group_id, ts)
    WHERE group_id IS NOT NULL;

-- A message gone from messages leaves the index.  A message the index
-- worker writes after the cleanup deleted it stays (docs/ARCHITECTURE.md,
-- "Search").
CREATE FUNCTION chat_search_forget() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM message_search s
    WHERE s.conv = OLD.conv AND s.seq = OLD.seq;
    RETURN NULL;
END
$$;

CREATE TRIGGER messages_search_forget AFTER DELETE ON messages
    FOR EACH ROW EXECUTE FUNCTION chat_search_forget();

-- chat-worker index: a batch of messages as a JSON array of
-- {"conv","seq","id","sender","recipient"|"group_id","ts","body"?,
--  "tokens"?}, body absent for e2e messages; written again, nothing
-- changes.  The number of rows it wrote.
CREATE FUNCTION chat_index_messages(batch json)
RETURNS bigint
LANGUAGE sql VOLATILE AS $$
    WITH ins AS (
        INSERT INTO message_search AS s
            (conv, seq, id, sender, recipient, group_id, ts, doc, tokens)
        SELECT x.conv, x.seq, x.id, x.sender, x.recipient, x.group_id, x.ts,
               CASE WHEN x.body IS NULL THEN NULL
                    ELSE to_tsvector(c.language, x.body) END,
               x.tokens
        FROM json_to_recordset($1) AS x(conv text, seq bigint, id text,
                                        sender bigint, recipient bigint,
                                        group_id bigint, ts bigint,
                                        body text, tokens text[])
        CROSS JOIN search_config c
        ON CONFLICT ON CONSTRAINT message_search_pkey DO NOTHING
        RETURNING 1
    )
    SELECT count(*) FROM ins
$$;
