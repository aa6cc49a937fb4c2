-- REFRESH  KEYS routes...  ARGV ttl-ms route...
-- the route ARGV[i + 1] in the set KEYS[i]: many connections in one call
--
-- prefix: lib.lua

local exp = now_ms() + tonumber(ARGV[1])
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], exp, ARGV[i + 1])
  redis.call('PEXPIRE', KEYS[i], ARGV[1])
end
return #KEYS
