-- RECEIPT  batch: per item
--          KEYS inbox inboxq inboxd [sender-routes sender-rbox]
--          ARGV id d|r seen-max ttl [sender frame rbox-max]
-- per item: 1 when the message's state moved forward, else 0; with the
-- sender's keys on the same server, the receipt frame goes to the sender
-- at once (kept in its rbox when none of its connections is reached),
-- and 2 says so.  One PUBLISH per channel for the whole call; the
-- delivered memory's trim once per inbox.  TTLs as DELIVER's (every
-- TOUCH_EVERY-th position, and an inboxd made in this call at once).
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
  local t = trims[k[3]]
  if not t then
    t = {k[3], k[1], tonumber(a[3]), 0, a[4]}
    trims[k[3]] = t
    trims[#trims + 1] = t
  end
  t[4] = t[4] + 1
  if tonumber(n) % TOUCH_EVERY == 0 then
    touch(k[1], a[4])
    touch(k[3], a[4])
  end
  if not k[4] then return 1 end
  tell(k[4], a[5], a[6], k[5], a[7], a[4])
  return 2
end)
for _, t in ipairs(trims) do
  local card = redis.call('ZCARD', t[1])
  if card <= t[4] then touch(t[1], t[5]) end
  trim(t[1], t[2], t[3], card)
end
keep(flush())
return res
