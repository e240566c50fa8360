-- Makes build ARGV[3] the live build of version ARGV[2] under prefix ARGV[1]; readers pointed at
-- the old build follow at once. Returns the old build (its keys are dropped afterwards).
local vkey = ARGV[1] .. ':v' .. ARGV[2]
local old = redis.call('GET', vkey .. ':build') or '0'
redis.call('SET', vkey .. ':build', ARGV[3])
local ptr = redis.call('GET', ARGV[1] .. ':ptr')
if ptr == 'v' .. ARGV[2] .. '.' .. old then
  redis.call('SET', ARGV[1] .. ':ptr', 'v' .. ARGV[2] .. '.' .. ARGV[3])
end
return old
