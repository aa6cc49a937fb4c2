-- SYNC  batch: per item
--       KEYS routes inbox inboxq rbox inboxok revoked
--       ARGV route-or-empty route-ttl-ms after limit drain-rbox check
-- per item: {ids scanned, last n, {n, entry, n, entry...}, {receipt...}};
-- with check=1 and an inbox that is not known complete: {-1, "0", {}, {}}
-- and nothing done (the connection refills it from PostgreSQL first);
-- registering a route of a connection whose token was logged out meanwhile
-- (revoked: its chat:revoked key): {-2, "0", {}, {}}, nothing registered.
-- A logout sets that key before it relays its close to the routes, so a
-- connection registering at the same time either sees the key here or is
-- found by the relay.
-- The connections that one round of a worker opens register and read in
-- one call.
--
-- prefix: lib.lua

return batch(function(k, a)
  if a[6] == '1' and redis.call('EXISTS', k[5]) == 0 then
    return {-1, '0', {}, {}}
  end
  if a[1] ~= '' and redis.call('EXISTS', k[6]) == 1 then
    return {-2, '0', {}, {}}
  end
  if a[1] ~= '' then
    redis.call('ZADD', k[1], now_ms() + tonumber(a[2]), a[1])
    redis.call('PEXPIRE', k[1], a[2])
  end
  local ids = redis.call('ZRANGEBYSCORE', k[3], '(' .. a[3], '+inf',
                         'WITHSCORES', 'LIMIT', 0, a[4])
  local out, names, last = {}, {}, a[3]
  for i = 1, #ids, 2 do names[#names + 1] = ids[i] end
  if #names > 0 then
    local vals = redis.call('HMGET', k[2], unpack(names))
    for i = 1, #names do
      last = ids[2 * i]
      if vals[i] then
        out[#out + 1] = ids[2 * i]
        out[#out + 1] = vals[i]
      end
    end
  end
  local rcpt = {}
  if a[5] == '1' then
    rcpt = redis.call('LRANGE', k[4], 0, -1)
    redis.call('DEL', k[4])
  end
  return {#names, last, out, rcpt}
end)
