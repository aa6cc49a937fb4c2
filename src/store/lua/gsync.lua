-- GSYNC  batch: per item
--        KEYS log logq pos from spos  ARGV uid after joined-ms limit check
-- A member's connection reads the group's log after max(after, the
-- member's delivered position), up to limit entries, leaving out what
-- was sent before it joined.  Per item: {entries scanned, last position,
-- {n, id, entry, n, id, entry...}} with the entries in seq order (two
-- senders' messages may enter the log in another order than their seq).
-- With check=1, when the log does not hold everything since the member's
-- delivered seq (spos; the log starts at "from", GDELIVER): {-1, "0", {},
-- from} and nothing read: PostgreSQL has the older ones.
--
-- prefix: lib.lua

return batch(function(k, a)
  if a[5] == '1' then
    local floor = tonumber(redis.call('GET', k[4]) or '0')
    if floor > 1
       and tonumber(redis.call('HGET', k[5], a[1]) or '0') < floor - 1 then
      return {-1, '0', {}, string.format('%.0f', floor)}
    end
  end
  local from = tonumber(a[2])
  local p = tonumber(redis.call('HGET', k[3], a[1]) or '0')
  if p > from then from = p end
  local last = string.format('%.0f', from)
  local ids = redis.call('ZRANGEBYSCORE', k[2], '(' .. last, '+inf',
                         'WITHSCORES', 'LIMIT', 0, a[4])
  local names, rows, out = {}, {}, {}
  for i = 1, #ids, 2 do names[#names + 1] = ids[i] end
  if #names > 0 then
    local joined = tonumber(a[3])
    local vals = redis.call('HMGET', k[1], unpack(names))
    for i = 1, #names do
      last = ids[2 * i]
      local v = vals[i]
      if v then
        local from, seq, ts = string.match(v, '^(%S+) (%S+) %S+ (%S+) ')
        if seq and tonumber(ts) >= joined and from ~= a[1] then
          rows[#rows + 1] = {tonumber(seq), ids[2 * i], names[i], v}
        end
      end
    end
  end
  table.sort(rows, function(x, y) return x[1] < y[1] end)
  for _, r in ipairs(rows) do
    out[#out + 1] = r[2]
    out[#out + 1] = r[3]
    out[#out + 1] = r[4]
  end
  return {#names, last, out, '0'}
end)
