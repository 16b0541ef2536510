-- reap: reclaim leases whose deadline has passed. Each one goes back to ready under its
-- original sequence number (the attempt it used still counts) or, if that was its last
-- allowed attempt, to the dead letter. Concurrent reapers are safe: a lease leaves the
-- leased set inside the same atomic step that reclaims it, so only one reaper sees it.
-- KEYS: ready, leased, dead.
-- ARGV: prefix, now, limit, error bytes when returned, error bytes when dead-lettered.
-- Returns {returned, dead_lettered}.
local ready, leased, dead = KEYS[1], KEYS[2], KEYS[3]
local expired = redis.call('ZRANGEBYSCORE', leased, '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
local returned, dead_lettered = 0, 0
for _, id in ipairs(expired) do
  redis.call('ZREM', leased, id)
  local key = job_key(id)
  local f = redis.call('HMGET', key, 'state', 'attempts', 'max_attempts', 'seq')
  if f[1] and tonumber(f[1]) == LEASED then
    if tonumber(f[2]) >= tonumber(f[3]) then
      redis.call('HSET', key, 'state', DEAD, 'error', ARGV[5],
        'finished', now_text, 'updated', now_text, 'ended', 'reap')
      redis.call('ZADD', dead, now, id)
      dead_lettered = dead_lettered + 1
    else
      redis.call('HSET', key, 'state', READY, 'error', ARGV[4],
        'updated', now_text, 'ended', 'reap')
      redis.call('ZADD', ready, f[4], id)
      returned = returned + 1
    end
  end
end
return {returned, dead_lettered}
