-- SYNC  KEYS routes inbox inboxq rbox inboxok
--       ARGV route-or-empty route-ttl-ms after limit drain-rbox check
-- {ids scanned, last n, {n, entry, n, entry...}, {receipt...}}; with
-- check=1 and an inbox that is not known complete: {-1, "0", {}, {}} and
-- nothing done (the connection refills it from PostgreSQL first)
--
-- prefix: lib.lua

if ARGV[6] == '1' and redis.call('EXISTS', KEYS[5]) == 0 then
  return {-1, '0', {}, {}}
end
if ARGV[1] ~= '' then
  redis.call('ZADD', KEYS[1], now_ms() + tonumber(ARGV[2]), ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
local ids = redis.call('ZRANGEBYSCORE', KEYS[3], '(' .. ARGV[3],
                       '+inf', 'WITHSCORES', 'LIMIT', 0, ARGV[4])
local out, names, last = {}, {}, ARGV[3]
for i = 1, #ids, 2 do names[#names + 1] = ids[i] end
if #names > 0 then
  local vals = redis.call('HMGET', KEYS[2], unpack(names))
  for i = 1, #names do
    last = ids[2 * i]
    if vals[i] then
      out[#out + 1] = ids[2 * i]
      out[#out + 1] = vals[i]
    end
  end
end
local rcpt = {}
if ARGV[5] == '1' then
  rcpt = redis.call('LRANGE', KEYS[4], 0, -1)
  redis.call('DEL', KEYS[4])
end
return {#names, last, out, rcpt}
