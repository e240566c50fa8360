-- Points readers under prefix ARGV[1] at version ARGV[2]'s live build.
local ns = 'v' .. ARGV[2] .. '.' .. (redis.call('GET', ARGV[1] .. ':v' .. ARGV[2] .. ':build') or '0')
redis.call('SET', ARGV[1] .. ':ptr', ns)
return ns
