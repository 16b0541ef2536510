-- complete_and_lease: a busy worker's steady state in one round trip: complete the job in
-- hand, then lease the next one. One script, so both happen or neither does.
-- KEYS: ready, leased, delayed.
-- ARGV: prefix, now, retention_ms, job id, token, result,
--       token_prefix, ttl_ms, count, promote_limit.
-- Returns {complete answer, then take()'s reply}.
local answers = complete_jobs(KEYS[2], tonumber(ARGV[3]), 4, 6)
local out = take(KEYS[1], KEYS[2], KEYS[3], ARGV[7], ARGV[8], ARGV[9], ARGV[10])
table.insert(out, 1, answers[1])
return out
