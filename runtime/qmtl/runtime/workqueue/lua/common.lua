-- Prepended to every work-queue script by redis_scripts.py. Each script is one atomic step:
-- Redis runs it to the end without interleaving another client's command.
--
-- ARGV[1] is the queue's key prefix, ARGV[2] the caller's clock in ms or '' for none.
-- Jobs live in hashes at prefix .. 'job:' .. id; they are not declared in KEYS because the
-- lease script only learns their ids as it runs. Every key shares the prefix's {hash tag},
-- so all of them sit in one cluster slot.
--
-- Every redis.call costs a few microseconds of server time, so the scripts keep them few:
-- the lease owner is read from the token (worker_id:random.n) rather than stored, and fields
-- that only mean something while a job is LEASED (deadline) are left behind, not deleted.

-- qmtl.work.v1.WorkState numbers.
local READY, LEASED, DELAYED, COMPLETED, DEAD = 1, 2, 3, 4, 5
-- Answers for a job that could not be acted on; states are positive, so these never collide.
local LEASE_LOST, NOT_FOUND = -1, -2

local prefix = ARGV[1]

-- Without a caller clock, the Redis server's own: every worker process then measures lease
-- deadlines and backoffs against one clock, whatever the skew between their machines.
local now
if ARGV[2] ~= '' then
  now = tonumber(ARGV[2])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local now_text = string.format('%d', now)

local function job_key(id)
  return prefix .. 'job:' .. id
end

-- Numbers are written as plain integers; Lua's default conversion may use exponent notation.
local function int(x)
  return string.format('%d', x)
end

-- unpack() fails ("too many results to unpack") past Lua's C stack limit of about 8,000
-- values, so variadic commands are sent in slices. Even, so a ZADD slice never splits a
-- score from its member; small, so each slice is a cheap command of its own.
local UNPACK_SLICE = 1000

local function call_sliced(command, key, values)
  for first = 1, #values, UNPACK_SLICE do
    redis.call(command, key, unpack(values, first, math.min(first + UNPACK_SLICE - 1, #values)))
  end
end

-- A job's `token` is its latest lease's; `ended` says how that lease ended ('complete',
-- 'fail', 'release', 'reap'). A call carrying the latest token on a job no longer LEASED is
-- therefore either a repeat of the call that ended the lease (answered as before, changing
-- nothing) or too late (LEASE_LOST).
