-- Functions shared by the scripts whose header says "prefix: lib.lua":
-- the generator (gen.sh) puts this file's code before theirs.  Times are
-- Redis's own (TIME), so that nodes with different clocks agree on route
-- expiry.
--
-- now_ms()  Redis's clock in milliseconds
-- publish(key, uid, n, frame, xch, xconn)  PUBLISH "<uid> <conn> <n>
--     <frame>" once to each channel of the routes in key (expired routes
--     go first; a channel nobody listens on loses its routes); conn is
--     xconn on the channel xch (the sender's own connection), else 0.
--     The channels reached.
-- trim(zkey, hkey, max)  keeps the max newest of zkey, dropping the
--     others from hkey too; how many went
-- inbox_n(key)  starts an inbox position counter at Redis's clock in
--     microseconds when there is none

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function publish(key, uid, n, frame, xch, xconn)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now_ms())
  local routes = redis.call('ZRANGE', key, 0, -1)
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
local function trim(zkey, hkey, max)
  local over = redis.call('ZCARD', zkey) - max
  if over <= 0 then return 0 end
  local old = redis.call('ZRANGE', zkey, 0, over - 1)
  redis.call('ZREMRANGEBYRANK', zkey, 0, over - 1)
  redis.call('HDEL', hkey, unpack(old))
  return over
end
local function inbox_n(key)
  if redis.call('EXISTS', key) == 0 then
    local t = redis.call('TIME')
    redis.call('SET', key,
               t[1] .. string.format('%06d', tonumber(t[2])))
  end
end
