-- GFILL  KEYS members version  ARGV version ttl uid...
-- The group's member list from PostgreSQL, set only while the version is
-- the one read before PostgreSQL was asked (every membership change
-- raises it, GINVAL): a list read before a change never lands after it.
-- 1 when set, 0 when the version moved (read again).  No uid (a group
-- has members, ngx_chat_group.c never sends an empty list) or a ttl that
-- is not a number is an error, and nothing is set.

if #ARGV < 3 then return redis.error_reply('GFILL: no members') end
if not tonumber(ARGV[2]) then
  return redis.error_reply('GFILL: the ttl must be a number')
end
if (redis.call('GET', KEYS[2]) or '0') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
for i = 3, #ARGV, 1000 do
  redis.call('SADD', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
