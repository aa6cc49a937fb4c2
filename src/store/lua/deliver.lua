-- DELIVER  batch: per item
--          KEYS routes inbox inboxq inboxn inboxok [sender-routes]
--          ARGV uid id "<from> <seq> <conv>" frame max ttl
--               [sender except-channel except-conn]
-- per item: -1 when the message is in the inbox already, else the
-- recipient's channels reached; with the sender's routes on the same
-- server, its other connections get the frame too (the sending one and a
-- sender with no other connection get nothing).  Inbox positions start
-- at Redis's clock in microseconds, so that they keep growing when Redis
-- lost the inbox (16 digits: Lua's numbers are doubles, exact up to 2^53,
-- and are formatted with %.0f, never by tostring()); an inbox that
-- overflows is no longer complete (inboxok goes: the next connection
-- reads PostgreSQL, ngx_chat_refill.c).  One PUBLISH per channel for the
-- whole call.
-- TTLs: the inbox's four keys get theirs together when the counter is
-- made and at every TOUCH_EVERY-th position, so that inboxok never
-- outlives the entries it vouches for (a receipt or a refill may lengthen
-- the others', never inboxok's alone).  An inboxq that receipts emptied
-- is made again here, perhaps with the hash: when the call leaves no
-- more entries in inboxq than it added, both get their TTL at once.  An
-- inbox's last TOUCH_EVERY - 1 messages before a long quiet may then
-- expire up to that many messages early: the next connection refills
-- the inbox from PostgreSQL, as when Redis loses it.
--
-- prefix: lib.lua

local trims = {}
local res = batch(function(k, a)
  if redis.call('HSETNX', k[2], a[2], 'u ' .. a[3] .. ' ' .. a[4]) == 0 then
    return -1
  end
  local n, made = inbox_next(k[4])
  n = string.format('%.0f', n)
  redis.call('ZADD', k[3], n, a[2])
  local t = trims[k[3]]
  if not t then
    t = {k[3], k[2], tonumber(a[5]), k[5], 0, a[6]}
    trims[k[3]] = t
    trims[#trims + 1] = t
  end
  t[5] = t[5] + 1
  if made or tonumber(n) % TOUCH_EVERY == 0 then
    -- inboxok first: the others' EXPIREs come later (flush()), so their
    -- expiry is never a millisecond before its
    redis.call('EXPIRE', k[5], a[6])
    for i = 2, 4 do touch(k[i], a[6]) end
  end
  if k[6] then queue(k[6], a[7], 0, a[4], a[8], a[9]) end
  return queue(k[1], a[1], n, a[4], '', '0')
end)
for _, t in ipairs(trims) do
  local card = redis.call('ZCARD', t[1])
  if card <= t[5] then
    touch(t[1], t[6])
    touch(t[2], t[6])
  end
  if trim(t[1], t[2], t[3], card) > 0 then redis.call('DEL', t[4]) end
end
return reached(res, flush())
