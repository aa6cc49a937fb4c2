-- GINVAL  KEYS members version  ARGV ttl
-- A membership change committed in PostgreSQL: the cached member list
-- goes and the version moves on (a fill under way does not land, GFILL).
-- The new version.

local v = redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[1])
return v
