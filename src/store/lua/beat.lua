-- BEAT  KEYS live  ARGV user...  heartbeats; the users new online.  One
-- ZMSCORE and one ZADD for all of them.
--
-- prefix: lib.lua

local now, new, args = now_ms(), {}, {}
local had = redis.call('ZMSCORE', KEYS[1], unpack(ARGV))
for i = 1, #ARGV do
  if not had[i] then new[#new + 1] = ARGV[i] end
  args[2 * i - 1] = now
  args[2 * i] = ARGV[i]
end
redis.call('ZADD', KEYS[1], unpack(args))
return new
