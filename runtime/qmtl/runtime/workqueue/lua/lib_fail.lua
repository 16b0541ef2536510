-- fail_jobs: record each job's error and end its lease: DELAYED for a retry, or DEAD.
-- ARGV[first..last] holds (job id, token, error bytes, retryable '1'|'0', draw in [0, 1))
-- per job. Returns per job: the new state; for a repeat by the same lease (it ended by 'fail'
-- and no other lease has been taken since) the state that fail chose; LEASE_LOST or NOT_FOUND.
--
-- The backoff is min(cap, base * 2^(attempts-1)) * (1 - jitter * draw), the same formula as
-- BackoffPolicy.delay_ms; the caller draws the random number so this stays deterministic.
local function fail_jobs(leased, delayed, dead, base, cap, jitter, first, last)
  local answers = {}
  for i = first, last, 5 do
    local id, token, err = ARGV[i], ARGV[i + 1], ARGV[i + 2]
    local key = job_key(id)
    local f = redis.call('HMGET', key, 'state', 'token', 'attempts', 'max_attempts', 'ended')
    local state = tonumber(f[1])
    local answer
    if not f[1] then
      answer = NOT_FOUND
    elseif f[2] ~= token then
      answer = LEASE_LOST
    elseif state == LEASED then
      local attempts = tonumber(f[3])
      if ARGV[i + 3] == '1' and attempts < tonumber(f[4]) then
        local exponent = math.min(math.max(attempts - 1, 0), 62)
        local full = math.min(cap, base * 2 ^ exponent)
        local available_at = now + math.floor(full * (1 - jitter * tonumber(ARGV[i + 4])))
        redis.call('HSET', key, 'state', DELAYED, 'available_at', int(available_at),
          'error', err, 'updated', now_text, 'ended', 'fail')
        redis.call('ZADD', delayed, available_at, id)
        answer = DELAYED
      else
        redis.call('HSET', key, 'state', DEAD, 'error', err,
          'finished', now_text, 'updated', now_text, 'ended', 'fail')
        redis.call('ZADD', dead, now, id)
        answer = DEAD
      end
      redis.call('ZREM', leased, id)
    elseif f[5] == 'fail' then
      answer = (state == DEAD) and DEAD or DELAYED
    else
      answer = LEASE_LOST
    end
    answers[#answers + 1] = answer
  end
  return answers
end
