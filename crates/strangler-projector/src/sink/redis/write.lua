-- Applies a batch of rendered events with exactly-once effect, atomically (a script runs alone).
-- ARGV[1]: JSON {prefix, version, build ("" = the version's live build), mode ("live" |
-- "redrive"), now (ms), gen {"topic/partition": generation}, events [{p, o, id, ops}]}.
-- Keys derive from the prefix (one Redis, not a cluster). Returns {applied, skipped}.
local b = cjson.decode(ARGV[1])
local prefix = b.prefix
local vkey = prefix .. ':v' .. string.format('%d', b.version)
local build = b.build
if build == '' then
  build = redis.call('GET', vkey .. ':build') or '0'
end
local ns = vkey .. '.' .. build .. ':'
local posk, genk, idk, idat = ns .. '__pos', ns .. '__gen', ns .. '__ids', ns .. '__idat'

-- Fencing: a writer holding an older claim generation than the sink has seen writes nothing.
for part, g in pairs(b.gen) do
  local cur = tonumber(redis.call('HGET', genk, part) or '0')
  if cur > g then
    return redis.error_reply('FENCED ' .. part .. ' is held by generation ' .. cur .. ', this writer has ' .. g)
  end
end

-- Types first: a script that fails half-way keeps its first writes, so refuse before writing.
local want = { hset = 'hash', set = 'string', sadd = 'set', srem = 'set' }
for _, e in ipairs(b.events) do
  for _, op in ipairs(e.ops) do
    local w = want[op.c]
    if w then
      local t = redis.call('TYPE', ns .. op.k).ok
      if t ~= 'none' and t ~= w then
        return redis.error_reply('WRONGTYPE ' .. op.k .. ' holds a ' .. t .. ', `' .. op.c .. '` needs a ' .. w)
      end
    end
  end
end
for part, g in pairs(b.gen) do
  redis.call('HSET', genk, part, string.format('%d', g))
end

local pos = {}
local applied, skipped = 0, 0
for _, e in ipairs(b.events) do
  local p = pos[e.p]
  if p == nil then
    p = tonumber(redis.call('HGET', posk, e.p) or '0')
    pos[e.p] = p
  end
  local here = e.p .. '/' .. string.format('%d', e.o)
  local skip = b.mode ~= 'redrive' and e.o < p
  if not skip and e.id ~= '' then
    local seen = redis.call('HGET', idk, e.id)
    if seen and (seen ~= here or b.mode == 'redrive') then
      skip = true
    end
  end
  if skip then
    skipped = skipped + 1
  else
    for _, op in ipairs(e.ops) do
      local k = ns .. op.k
      if op.c == 'hset' then
        if #op.f > 0 then redis.call('HSET', k, unpack(op.f)) end
        if #op.d > 0 then redis.call('HDEL', k, unpack(op.d)) end
      elseif op.c == 'set' then
        redis.call('SET', k, op.v)
      elseif op.c == 'del' then
        redis.call('DEL', k)
      elseif op.c == 'sadd' then
        redis.call('SADD', k, op.m)
      elseif op.c == 'srem' then
        redis.call('SREM', k, op.m)
      end
      if op.t > 0 and op.c ~= 'del' then
        redis.call('EXPIRE', k, op.t)
      end
    end
    if e.id ~= '' then
      redis.call('HSET', idk, e.id, here)
      redis.call('ZADD', idat, b.now, e.id)
    end
    applied = applied + 1
  end
  if b.mode ~= 'redrive' and e.o + 1 > pos[e.p] then
    pos[e.p] = e.o + 1
  end
end
for part, p in pairs(pos) do
  redis.call('HSET', posk, part, string.format('%d', p))
end
return { applied, skipped }
