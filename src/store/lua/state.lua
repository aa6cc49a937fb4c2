-- STATE  KEYS live  ARGV user...  {heartbeat or '', last_seen or ''}...

local out = {}
for i = 1, #ARGV do
  out[#out + 1] = redis.call('ZSCORE', KEYS[1], ARGV[i]) or ''
  out[#out + 1] = redis.call('GET', 'chat:seen:{' .. ARGV[i] .. '}')
                  or ''
end
return out
