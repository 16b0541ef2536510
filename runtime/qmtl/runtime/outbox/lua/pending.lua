-- RedisOutbox.outbox_pending: the oldest entries, read in one step so that an ack by another
-- relay between reading the order and reading the entries cannot look like a lost entry.
-- KEYS: order, entries.  ARGV: limit.
-- Returns id, entry (nil when the entry is missing), id, entry, ... in sequence order.
local ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
local reply = {}
for _, id in ipairs(ids) do
  reply[#reply + 1] = id
  reply[#reply + 1] = redis.call('HGET', KEYS[2], id)
end
return reply
