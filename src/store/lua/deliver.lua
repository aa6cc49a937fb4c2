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
-- whole call; TTLs and trims once per inbox.
--
-- prefix: lib.lua

local trims = {}
local res = batch(function(k, a)
  if redis.call('HEXISTS', k[2], a[2]) == 1 then return -1 end
  inbox_n(k[4])
  local n = string.format('%.0f', redis.call('INCR', k[4]))
  redis.call('HSET', k[2], a[2], 'u ' .. a[3] .. ' ' .. a[4])
  redis.call('ZADD', k[3], n, a[2])
  if not trims[k[3]] then
    trims[k[3]] = true
    trims[#trims + 1] = {k[3], k[2], tonumber(a[5]), k[5]}
  end
  for i = 2, 5 do touch(k[i], a[6]) end
  if k[6] then queue(k[6], a[7], 0, a[4], a[8], a[9]) end
  return queue(k[1], a[1], n, a[4], '', '0')
end)
for _, t in ipairs(trims) do
  if trim(t[1], t[2], t[3]) > 0 then redis.call('DEL', t[4]) end
end
return reached(res, flush())
