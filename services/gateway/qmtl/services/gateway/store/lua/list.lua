-- list: up to `count` strategy records from a listing ZSET (score = created ms, member = id),
-- newest first, ties by id descending (byte order), strictly after the cursor's position.
-- KEYS: the listing.  ARGV: prefix, count, cursor given ('1' or ''), cursor ms, cursor id.
local listing, count = KEYS[1], tonumber(ARGV[2])
local out = {}

local function take(ids)
  for _, id in ipairs(ids) do
    if #out >= count then
      return
    end
    local record = redis.call('HGET', strategy_key(id), 'record')
    if record then
      out[#out + 1] = record
    end
  end
end

if ARGV[3] ~= '1' then
  take(redis.call('ZREVRANGE', listing, 0, count - 1))
  return out
end
local ms, after = ARGV[4], ARGV[5]
-- Strategies created in the cursor's millisecond: only those ordered after it, by id.
local same = redis.call('ZRANGEBYSCORE', listing, ms, ms)
local rest = {}
for i = #same, 1, -1 do
  if bytes_before(same[i], after) then
    rest[#rest + 1] = same[i]
  end
end
take(rest)
if #out < count then
  take(redis.call('ZREVRANGEBYSCORE', listing, '(' .. ms, '-inf', 'LIMIT', 0, count - #out))
end
return out
