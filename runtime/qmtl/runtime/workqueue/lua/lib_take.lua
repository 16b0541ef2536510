-- take: promote due retries, then hand out up to `count` of the oldest ready jobs.
-- token_prefix is '<worker_id>:<random>'; each leased job's token adds '.<n>'.
-- Returns {now, then per leased job: id, token, item bytes, attempts, created_ms}.
local function take(ready, leased, delayed, token_prefix, ttl_ms, count, promote_limit)
  local deadline = now + tonumber(ttl_ms)
  local deadline_text = int(deadline)

  -- A retry goes back under its original sequence number: it is older than anything enqueued
  -- after it, so it keeps its place at the front of the line.
  local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, tonumber(promote_limit))
  for _, id in ipairs(due) do
    redis.call('ZREM', delayed, id)
    local seq = redis.call('HGET', job_key(id), 'seq')
    if seq then
      redis.call('HSET', job_key(id), 'state', READY, 'updated', now_text)
      redis.call('ZADD', ready, seq, id)
    end
  end

  local out = {now}
  local held = {}
  local popped = redis.call('ZPOPMIN', ready, tonumber(count))
  local n = 0
  for i = 1, #popped, 2 do
    local id = popped[i]
    local key = job_key(id)
    local fields = redis.call('HMGET', key, 'item', 'created', 'attempts')
    if fields[1] then
      n = n + 1
      local token = token_prefix .. '.' .. n
      local attempts = (tonumber(fields[3]) or 0) + 1
      redis.call('HSET', key, 'state', LEASED, 'token', token, 'attempts', attempts,
        'deadline', deadline_text, 'updated', now_text)
      held[#held + 1] = deadline
      held[#held + 1] = id
      out[#out + 1] = id
      out[#out + 1] = token
      out[#out + 1] = fields[1]
      out[#out + 1] = attempts
      out[#out + 1] = tonumber(fields[2])
    end
  end
  call_sliced('ZADD', leased, held)
  return out
end
