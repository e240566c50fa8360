-- Prepares a replay or a rebuild of one version, atomically.
-- ARGV[1]: JSON {prefix, version, rebuild (bool), gen {"topic/partition": generation},
-- parts [{p, start}]}.
-- Replay: the live build's position of each part moves to its start, and ids applied at or after
-- it are forgotten, so those events apply again. Rebuild: a fresh, empty build is opened (its
-- number is returned) and the live one keeps serving. Either way the new claim generations fence
-- older writers from now on.
local b = cjson.decode(ARGV[1])
local vkey = b.prefix .. ':v' .. string.format('%d', b.version)
local live = redis.call('GET', vkey .. ':build') or '0'
local build = live
if b.rebuild then
  local n = redis.call('INCR', vkey .. ':nextbuild')
  if n <= tonumber(live) then
    n = tonumber(live) + 1
    redis.call('SET', vkey .. ':nextbuild', n)
  end
  build = string.format('%d', n)
end
local ns = vkey .. '.' .. build .. ':'
for part, g in pairs(b.gen) do
  redis.call('HSET', ns .. '__gen', part, string.format('%d', g))
end
if not b.rebuild then
  local posk, idk, idat = ns .. '__pos', ns .. '__ids', ns .. '__idat'
  local starts = {}
  for _, p in ipairs(b.parts) do
    starts[p.p] = p.start
    redis.call('HSET', posk, p.p, string.format('%d', p.start))
  end
  local all = redis.call('HGETALL', idk)
  for i = 1, #all, 2 do
    local part, off = string.match(all[i + 1], '^(.*)/(%d+)$')
    local start = starts[part]
    if start and tonumber(off) >= start then
      redis.call('HDEL', idk, all[i])
      redis.call('ZREM', idat, all[i])
    end
  end
end
return build
