-- enqueue: accept each (job id, idempotency key, item bytes, max attempts) once per key.
-- KEYS: ready, seq.  ARGV: prefix, now, window_ms, then the entries, 4 values each.
-- Returns, per entry, the id of the job that answers it: the new one or the one the key names.
--
-- The key's value is '<expires_ms> <job id>'. Its Redis TTL reclaims the memory; the expiry
-- written in the value is what is checked, so a caller-supplied clock (tests) decides too.
local ready, seq_key = KEYS[1], KEYS[2]
local window = tonumber(ARGV[3])
local answers, fresh = {}, {}
for i = 4, #ARGV, 4 do
  local id, key = ARGV[i], ARGV[i + 1]
  local idem = prefix .. 'idem:' .. key
  local claim = int(now + window) .. ' ' .. id
  -- One call both claims a free key and reads the job of a taken one.
  local known = redis.call('SET', idem, claim, 'NX', 'GET', 'PX', window)
  local existing = false
  if known then
    local cut = string.find(known, ' ', 1, true)
    if tonumber(string.sub(known, 1, cut - 1)) > now then
      existing = string.sub(known, cut + 1)
    else
      redis.call('SET', idem, claim, 'PX', window)
    end
  end
  answers[#answers + 1] = existing or id
  if not existing then
    fresh[#fresh + 1] = i
  end
end
if #fresh > 0 then
  -- One counter bump and one index write for the whole batch.
  local seq = redis.call('INCRBY', seq_key, #fresh) - #fresh
  local scored = {}
  for _, i in ipairs(fresh) do
    seq = seq + 1
    redis.call('HSET', job_key(ARGV[i]), 'item', ARGV[i + 2], 'state', READY, 'seq', seq,
      'max_attempts', ARGV[i + 3], 'created', now_text)
    scored[#scored + 1] = seq
    scored[#scored + 1] = ARGV[i]
  end
  redis.call('ZADD', ready, unpack(scored))
end
return answers
