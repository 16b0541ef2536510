-- update: replace a strategy's record if nobody changed it since the caller read it (its
-- version) and its state is one the caller expects; move it between the per-state listings;
-- announce the events. transition and attach_work_item both come here.
-- KEYS: strategy, list:state:<old>, list:state:<new>, then the six announce() keys.
-- ARGV: prefix, strategy id, version read, expected states as ',1,2,' ('' = any), new state,
-- record bytes, created ms, write token, log cap, strategy log cap, event count, then the
-- events as (id, topic, payload).
-- Returns {'ok'}; {'done'} when this write (its token) already went through, i.e. a retry of a
-- call whose reply was lost; {'missing'}; {'state', current state}; {'version'} (someone wrote
-- in between: read again and retry). Only 'ok' wrote anything.
local strategy = KEYS[1]
local id, read_version, expected, new_state = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local token = ARGV[8]

local current = redis.call('HMGET', strategy, 'state', 'version', 'token')
if not current[1] then
  return {'missing'}
end
if current[3] == token then
  return {'done'}
end
if expected ~= '' and not string.find(expected, ',' .. current[1] .. ',', 1, true) then
  return {'state', current[1]}
end
if current[2] ~= read_version then
  return {'version'}
end

redis.call('HSET', strategy, 'record', ARGV[6], 'state', new_state,
  'version', tonumber(read_version) + 1, 'token', token)
if current[1] ~= new_state then
  redis.call('ZREM', KEYS[2], id)
  redis.call('ZADD', KEYS[3], ARGV[7], id)
end
announce({KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9]}, 12, tonumber(ARGV[11]),
  tonumber(ARGV[9]), tonumber(ARGV[10]))
return {'ok'}
