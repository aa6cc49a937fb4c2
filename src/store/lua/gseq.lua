-- GSEQ  batch: per item
--       KEYS seq members version  ARGV uid
-- per item: {"seq", n} the group's next seq for a member; {"forbidden"}
-- for anyone else; {"miss", version} when Redis does not have the member
-- list (it is filled from PostgreSQL first, GFILL, with that version);
-- {"seed"} when it has no counter (set from PostgreSQL first, as for
-- one-to-one).  The list and the counter are the group's keys, on the
-- group's server (ngx_chat_group.c).
--
-- prefix: lib.lua

return batch(function(k, a)
  if redis.call('EXISTS', k[2]) == 0 then
    return {'miss', redis.call('GET', k[3]) or '0'}
  end
  if redis.call('SISMEMBER', k[2], a[1]) == 0 then return {'forbidden'} end
  if redis.call('EXISTS', k[1]) == 0 then return {'seed'} end
  return {'seq', redis.call('INCR', k[1])}
end)
