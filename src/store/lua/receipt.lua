-- RECEIPT  batch: per item
--          KEYS inbox inboxq inboxd [sender-routes sender-rbox]
--          ARGV id d|r seen-max ttl [sender frame rbox-max]
-- per item: 1 when the message's state moved forward, else 0; with the
-- sender's keys on the same server, the receipt frame goes to the sender
-- at once (kept in its rbox when none of its connections is reached),
-- and 2 says so.  One PUBLISH per channel for the whole call; TTLs and
-- the delivered memory's trim once per inbox.
--
-- prefix: lib.lua

local trims = {}
local res = batch(function(k, a)
  local v = redis.call('HGET', k[1], a[1])
  if not v then return 0 end
  local st = string.sub(v, 1, 1)
  if st == a[2] or st == 'r' then return 0 end
  local head = string.match(v, '^%a (%S+ %S+ %S+)')
  local n = redis.call('ZSCORE', k[2], a[1])
  if n then
    redis.call('ZREM', k[2], a[1])
  else
    n = redis.call('ZSCORE', k[3], a[1]) or 0
  end
  redis.call('HSET', k[1], a[1], a[2] .. ' ' .. head)
  redis.call('ZADD', k[3], n, a[1])
  if not trims[k[3]] then
    trims[k[3]] = true
    trims[#trims + 1] = {k[3], k[1], tonumber(a[3])}
  end
  for i = 1, 3 do touch(k[i], a[4]) end
  if not k[4] then return 1 end
  tell(k[4], a[5], a[6], k[5], a[7], a[4])
  return 2
end)
for _, t in ipairs(trims) do trim(t[1], t[2], t[3]) end
keep(flush())
return res
