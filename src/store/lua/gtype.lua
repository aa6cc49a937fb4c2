-- GTYPE  batch: per item
--        KEYS members version  ARGV gid uid frame all
-- Typing in a group: {"forbidden"} unless uid is a member, {"miss",
-- version} when the member list is not cached; else {"ok"} and, for a
-- group with at least twice as many members as worker channels (lib.lua's
-- gbroadcast) or with all=1, the frame goes to every other member's
-- channels in this run (never stored), or with all=0 {"ok",
-- {member...}} for the caller to publish on each server (GPUB).
--
-- prefix: lib.lua

local res = batch(function(k, a)
  if redis.call('EXISTS', k[1]) == 0 then
    return {'miss', redis.call('GET', k[2]) or '0'}
  end
  if redis.call('SISMEMBER', k[1], a[2]) == 0 then return {'forbidden'} end
  local members = redis.call('SMEMBERS', k[1])
  if gbroadcast(members, a[1], 0, '-', a[2] .. ' 0', a[3], '', '0', a[2])
  then
    return {'ok'}
  end
  if a[4] == '1' then
    gqueue(members, a[1], 0, '-', a[2] .. ' 0', a[3], '', '0', a[2])
    return {'ok'}
  end
  return {'ok', members}
end)
flush()
return res
