-- create: store a strategy unless its idempotency key or its dag_hash already names one.
-- KEYS: strategy, dag index, idempotency key, list:all, list:state:<state>, then the six
-- announce() keys (outbox order, seq, entries; log seq, global log, strategy log).
-- ARGV: prefix, strategy id, record bytes, state, created ms, idempotency key given ('1' or
-- ''), fingerprint, now ms, idempotency TTL ms, log cap, strategy log cap, event count, then
-- the events as (id, topic, payload).
-- Returns {'created'}, {'replayed', record}, {'duplicate', record}, {'conflict', strategy id}
-- or {'taken'} (the strategy id is in use); only 'created' wrote anything.
local strategy, dag, idem = KEYS[1], KEYS[2], KEYS[3]
local id, record, state, created = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local fingerprint, now, ttl = ARGV[7], tonumber(ARGV[8]), tonumber(ARGV[9])

if ARGV[6] == '1' then
  local claim = redis.call('HMGET', idem, 'strategy_id', 'fingerprint', 'expires')
  if claim[1] and tonumber(claim[3]) > now then
    if claim[2] ~= fingerprint then
      return {'conflict', claim[1]}
    end
    return {'replayed', redis.call('HGET', strategy_key(claim[1]), 'record')}
  end
end
local holder = redis.call('GET', dag)
if holder then
  return {'duplicate', redis.call('HGET', strategy_key(holder), 'record')}
end
if redis.call('EXISTS', strategy) == 1 then
  return {'taken'}
end

redis.call('HSET', strategy, 'record', record, 'state', state, 'version', 1)
redis.call('SET', dag, id)
if ARGV[6] == '1' then
  redis.call('HSET', idem, 'strategy_id', id, 'fingerprint', fingerprint,
    'expires', string.format('%d', now + ttl))
  redis.call('PEXPIRE', idem, ttl)
end
redis.call('ZADD', KEYS[4], created, id)
redis.call('ZADD', KEYS[5], created, id)
announce({KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10], KEYS[11]}, 13, tonumber(ARGV[12]),
  tonumber(ARGV[10]), tonumber(ARGV[11]))
return {'created'}
