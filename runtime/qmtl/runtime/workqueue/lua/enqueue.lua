-- enqueue: accept each (job id, idempotency key, item bytes, max attempts, fingerprint) once
-- per key.
-- KEYS: ready, seq.  ARGV: prefix, now, window_ms, then the entries, 5 values each.
-- Returns {1, then per entry the id of the job that answers it: the new one or the one the
-- key names}, or {0, index, job id or ''} when entry `index` (0-based) reuses a key for a
-- different item (fingerprint); then nothing at all was written. The id is '' when the key's
-- other use is earlier in this batch.
--
-- The key's value is '<expires_ms> <job id> <fingerprint>'. Its Redis TTL reclaims the memory;
-- the expiry written in the value is what is checked, so a caller-supplied clock (tests)
-- decides too. A value without a fingerprint (written before fingerprints existed) cannot
-- tell items apart and answers every item with its job.
local ready, seq_key = KEYS[1], KEYS[2]
local window = tonumber(ARGV[3])

-- The live claim of a key as {job id, fingerprint or false, stored}, or nil when free.
local function stored_claim(key)
  local value = redis.call('GET', prefix .. 'idem:' .. key)
  if not value then
    return nil
  end
  local cut = string.find(value, ' ', 1, true)
  if tonumber(string.sub(value, 1, cut - 1)) <= now then
    return nil
  end
  local rest = string.sub(value, cut + 1)
  local split = string.find(rest, ' ', 1, true)
  if not split then
    return {rest, false, true}
  end
  return {string.sub(rest, 1, split - 1), string.sub(rest, split + 1), true}
end

-- Pass 1 only reads, so a conflict anywhere refuses the batch before its first write.
local answers, fresh, claims = {1}, {}, {}
for i = 4, #ARGV, 5 do
  local id, key, fingerprint = ARGV[i], ARGV[i + 1], ARGV[i + 4]
  local claim = claims[key]
  if claim == nil then
    claim = stored_claim(key)
  end
  if claim == nil then
    claims[key] = {id, fingerprint, false}
    fresh[#fresh + 1] = i
    answers[#answers + 1] = id
  elseif claim[2] and claim[2] ~= fingerprint then
    return {0, (i - 4) / 5, claim[3] and claim[1] or ''}
  else
    claims[key] = claim
    answers[#answers + 1] = claim[1]
  end
end

if #fresh > 0 then
  -- One counter bump and one (sliced) index write for the whole batch.
  local seq = redis.call('INCRBY', seq_key, #fresh) - #fresh
  local expires = int(now + window)
  local scored = {}
  for _, i in ipairs(fresh) do
    local id = ARGV[i]
    seq = seq + 1
    redis.call('SET', prefix .. 'idem:' .. ARGV[i + 1], expires .. ' ' .. id .. ' ' .. ARGV[i + 4],
      'PX', window)
    redis.call('HSET', job_key(id), 'item', ARGV[i + 2], 'state', READY, 'seq', seq,
      'max_attempts', ARGV[i + 3], 'created', now_text)
    scored[#scored + 1] = seq
    scored[#scored + 1] = id
  end
  call_sliced('ZADD', ready, scored)
end
return answers
