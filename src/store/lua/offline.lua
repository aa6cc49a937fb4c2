-- OFFLINE  KEYS routes live seen  ARGV route user seen-ttl
-- removes a route; when it was the user's last: last_seen (ms), else 0.
-- Routes whose channel nobody is subscribed to (a dead worker's) do not
-- count and go too.
--
-- prefix: lib.lua

redis.call('ZREM', KEYS[1], ARGV[1])
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local live = 0
for _, r in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local ch = string.match(r, '^(%S+)')
  if ch and redis.call('PUBSUB', 'NUMSUB', ch)[2] > 0 then
    live = live + 1
  else
    redis.call('ZREM', KEYS[1], r)
  end
end
if live > 0 then return 0 end
if redis.call('ZREM', KEYS[2], ARGV[2]) == 0 then return 0 end
redis.call('SET', KEYS[3], now, 'EX', ARGV[3])
return now
