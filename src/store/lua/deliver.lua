-- DELIVER  KEYS routes inbox inboxq inboxn inboxok [sender-routes]
--          ARGV uid id "<from> <seq> <conv>" frame max ttl
--               [sender except-channel except-conn]
-- -1 when the message is in the inbox already, else the channels reached;
-- with the sender's routes on the same server, its other connections get
-- the frame too (one call instead of DELIVER + RELAY).  Inbox positions
-- start at Redis's clock in microseconds, so that they keep growing when
-- Redis lost the inbox (16 digits: Lua's numbers are doubles, exact up to
-- 2^53, and are formatted with %.0f, never by tostring()); an inbox that
-- overflows is no longer complete (inboxok goes: the next connection reads
-- PostgreSQL, ngx_chat_refill.c).
--
-- prefix: lib.lua

if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1 then return -1 end
inbox_n(KEYS[4])
local n = string.format('%.0f', redis.call('INCR', KEYS[4]))
redis.call('HSET', KEYS[2], ARGV[2],
           'u ' .. ARGV[3] .. ' ' .. ARGV[4])
redis.call('ZADD', KEYS[3], n, ARGV[2])
if trim(KEYS[3], KEYS[2], tonumber(ARGV[5])) > 0 then
  redis.call('DEL', KEYS[5])
end
for i = 2, 5 do redis.call('EXPIRE', KEYS[i], ARGV[6]) end
if KEYS[6] then
  publish(KEYS[6], ARGV[7], 0, ARGV[4], ARGV[8], ARGV[9])
end
return publish(KEYS[1], ARGV[1], n, ARGV[4], '', '0')
