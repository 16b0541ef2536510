-- redrive: give DEAD jobs another life: READY at the back of the line, attempts reset.
-- KEYS: ready, dead, seq.
-- ARGV: prefix, now, mode, then
--   mode 'ids': the job ids. Returns per id: 1 redriven, 0 not DEAD (left alone), NOT_FOUND.
--   mode 'all': cutoff_ms ('' = now), limit. Takes up to `limit` entries of the dead letter
--               that died at or before the cutoff, oldest death first, and redrives them.
--               Returns {cutoff, scanned, then the ids redriven}.
-- The caller repeats 'all' with the returned cutoff until a call scans fewer than `limit`;
-- a job that dies again meanwhile has a later death time, so it is not redriven twice. Every
-- scanned entry leaves the dead letter, so the repetition always ends.
--
-- The last error stays on the job (get() shows why it died) until its next attempt ends. A
-- fresh sequence number puts it behind work already waiting: a redrive of thousands of jobs
-- must not stall new work. The old token is cleared so a stale worker cannot settle the job.
-- No unpack(): one ZREM/ZADD per job keeps any batch size within Lua's stack.
local ready, dead, seq_key = KEYS[1], KEYS[2], KEYS[3]

local function redrive(id)
  local key = job_key(id)
  local state = redis.call('HGET', key, 'state')
  if not state then
    redis.call('ZREM', dead, id)  -- an index entry without its job: drop it
    return NOT_FOUND
  end
  if tonumber(state) ~= DEAD then
    redis.call('ZREM', dead, id)  -- only DEAD jobs belong in the index; a no-op otherwise
    return 0
  end
  local seq = redis.call('INCR', seq_key)
  redis.call('HSET', key, 'state', READY, 'seq', seq, 'attempts', 0, 'token', '',
    'ended', 'redrive', 'updated', now_text)
  redis.call('HDEL', key, 'finished')
  redis.call('ZREM', dead, id)
  redis.call('ZADD', ready, seq, id)
  return 1
end

if ARGV[3] == 'ids' then
  local answers = {}
  for i = 4, #ARGV do
    answers[#answers + 1] = redrive(ARGV[i])
  end
  return answers
end

local cutoff = now
if ARGV[4] ~= '' then
  cutoff = tonumber(ARGV[4])
end
local due = redis.call('ZRANGEBYSCORE', dead, '-inf', cutoff, 'LIMIT', 0, tonumber(ARGV[5]))
local out = {cutoff, #due}
for _, id in ipairs(due) do
  if redrive(id) == 1 then
    out[#out + 1] = id
  end
end
return out
