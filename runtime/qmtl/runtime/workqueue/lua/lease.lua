-- lease: promote due retries, then hand out up to `count` of the oldest ready jobs.
-- KEYS: ready, leased, delayed.
-- ARGV: prefix, now, token_prefix ('<worker_id>:<random>'), ttl_ms, count, promote_limit.
-- Returns take()'s reply (lib_take.lua).
return take(KEYS[1], KEYS[2], KEYS[3], ARGV[3], ARGV[4], ARGV[5], ARGV[6])
