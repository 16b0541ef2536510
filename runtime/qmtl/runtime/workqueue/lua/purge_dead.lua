-- purge_dead: delete DEAD jobs that died at or before a cutoff, with their idempotency claims.
-- KEYS: dead.  ARGV: prefix, now, older_than_ms, cutoff_ms ('' = now - older_than), limit.
-- Returns {cutoff, purged, scanned}; the caller repeats with the returned cutoff until
-- `scanned` < limit. Jobs that die meanwhile are younger than the cutoff and stay.
--
-- A claim is deleted only while it still names the purged job: otherwise an enqueue with that
-- key would answer with a job id that get() no longer finds. The key is read from the stored
-- WorkItem bytes (field 8), the same bytes the adapter wrote at enqueue.
local dead = KEYS[1]

-- A varint at `pos`: its value (exact to 2^53, plenty for tags and lengths) and the position
-- after it; nil for a truncated or over-long one.
local function varint(s, pos)
  local value, scale = 0, 1
  for i = pos, math.min(pos + 9, #s) do
    local b = string.byte(s, i)
    value = value + (b % 128) * scale
    if b < 128 then
      return value, i + 1
    end
    scale = scale * 128
  end
  return nil
end

local IDEMPOTENCY_KEY_TAG = 8 * 8 + 2  -- field 8, length-delimited

-- The WorkItem's idempotency_key (the last one wins, as in any protobuf parser), or '' when
-- the bytes are not a well-formed message; such a claim then lapses with its own TTL.
local function idempotency_key_of(raw)
  local pos, n, key = 1, #raw, ''
  while pos <= n do
    local tag
    tag, pos = varint(raw, pos)
    if not tag then
      return ''
    end
    local wire = tag % 8
    if wire == 0 then
      local _
      _, pos = varint(raw, pos)
      if not pos then
        return ''
      end
    elseif wire == 1 then
      pos = pos + 8
    elseif wire == 5 then
      pos = pos + 4
    elseif wire == 2 then
      local len
      len, pos = varint(raw, pos)
      if not len or pos + len - 1 > n then
        return ''
      end
      if tag == IDEMPOTENCY_KEY_TAG then
        key = string.sub(raw, pos, pos + len - 1)
      end
      pos = pos + len
    else
      return ''
    end
  end
  if pos ~= n + 1 then
    return ''  -- a fixed-width value ran past the end
  end
  return key
end

local cutoff = now - tonumber(ARGV[3])
if ARGV[4] ~= '' then
  cutoff = tonumber(ARGV[4])
end
local due = redis.call('ZRANGEBYSCORE', dead, '-inf', cutoff, 'LIMIT', 0, tonumber(ARGV[5]))
local purged = 0
for _, id in ipairs(due) do
  redis.call('ZREM', dead, id)
  local key = job_key(id)
  local f = redis.call('HMGET', key, 'state', 'item')
  -- Only DEAD jobs are deleted; an index entry pointing elsewhere is simply dropped.
  if f[1] and tonumber(f[1]) == DEAD then
    redis.call('DEL', key)
    purged = purged + 1
    local idem_key = idempotency_key_of(f[2] or '')
    if idem_key ~= '' then
      local idem = prefix .. 'idem:' .. idem_key
      -- The claim is '<expires_ms> <job id>[ <more>]': compare its second word.
      local claim = redis.call('GET', idem)
      if claim and string.match(claim, '^%S+ (%S+)') == id then
        redis.call('DEL', idem)
      end
    end
  end
end
return {cutoff, purged, #due}
