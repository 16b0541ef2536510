-- report_nodes: upsert node states of an existing strategy.
-- KEYS: strategy, nodes.  ARGV: prefix, then (node id, NodeState bytes) pairs.
-- Returns 1, or 0 (nothing written) when the strategy does not exist.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
-- unpack() fails past Lua's C stack (about 8,000 values), so HSET goes in slices; even-sized,
-- so a slice never splits a node id from its state.
local SLICE = 1000
for first = 2, #ARGV, SLICE do
  redis.call('HSET', KEYS[2], unpack(ARGV, first, math.min(first + SLICE - 1, #ARGV)))
end
return 1
