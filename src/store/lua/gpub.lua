-- GPUB  batch: per item
--       ARGV gid n id "<from> <seq>" frame except-channel except-conn skip
--            uid...
-- A group's frame to the channels of the listed members whose routes are
-- on this server (lib.lua's gqueue: one line per channel); skip is a
-- member left out ("0": none).  Per item: the channels reached.
--
-- prefix: lib.lua

local res = batch(function(k, a)
  local members = {}
  for i = 9, #a do members[#members + 1] = a[i] end
  return gqueue(members, a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8])
end)
return reached(res, flush())
