-- RECEIPT  KEYS inbox inboxq inboxd [sender-routes sender-rbox]
--          ARGV id d|r seen-max ttl [sender frame rbox-max]
-- 1 when the message's state moved forward, else 0; with the sender's
-- keys on the same server, the receipt frame goes to the sender at once
-- (RELAY with store), and 2 says so
--
-- prefix: lib.lua

local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then return 0 end
local st = string.sub(v, 1, 1)
if st == ARGV[2] or st == 'r' then return 0 end
local head = string.match(v, '^%a (%S+ %S+ %S+)')
local n = redis.call('ZSCORE', KEYS[2], ARGV[1])
if n then
  redis.call('ZREM', KEYS[2], ARGV[1])
else
  n = redis.call('ZSCORE', KEYS[3], ARGV[1]) or 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ' ' .. head)
redis.call('ZADD', KEYS[3], n, ARGV[1])
trim(KEYS[3], KEYS[1], tonumber(ARGV[3]))
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ARGV[4]) end
if not KEYS[4] then return 1 end
if publish(KEYS[4], ARGV[5], 0, ARGV[6], '-', '0') == 0 then
  redis.call('RPUSH', KEYS[5], ARGV[6])
  redis.call('LTRIM', KEYS[5], -tonumber(ARGV[7]), -1)
  redis.call('EXPIRE', KEYS[5], ARGV[4])
end
return 2
