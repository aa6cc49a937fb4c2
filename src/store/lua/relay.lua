-- RELAY  KEYS routes rbox
--        ARGV uid frame except-channel except-conn store max ttl
-- the channels reached; with store=1 and none reached, kept in rbox
--
-- prefix: lib.lua

local sent = publish(KEYS[1], ARGV[1], 0, ARGV[2], ARGV[3], ARGV[4])
if sent == 0 and ARGV[5] == '1' then
  redis.call('RPUSH', KEYS[2], ARGV[2])
  redis.call('LTRIM', KEYS[2], -tonumber(ARGV[6]), -1)
  redis.call('EXPIRE', KEYS[2], ARGV[7])
end
return sent
