-- release: give a held job back to ready at once, in its old place, without charging the
-- attempt (the worker is shutting down; the job did nothing wrong).
-- KEYS: ready, leased.  ARGV: prefix, now, job id, token.
-- Returns READY (also for a repeat by the same lease), LEASE_LOST or NOT_FOUND.
local id, token = ARGV[3], ARGV[4]
local key = job_key(id)
local f = redis.call('HMGET', key, 'state', 'token', 'seq', 'attempts', 'ended')
if not f[1] then
  return NOT_FOUND
end
if f[2] ~= token then
  return LEASE_LOST
end
if tonumber(f[1]) == LEASED then
  redis.call('HSET', key, 'state', READY, 'attempts', tonumber(f[4]) - 1,
    'updated', now_text, 'ended', 'release')
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZADD', KEYS[1], f[3], id)
  return READY
end
if f[5] == 'release' then
  return READY
end
return LEASE_LOST
