-- The transactional outbox's write, for any Redis script that changes state and announces it
-- (qmtl.runtime.outbox.redis_store.OUTBOX_APPEND_LUA; docs/operations/outbox.md, "Redis").
--
-- qmtl_outbox_append(order_key, seq_key, entries_key, id, topic, payload) writes one entry:
--   order_key    zset   id -> sequence number (the relay reads oldest first)
--   seq_key      string the counter behind the sequence numbers
--   entries_key  hash   id -> '<created ms>:<topic length in bytes>:<topic><payload>'
-- The three keys belong in the calling script's KEYS. Arguments are not checked here: take
-- them from outbox_argv (Python), which refuses what the relay could not publish.
-- Idempotent: an id already pending is left as it is (returns 0); otherwise returns 1.
--
-- Redis does not undo a script's writes when a later command of it fails, so call this after
-- every check the script makes, together with its state writes, at the end.
local function qmtl_outbox_append(order_key, seq_key, entries_key, id, topic, payload)
  if redis.call('ZSCORE', order_key, id) then
    return 0
  end
  local t = redis.call('TIME')
  local created = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('HSET', entries_key, id,
    string.format('%d:%d:', created, string.len(topic)) .. topic .. payload)
  redis.call('ZADD', order_key, redis.call('INCR', seq_key), id)
  return 1
end
