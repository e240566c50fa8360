-- Forgets up to 5000 applied ids of namespace ARGV[1] recorded before ARGV[2] (ms).
local ids = redis.call('ZRANGEBYSCORE', ARGV[1] .. '__idat', '-inf', '(' .. ARGV[2], 'LIMIT', 0, 5000)
for _, id in ipairs(ids) do
  redis.call('HDEL', ARGV[1] .. '__ids', id)
  redis.call('ZREM', ARGV[1] .. '__idat', id)
end
return #ids
