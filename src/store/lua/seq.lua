-- SEQ  KEYS seq
-- the conversation's next seq; -1 when Redis has no counter for it (it is
-- set from PostgreSQL first: ngx_chat_send.c)

if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
return redis.call('INCR', KEYS[1])
