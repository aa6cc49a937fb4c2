-- Functions shared by the scripts whose header says "prefix: lib.lua":
-- the generator (gen.sh) puts this file's code before theirs.  Times are
-- Redis's own (TIME), so that nodes with different clocks agree on route
-- expiry.
--
-- now_ms()  Redis's clock in milliseconds (one TIME per call)
-- publish(key, uid, n, frame, xch, xconn)  PUBLISH "<uid> <conn> <n>
--     <frame>" once to each channel of the routes in key (expired routes
--     go first; a channel nobody listens on loses its routes); conn is
--     xconn on the channel xch (the sender's own connection), else 0.
--     The channels reached.
-- live(key)  the routes in key that have not expired (one ZRANGE; the
--     expired ones go, one ZREM when there are any)
-- trim(zkey, hkey, max[, card])  keeps the max newest of zkey (card: its
--     ZCARD when the caller has it), dropping the others from hkey too;
--     how many went
-- clock_us()  Redis's clock in microseconds (a TIME of its own)
-- inbox_n(key)  starts an inbox position counter at Redis's clock in
--     microseconds when there is none
-- inbox_next(key)  the next position of an inbox counter (one INCR; a
--     counter that was not there starts at Redis's clock in
--     microseconds), and whether the counter was made here
--
-- For multi-item scripts (src/store/ngx_chat_batch.c: ARGV is
-- "<n> <nkeys> <nargs> <args...>" per item, the items' keys in order):
-- batch(item)  item(keys, args) for each item, under pcall: the replies,
--     an error element for an item that failed
-- queue(key, uid, n, frame, xch, xconn)  as publish(), but the lines
--     wait for flush(): one PUBLISH per channel per call, its lines
--     "<uid> <conn> <n> <frame>" joined by newlines after a "*" line; the
--     route "<xch> <xconn>" itself gets nothing.  The channels queued to
-- flush()  the queued PUBLISHes; routes on channels nobody listens on go.
--     channel -> subscribers
-- reached(res, subs)  each item's list of channels (queue's, gqueue's)
--     becomes how many of them had a subscriber (subs: flush()'s)
-- tell(routes, uid, frame, rbox, max, ttl)  a frame for a user that is
--     kept in its list rbox (the max newest, for ttl) when none of its
--     routes is reached; at keep()
-- keep(subs)  what tell() queued and nobody got goes to the lists
-- touch(key, ttl)  EXPIRE key ttl once per call, at flush()
-- TOUCH_EVERY  an inbox's TTLs are refreshed by the deliveries and
--     receipts whose position is a multiple of this, and whenever one of
--     its keys is made (see deliver.lua)
-- gqueue(members, gid, n, id, head, frame, xch, xconn, skip)  a group's
--     frame, queued once per channel that holds members' routes: the line
--     "g <gid> <n> <id> <from> <seq> <xconn> <uid,uid,...> <frame>" (head:
--     "<from> <seq>") names the members
--     that channel's worker writes it to (skip: a member left out); xconn
--     on the channel xch (the sending connection), else 0.  Expired
--     routes are not trimmed here (a call per member, a quarter of a
--     1,000-member fan-out's time): a dead worker's go when its channel
--     has no subscriber, as anywhere.  The channels queued to
-- gbroadcast(members, gid, n, id, head, frame, xch, xconn, skip)  as
--     gqueue(), without reading a route: when the group has at least twice
--     as many members as there are worker channels with a subscriber
--     (PUBSUB CHANNELS chat:w:*, once per run), every such channel gets
--     one line naming all the members, and each worker writes to those
--     of them it holds (a member it does not hold costs it a lookup).
--     For a large group that is one PUBLISH per worker instead of one
--     ZRANGE per member (6 of the 8 ms a 1,000-member message took
--     here), and since every worker subscribes on every Redis server,
--     the group's server reaches them all: no GPUB.  The channels queued
--     to, or nil when the group is smaller (then gqueue()).

local clock
local function now_ms()
  if not clock then
    local t = redis.call('TIME')
    clock = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return clock
end
local function live(key)
  local all = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
  if #all == 0 then return all end
  local now, out, dead = now_ms(), {}, {}
  for i = 1, #all, 2 do
    if tonumber(all[i + 1]) > now then
      out[#out + 1] = all[i]
    else
      dead[#dead + 1] = all[i]
    end
  end
  if #dead > 0 then redis.call('ZREM', key, unpack(dead)) end
  return out
end
local function publish(key, uid, n, frame, xch, xconn)
  local routes = live(key)
  local subs, sent = {}, 0
  for _, r in ipairs(routes) do
    local ch = string.match(r, '^(%S+)')
    if ch and subs[ch] == nil then
      local x = '0'
      if ch == xch then x = xconn end
      local msg = uid .. ' ' .. x .. ' ' .. n .. ' ' .. frame
      subs[ch] = redis.call('PUBLISH', ch, msg)
      if subs[ch] > 0 then sent = sent + 1 end
    end
    if ch and subs[ch] == 0 then redis.call('ZREM', key, r) end
  end
  return sent
end
local function trim(zkey, hkey, max, card)
  local over = (card or redis.call('ZCARD', zkey)) - max
  if over <= 0 then return 0 end
  local old = redis.call('ZRANGE', zkey, 0, over - 1)
  redis.call('ZREMRANGEBYRANK', zkey, 0, over - 1)
  redis.call('HDEL', hkey, unpack(old))
  return over
end
local function clock_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function inbox_n(key)
  if redis.call('EXISTS', key) == 0 then
    redis.call('SET', key, string.format('%.0f', clock_us()))
  end
end
local TOUCH_EVERY = 16
local function inbox_next(key)
  local n = redis.call('INCR', key)
  if n ~= 1 then return n, false end
  n = clock_us() + 1
  redis.call('SET', key, string.format('%.0f', n))
  return n, true
end
local function batch(item)
  local n, ki, ai, out = tonumber(ARGV[1]), 1, 2, {}
  for i = 1, n do
    local nk, na = tonumber(ARGV[ai]), tonumber(ARGV[ai + 1])
    local k, a = {}, {}
    for j = 1, nk do k[j] = KEYS[ki + j - 1] end
    for j = 1, na do a[j] = ARGV[ai + 1 + j] end
    ki, ai = ki + nk, ai + 2 + na
    local ok, r = pcall(item, k, a)
    if ok or type(r) == 'table' then
      out[i] = r
    else
      out[i] = redis.error_reply(tostring(r))
    end
  end
  return out
end
local routes_of, lines, chans, owners, ttls = {}, {}, {}, {}, {}
local function routes_in(key, keep_expired)
  local routes = routes_of[key]
  if not routes then
    if keep_expired then
      routes = redis.call('ZRANGE', key, 0, -1)
    else
      routes = live(key)
    end
    routes_of[key] = routes
    for _, r in ipairs(routes) do
      local ch = string.match(r, '^(%S+)')
      if ch then
        owners[ch] = owners[ch] or {}
        table.insert(owners[ch], {key, r})
      end
    end
  end
  return routes
end
local function line_to(ch, text)
  if not lines[ch] then
    lines[ch] = {'*'}
    chans[#chans + 1] = ch
  end
  table.insert(lines[ch], text)
end
local function gqueue(members, gid, n, id, head, frame, xch, xconn, skip)
  local per, order = {}, {}
  for _, uid in ipairs(members) do
    if uid ~= skip then
      local seen = {}
      for _, r in ipairs(routes_in('chat:routes:{' .. uid .. '}', true)) do
        local ch = string.match(r, '^(%S+)')
        if ch and not seen[ch] then
          seen[ch] = true
          if not per[ch] then
            per[ch] = {}
            order[#order + 1] = ch
          end
          table.insert(per[ch], uid)
        end
      end
    end
  end
  for _, ch in ipairs(order) do
    local x = '0'
    if ch == xch then x = xconn end
    line_to(ch, 'g ' .. gid .. ' ' .. n .. ' ' .. id .. ' ' .. head .. ' '
            .. x .. ' ' .. table.concat(per[ch], ',') .. ' ' .. frame)
  end
  return order
end
local workers
local function gbroadcast(members, gid, n, id, head, frame, xch, xconn,
                          skip)
  if not workers then
    workers = redis.call('PUBSUB', 'CHANNELS', 'chat:w:*')
  end
  if #members < 2 * #workers then return nil end
  local named = {}
  for _, uid in ipairs(members) do
    if uid ~= skip then named[#named + 1] = uid end
  end
  if #named == 0 then return {} end
  local rest = ' ' .. table.concat(named, ',') .. ' ' .. frame
  local line = 'g ' .. gid .. ' ' .. n .. ' ' .. id .. ' ' .. head .. ' '
  for _, ch in ipairs(workers) do
    local x = '0'
    if ch == xch then x = xconn end
    line_to(ch, line .. x .. rest)
  end
  return workers
end
local function queue(key, uid, n, frame, xch, xconn)
  local routes = routes_in(key)
  local own, seen, out = (xch or '') .. ' ' .. (xconn or ''), {}, {}
  for _, r in ipairs(routes) do
    local ch = string.match(r, '^(%S+)')
    if ch and r ~= own and not seen[ch] then
      seen[ch] = true
      out[#out + 1] = ch
      local x = '0'
      if ch == xch then x = xconn end
      line_to(ch, uid .. ' ' .. x .. ' ' .. n .. ' ' .. frame)
    end
  end
  return out
end
local function touch(key, ttl)
  ttls[key] = ttl
end
local function flush()
  local subs = {}
  for _, ch in ipairs(chans) do
    subs[ch] = redis.call('PUBLISH', ch, table.concat(lines[ch], '\n'))
    if subs[ch] == 0 then
      for _, o in ipairs(owners[ch] or {}) do
        redis.call('ZREM', o[1], o[2])
      end
    end
  end
  for key, ttl in pairs(ttls) do redis.call('EXPIRE', key, ttl) end
  return subs
end
local function reached(res, subs)
  for i, r in ipairs(res) do
    if type(r) == 'table' and not r.err then
      local c = 0
      for _, ch in ipairs(r) do
        if subs[ch] > 0 then c = c + 1 end
      end
      res[i] = c
    end
  end
  return res
end
local told = {}
local function tell(routes, uid, frame, rbox, max, ttl)
  told[#told + 1] = {queue(routes, uid, 0, frame, '-', '0'), rbox, frame,
                     tonumber(max), ttl}
end
local function keep(subs)
  for _, t in ipairs(told) do
    local sent = 0
    for _, ch in ipairs(t[1]) do sent = sent + subs[ch] end
    if sent == 0 then
      redis.call('RPUSH', t[2], t[3])
      redis.call('LTRIM', t[2], -t[4], -1)
      redis.call('EXPIRE', t[2], t[5])
    end
  end
end
