-- 0006_undelivered.sql — what the gateway reads from PostgreSQL when Redis
-- lost something: a user's undelivered messages, for store-and-forward
-- when Redis does not hold the user's inbox complete (Redis lost its data,
-- the inbox overflowed or expired: src/ngx_chat_refill.c), and where a
-- conversation's seq goes on when Redis lost its counter
-- (src/ngx_chat_send.c).
--
-- Applied by scripts/migrate inside one transaction together with its row in
-- schema_migrations: no BEGIN/COMMIT here.

-- The messages whose delivery to p_user is still 'sent', oldest first (the
-- order of deliveries_undelivered_idx), at most p_limit of them.  The join
-- finds each message by its primary key in its conversation's partition.
CREATE FUNCTION chat_undelivered(p_user bigint, p_limit int)
RETURNS TABLE (id text, conv text, seq bigint, sender bigint,
               recipient bigint, group_id bigint, body text, media text,
               e2e boolean, client_id text, ts bigint)
LANGUAGE sql STABLE AS $$
    SELECT m.id, m.conv, m.seq, m.sender, m.recipient, m.group_id, m.body,
           m.media, m.e2e, m.client_id, m.ts
    FROM deliveries d
    JOIN messages m ON m.conv = d.conv AND m.seq = d.seq
    WHERE d.recipient = p_user AND d.state = 'sent'
    ORDER BY d.ts, d.conv, d.seq
    LIMIT greatest(p_limit, 0)
$$;

-- The highest seq a conversation has used as far as PostgreSQL knows: its
-- newest stored message, or what the ephemeral retention mode deleted
-- (conv_seq_floor, sql/0005); 0 for a new conversation.  One backward
-- probe of the primary key in the conversation's partition.
CREATE FUNCTION chat_seq_top(p_conv text)
RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT greatest(
        coalesce((SELECT max(m.seq) FROM messages m
                  WHERE m.conv = p_conv COLLATE "C"), 0),
        coalesce((SELECT f.seq FROM conv_seq_floor f
                  WHERE f.conv = p_conv COLLATE "C"), 0))
$$;
