-- fail_and_lease: fail the job in hand (retry or dead letter), then lease the next one, in
-- one atomic step.
-- KEYS: ready, leased, delayed, dead.
-- ARGV: prefix, now, base_ms, cap_ms, jitter, job id, token, error bytes, retryable, draw,
--       token_prefix, ttl_ms, count, promote_limit.
-- Returns {fail answer, then take()'s reply}.
local answers = fail_jobs(KEYS[2], KEYS[3], KEYS[4], tonumber(ARGV[3]), tonumber(ARGV[4]),
  tonumber(ARGV[5]), 6, 10)
local out = take(KEYS[1], KEYS[2], KEYS[3], ARGV[11], ARGV[12], ARGV[13], ARGV[14])
table.insert(out, 1, answers[1])
return out
