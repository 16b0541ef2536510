-- fail: record each job's error and end its lease: DELAYED for a retry, or DEAD.
-- KEYS: leased, delayed, dead.
-- ARGV: prefix, now, base_ms, cap_ms, jitter, then (job id, token, error bytes,
--       retryable '1'|'0', draw in [0, 1)) per job.
-- Returns fail_jobs()'s answers (lib_fail.lua).
return fail_jobs(KEYS[1], KEYS[2], KEYS[3], tonumber(ARGV[3]), tonumber(ARGV[4]),
  tonumber(ARGV[5]), 6, #ARGV)
