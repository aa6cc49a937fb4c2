-- Presence (ngx_chat_presence.c).  chat:presence:live is one sorted set
-- per Redis server: the users of that server who are online, scored by
-- their last heartbeat; chat:seen:{user} is the last_seen of one who is
-- not.
--
-- ONLINE  batch: per item  KEYS live  ARGV user
-- a heartbeat at connect: 1 when the user was not online before (the
-- connections that one round of a worker opens, in one call)
--
-- prefix: lib.lua

return batch(function(k, a)
  return redis.call('ZADD', k[1], now_ms(), a[1])
end)
