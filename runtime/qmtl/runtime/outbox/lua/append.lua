-- RedisOutbox.append: the events of one call, all or none, oldest first.
-- KEYS: order, seq, entries.  ARGV: topic, then (id, payload) per event.
-- Returns how many were added (ids already pending are left as they are).
local added = 0
for i = 2, #ARGV, 2 do
  added = added + qmtl_outbox_append(KEYS[1], KEYS[2], KEYS[3], ARGV[i], ARGV[1], ARGV[i + 1])
end
return added
