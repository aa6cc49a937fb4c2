-- CLAIM  batch: per item
--        KEYS rate dedup [seq]  ARGV interval-us(0: no limit) burst
--        pending-ttl (s: how long "pending" holds the client_id; the ack,
--        SET later with its own TTL, replaces it)
-- per item: {"rate", retry-after-ms} | {"new"[, seq]} | {"dup", first ack
-- or "pending"} | {"seed"}; with the conversation's counter on the same
-- server (KEYS[3]) a new claim takes its seq at once, and when Redis has
-- no such counter nothing is taken ("seed": it is set from PostgreSQL
-- first).  The rate limit is GCRA: the key holds the theoretical arrival
-- time, read once and written once per call however many of the user's
-- sends the call holds.
--
-- prefix: lib.lua

local now, tats = nil, {}
local res = batch(function(k, a)
  if k[3] and redis.call('EXISTS', k[3]) == 0 then
    return {'seed'}
  end
  if a[1] ~= '0' then
    if not now then now = now_ms() * 1000 end
    local t = tats[k[1]]
    if not t then
      t = {tat = tonumber(redis.call('GET', k[1]) or '0')}
      tats[k[1]] = t
      tats[#tats + 1] = k[1]
    end
    local iv = tonumber(a[1])
    local tat = t.tat
    if tat < now then tat = now end
    local over = tat - now - iv * tonumber(a[2])
    if over > 0 then return {'rate', math.ceil(over / 1000)} end
    t.tat = tat + iv
  end
  if redis.call('SET', k[2], 'pending', 'NX', 'EX', a[3]) then
    if k[3] then return {'new', redis.call('INCR', k[3])} end
    return {'new'}
  end
  return {'dup', redis.call('GET', k[2])}
end)
for _, key in ipairs(tats) do
  local tat = tats[key].tat
  redis.call('SET', key, string.format('%.0f', tat), 'PX',
             math.ceil((tat - now) / 1000) + 1000)
end
return res
