-- Prepended to every strategy-store script by redis_scripts.py (after the outbox's
-- qmtl_outbox_append for the scripts that write). Each script is one atomic step: Redis runs
-- it to the end without interleaving another client's command. Redis does NOT roll a script
-- back when it fails half-way, so every script checks everything first and writes last.
--
-- ARGV[1] is the store's key prefix; strategy records live at prefix .. 'strategy:' .. id.

local prefix = ARGV[1]

local function strategy_key(id)
  return prefix .. 'strategy:' .. id
end

-- Byte order (memcmp), the order Redis gives equal-score ZSET members. Lua's own `<` on
-- strings follows the server's LC_COLLATE locale, which need not be byte order.
local function bytes_before(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then
      return x < y
    end
  end
  return #a < #b
end

-- Writes `count` events, starting at ARGV[first] as (id, topic, payload) triples, to the
-- outbox (one entry each, idempotent by id) and to the global and the strategy's event log,
-- each a ZSET score = log sequence number, member = the number as 16 hex digits followed by
-- the Event bytes (unique, and decodable without another lookup). Each log then keeps only
-- its newest `cap` entries.
-- keys: {outbox order, outbox seq, outbox entries, log seq, global log, strategy log}.
local function announce(keys, first, count, log_cap, strategy_cap)
  for i = first, first + 3 * (count - 1), 3 do
    qmtl_outbox_append(keys[1], keys[2], keys[3], ARGV[i], ARGV[i + 1], ARGV[i + 2])
    local seq = redis.call('INCR', keys[4])
    local member = string.format('%016x', seq) .. ARGV[i + 2]
    redis.call('ZADD', keys[5], seq, member)
    redis.call('ZADD', keys[6], seq, member)
  end
  if count > 0 then
    redis.call('ZREMRANGEBYRANK', keys[5], 0, -(log_cap + 1))
    redis.call('ZREMRANGEBYRANK', keys[6], 0, -(strategy_cap + 1))
  end
end
