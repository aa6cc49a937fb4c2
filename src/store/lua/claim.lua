-- CLAIM  KEYS rate dedup [seq]  ARGV interval-us(0: no limit) burst
--        dedup-ttl
-- {"rate", retry-after-ms} | {"new"[, seq]} | {"dup", first ack or
-- "pending"} | {"seed"}; with the conversation's counter on the same
-- server (KEYS[3]) a new claim takes its seq at once, and when Redis has
-- no such counter nothing is taken ("seed": it is set from PostgreSQL
-- first).  The rate limit is GCRA: the key holds the theoretical arrival
-- time.

if KEYS[3] and redis.call('EXISTS', KEYS[3]) == 0 then
  return {'seed'}
end
if ARGV[1] ~= '0' then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local iv = tonumber(ARGV[1])
  local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
  if tat < now then tat = now end
  local over = tat - now - iv * tonumber(ARGV[2])
  if over > 0 then return {'rate', math.ceil(over / 1000)} end
  tat = tat + iv
  redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX',
             math.ceil((tat - now) / 1000) + 1000)
end
if redis.call('SET', KEYS[2], 'pending', 'NX', 'EX', ARGV[3]) then
  if KEYS[3] then return {'new', redis.call('INCR', KEYS[3])} end
  return {'new'}
end
return {'dup', redis.call('GET', KEYS[2])}
