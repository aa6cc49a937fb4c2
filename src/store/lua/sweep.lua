-- SWEEP  KEYS live  ARGV ttl-ms limit seen-ttl
-- takes out who has had no heartbeat for ttl: {user, last_seen}...
--
-- prefix: lib.lua

local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf',
                       now_ms() - tonumber(ARGV[1]), 'WITHSCORES',
                       'LIMIT', 0, tonumber(ARGV[2]))
for i = 1, #old, 2 do
  redis.call('ZREM', KEYS[1], old[i])
  redis.call('SET', 'chat:seen:{' .. old[i] .. '}', old[i + 1],
             'EX', ARGV[3])
end
return old
