-- GRECEIPT  batch: per item
--           KEYS logq pos read spos [sender-routes sender-rbox]
--           ARGV id uid d|r ttl seq [sender frame rbox-max]
-- A member's receipt for a group message (its connection got it: the
-- gateway knows its seq): the member's delivered position in the log
-- (and for "r" its read position too) moves to the message's, when the
-- log still has it, and its delivered seq (spos, for GSYNC's check) to
-- the message's seq.  Per item "moved" when something moved, else
-- "same" (another device, an older message).  With the sender's keys on
-- this server, the receipt frame goes to the sender in the same run (one
-- PUBLISH per channel for the whole call), or is kept for it when none of
-- its connections is reached.  An item whose ttl, seq or rbox-max is not
-- a number is an error and changes nothing (the batch's other items go
-- on).
--
-- prefix: lib.lua

local res = batch(function(k, a)
  if not tonumber(a[4]) or not tonumber(a[5])
     or (k[5] and not tonumber(a[8])) then
    return redis.error_reply('GRECEIPT: ttl, seq and rbox-max must be '
                             .. 'numbers')
  end
  local n = tonumber(redis.call('ZSCORE', k[1], a[1]) or '0')
  local moved = false
  local keys = {k[2]}
  if a[3] == 'r' then keys[2] = k[3] end
  for _, key in ipairs(keys) do
    if n > 0 and tonumber(redis.call('HGET', key, a[2]) or '0') < n then
      redis.call('HSET', key, a[2], string.format('%.0f', n))
      moved = true
    end
    touch(key, a[4])
  end
  if tonumber(redis.call('HGET', k[4], a[2]) or '0') < tonumber(a[5]) then
    redis.call('HSET', k[4], a[2], a[5])
    moved = true
  end
  touch(k[4], a[4])
  if k[5] then tell(k[5], a[6], a[7], k[6], a[8], a[4]) end
  if moved then return 'moved' end
  return 'same'
end)
keep(flush())
return res
