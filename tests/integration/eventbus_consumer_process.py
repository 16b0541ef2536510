"""A consumer process for test_eventbus_sigkill.py: subscribes a group to a topic and applies
each event's effect in Redis, once, in one script: the event id is claimed with SET NX and
the effect (appending the id to a list) happens only if the claim was new. That is the durable
dedupe the bus leaves to the handler's store (docs/operations/kafka.md, "Dedupe").

    python eventbus_consumer_process.py BOOTSTRAP TOPIC GROUP REDIS_URL PREFIX PARK_AT

PARK_AT > 0: at that delivery the handler records `<prefix>parked` with the event's offset and
never returns, so the test can SIGKILL the process mid-batch. Runs until killed.
"""

from __future__ import annotations

import asyncio
import sys

import redis.asyncio as redis

from qmtl.runtime.eventbus import Delivery
from qmtl.runtime.eventbus.kafka import KafkaEventBus
from qmtl.runtime.eventbus.kafka_settings import KafkaEventBusSettings

# KEYS: seen, effects, deliveries. ARGV: event id.
APPLY_ONCE = """
local n = redis.call('INCR', KEYS[3])
if redis.call('SET', KEYS[1], '1', 'NX') then
  redis.call('RPUSH', KEYS[2], ARGV[1])
end
return n
"""

SETTINGS = KafkaEventBusSettings(
    session_timeout_ms=6_000, heartbeat_interval_ms=500, fetch_wait_ms=200, max_poll_records=500
)


async def main(
    bootstrap: str, topic: str, group: str, redis_url: str, prefix: str, park_at: int
) -> None:
    client = redis.Redis.from_url(redis_url)
    apply_once = client.register_script(APPLY_ONCE)
    bus = await KafkaEventBus.connect(bootstrap, client_id="sigkill", settings=SETTINGS)
    handled = 0
    never = asyncio.Event()

    async def handler(delivery: Delivery) -> None:
        nonlocal handled
        handled += 1
        if handled == park_at:
            await client.set(prefix + "parked", str(delivery.offset))
            await never.wait()
        keys = [prefix + "seen:" + delivery.event.id, prefix + "effects", prefix + "deliveries"]
        await apply_once(keys=keys, args=[delivery.event.id])

    subscription = await bus.subscribe([topic], group, handler)
    await client.set(prefix + "started", "1")
    await subscription.wait()


if __name__ == "__main__":
    bootstrap, topic, group, redis_url, prefix, park_at = sys.argv[1:7]
    asyncio.run(main(bootstrap, topic, group, redis_url, prefix, int(park_at)))
