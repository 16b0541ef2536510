-- complete_jobs: record each job's result if the token still holds its lease.
-- ARGV[first..last] holds (job id, token, result) per job.
-- Returns per job: 1 completed now, 0 this lease already completed it, LEASE_LOST, NOT_FOUND.
-- COMPLETED is final and only the holding lease gets there, so COMPLETED under the same
-- token can only mean a repeat of this very call.
local function complete_jobs(leased, retention, first, last)
  local answers, done = {}, {}
  for i = first, last, 3 do
    local id, token = ARGV[i], ARGV[i + 1]
    local key = job_key(id)
    local f = redis.call('HMGET', key, 'state', 'token')
    local answer
    if not f[1] then
      answer = NOT_FOUND
    elseif f[2] ~= token then
      answer = LEASE_LOST
    elseif tonumber(f[1]) == LEASED then
      redis.call('HSET', key, 'state', COMPLETED, 'result', ARGV[i + 2],
        'finished', now_text, 'updated', now_text, 'ended', 'complete')
      redis.call('PEXPIRE', key, retention)
      done[#done + 1] = id
      answer = 1
    elseif tonumber(f[1]) == COMPLETED then
      answer = 0
    else
      answer = LEASE_LOST
    end
    answers[#answers + 1] = answer
  end
  call_sliced('ZREM', leased, done)
  return answers
end
