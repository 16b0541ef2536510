-- RedisOutbox.outbox_ack: removes the entries, atomically with their place in the order.
-- KEYS: order, entries.  ARGV: the ids (distinct).
-- Returns how many were pending; unknown ids are ignored.
-- unpack() fails past Lua's C stack limit (about 8,000 values), hence the slices.
local SLICE = 1000
local removed = 0
for first = 1, #ARGV, SLICE do
  local last = math.min(first + SLICE - 1, #ARGV)
  removed = removed + redis.call('ZREM', KEYS[1], unpack(ARGV, first, last))
  redis.call('HDEL', KEYS[2], unpack(ARGV, first, last))
end
return removed
