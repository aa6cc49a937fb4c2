-- REFILL  KEYS inbox inboxq inboxn inboxok epoch
--         ARGV ttl grace-ms complete id head frame [id head frame...]
-- puts messages that PostgreSQL holds as undelivered (oldest first) into
-- the inbox, below everything there, unless the inbox has them (in any
-- state); with complete=1 the inbox is then known complete (inboxok),
-- but only once Redis has held its data for grace-ms (the epoch key is
-- as old as that): what was acknowledged just before Redis lost it may
-- not be in PostgreSQL yet.  The entries added.
--
-- prefix: lib.lua

inbox_n(KEYS[3])
local low = tonumber(redis.call('GET', KEYS[3])) + 1
local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if first[2] and tonumber(first[2]) < low then
  low = tonumber(first[2])
end
local new = {}
for i = 4, #ARGV - 2, 3 do
  if redis.call('HEXISTS', KEYS[1], ARGV[i]) == 0 then
    new[#new + 1] = i
  end
end
for k, i in ipairs(new) do
  redis.call('HSET', KEYS[1], ARGV[i],
             'u ' .. ARGV[i + 1] .. ' ' .. ARGV[i + 2])
  redis.call('ZADD', KEYS[2],
             string.format('%.0f', low - #new - 1 + k), ARGV[i])
end
if ARGV[3] == '1' then
  local now = now_ms()
  redis.call('SET', KEYS[5], now, 'NX')
  if now - tonumber(redis.call('GET', KEYS[5])) >= tonumber(ARGV[2])
  then
    redis.call('SET', KEYS[4], '1', 'EX', ARGV[1])
  end
end
-- after inboxok's: the entries' keys never expire a millisecond before it
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ARGV[1]) end
return #new
