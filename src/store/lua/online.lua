-- Presence (ngx_chat_presence.c).  chat:presence:live is one sorted set
-- per Redis server: the users of that server who are online, scored by
-- their last heartbeat; chat:seen:{user} is the last_seen of one who is
-- not.
--
-- ONLINE  KEYS live  ARGV user
-- a heartbeat at connect: 1 when the user was not online before
--
-- prefix: lib.lua

return redis.call('ZADD', KEYS[1], now_ms(), ARGV[1])
