-- Looks up key ARGV[3] in the build readers are pointed at under prefix ARGV[1] (version ARGV[2]'s
-- live build when nothing was promoted), atomically with the pointer.
-- Returns {namespace, type, value}.
local ptr = redis.call('GET', ARGV[1] .. ':ptr')
if not ptr then
  ptr = 'v' .. ARGV[2] .. '.' .. (redis.call('GET', ARGV[1] .. ':v' .. ARGV[2] .. ':build') or '0')
end
local k = ARGV[1] .. ':' .. ptr .. ':' .. ARGV[3]
local t = redis.call('TYPE', k).ok
if t == 'hash' then
  return { ptr, t, redis.call('HGETALL', k) }
elseif t == 'string' then
  return { ptr, t, redis.call('GET', k) }
elseif t == 'set' then
  return { ptr, t, redis.call('SMEMBERS', k) }
end
return { ptr, 'none' }
