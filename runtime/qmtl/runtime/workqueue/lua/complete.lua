-- complete: record each job's result if the token still holds its lease.
-- KEYS: leased.  ARGV: prefix, now, retention_ms, then (job id, token, result) per job.
-- Returns complete_jobs()'s answers (lib_complete.lua).
return complete_jobs(KEYS[1], tonumber(ARGV[3]), 4, #ARGV)
