-- 0006_undelivered.sql — what a user has not received yet, for the
-- gateway's store-and-forward when Redis does not hold the user's inbox
-- complete (Redis lost its data, the inbox overflowed or expired): see
-- src/ngx_chat_refill.c.
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
