-- extend: move a held lease's deadline to now + ttl.
-- KEYS: leased.  ARGV: prefix, now, job id, token, ttl_ms.
-- Returns the new deadline in ms, LEASE_LOST or NOT_FOUND.
local id, token = ARGV[3], ARGV[4]
local key = job_key(id)
local f = redis.call('HMGET', key, 'state', 'token')
if not f[1] then
  return NOT_FOUND
end
if tonumber(f[1]) ~= LEASED or f[2] ~= token then
  return LEASE_LOST
end
local deadline = now + tonumber(ARGV[5])
redis.call('HSET', key, 'deadline', int(deadline), 'updated', now_text)
redis.call('ZADD', KEYS[1], deadline, id)
return deadline
