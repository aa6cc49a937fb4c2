-- GDELIVER  batch: per item
--           KEYS log logq logn members version from
--           ARGV gid id "<from> <seq> <conv> <ts>" frame max ttl all
--                except-channel except-conn
-- A durable group message into the group's log, once for every member
-- (log: id -> "<from> <seq> <conv> <ts> <frame>", logq: position -> id,
-- positions from logn, started at Redis's clock in microseconds like an
-- inbox's).  A group with at least twice as many members as there are
-- worker channels goes to every worker channel in the same run, one line
-- naming all members (lib.lua's gbroadcast), whatever the number of
-- Redis servers.  A smaller one, with all=1 (one Redis server: the
-- members' routes are here), goes to every channel holding members'
-- connections, one line per channel naming its members (gqueue).  The
-- sending connection gets nothing.  Per item: {n} (or {-1} for a message
-- already logged), with all=0 and a smaller group {n, {member...}} for
-- the caller to publish on each server (GPUB); {"miss", version} when the member list is not
-- cached (nothing done: it is filled first).  The log keeps its max
-- newest entries; "from" is the seq from which it holds every message
-- (the first message of a new log, then past what trims took): members
-- behind it read PostgreSQL first (GSYNC, ngx_chat_gsync.c).  An item
-- whose max or ttl is not a number is an error and changes nothing (the
-- batch's other items go on).
--
-- prefix: lib.lua

local trims = {}
local res = batch(function(k, a)
  local max = tonumber(a[5])
  if not max or not tonumber(a[6]) then
    return redis.error_reply('GDELIVER: max and ttl must be numbers')
  end
  if redis.call('EXISTS', k[4]) == 0 then
    return {'miss', redis.call('GET', k[5]) or '0'}
  end
  if redis.call('HEXISTS', k[1], a[2]) == 1 then return {-1} end
  local n, made = inbox_next(k[3])
  if made then
    redis.call('SET', k[6], string.match(a[3], '^%S+ (%S+)'))
  end
  n = string.format('%.0f', n)
  redis.call('HSET', k[1], a[2], a[3] .. ' ' .. a[4])
  redis.call('ZADD', k[2], n, a[2])
  if not trims[k[2]] then
    trims[k[2]] = true
    trims[#trims + 1] = {k[2], k[1], max, k[6]}
  end
  for i = 1, 3 do touch(k[i], a[6]) end
  touch(k[6], a[6])
  local members = redis.call('SMEMBERS', k[4])
  local head = string.match(a[3], '^%S+ %S+')
  if gbroadcast(members, a[1], n, a[2], head, a[4], a[8], a[9]) then
    return {n}
  end
  if a[7] == '1' then
    gqueue(members, a[1], n, a[2], head, a[4], a[8], a[9])
    return {n}
  end
  return {n, members}
end)
for _, t in ipairs(trims) do
  local over = redis.call('ZCARD', t[1]) - t[3]
  if over > 0 then
    local old = redis.call('ZRANGE', t[1], 0, over - 1)
    local top = 0
    for _, v in ipairs(redis.call('HMGET', t[2], unpack(old))) do
      local seq = v and tonumber(string.match(v, '^%S+ (%S+)'))
      if seq and seq > top then top = seq end
    end
    redis.call('ZREMRANGEBYRANK', t[1], 0, over - 1)
    redis.call('HDEL', t[2], unpack(old))
    if top + 1 > tonumber(redis.call('GET', t[4]) or '0') then
      redis.call('SET', t[4], string.format('%.0f', top + 1))
    end
  end
end
flush()
return res
