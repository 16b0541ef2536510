"""The broker stopped and restarted (scripts/services/kafka.sh stop/start, on a PRIVATE broker)
in the middle of a 10,000-event stream: every event whose publish was acknowledged arrives, and
each handler effect is applied once.

The producer publishes batches of 100 and, like the outbox relay will, retries a batch whose
publish raised a retryable EventBusError (a retried batch may deliver some events twice: the
consumer's Deduper absorbs them). The consumer keeps running across the outage: fetches and
commits fail while the broker is away and resume when it is back.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from qmtl.runtime.eventbus import Deduper, Delivery, EventBusError, deduplicated
from qmtl.runtime.eventbus.kafka import KafkaEventBus
from qmtl.runtime.eventbus.kafka_settings import KafkaEventBusSettings
from tests.contract.eventbus_support import make_event
from tests.eventbus_kafka import TopicPrefix, private_topics
from tests.polling import eventually

from .eventbus_support import PrivateKafka

EVENTS = 10_000
BATCH = 100
STOP_AFTER = 3_000  # acknowledged events before the broker is stopped
SETTINGS = KafkaEventBusSettings(
    request_timeout_ms=5_000,
    attempts=3,
    backoff_base_s=0.2,
    backoff_cap_s=1.0,
    session_timeout_ms=6_000,
    heartbeat_interval_ms=500,
    fetch_wait_ms=200,
)


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[PrivateKafka]:
    kafka = PrivateKafka(tmp_path / "services")
    await asyncio.to_thread(kafka.start)
    try:
        yield kafka
    finally:
        await asyncio.to_thread(kafka.stop)


async def test_a_broker_restart_mid_stream_loses_no_acknowledged_event(
    broker: PrivateKafka,
) -> None:
    prefix = TopicPrefix.fresh("restart")
    topic = prefix("events")
    async with private_topics(broker.bootstrap, ["events"], prefix=prefix, partitions=3):
        bus = await KafkaEventBus.connect(broker.bootstrap, client_id="restart", settings=SETTINGS)
        effects: Counter[str] = Counter()
        deliveries = 0

        async def count(delivery: Delivery) -> None:
            nonlocal deliveries
            deliveries += 1

        async def effect(delivery: Delivery) -> None:
            effects[delivery.event.id] += 1

        deduped = deduplicated(effect, Deduper())

        async def handler(delivery: Delivery) -> None:
            await count(delivery)
            await deduped(delivery)

        subscription = await bus.subscribe([topic], "restart-consumer", handler)
        acknowledged: list[str] = []
        failed_publishes = 0
        broker_down = asyncio.Event()
        publishing_while_down = asyncio.Event()

        async def produce() -> None:
            nonlocal failed_publishes
            for start in range(0, EVENTS, BATCH):
                if len(acknowledged) >= STOP_AFTER and not broker_down.is_set():
                    # Hold here until the broker is down, so the stream surely spans the outage.
                    await broker_down.wait()
                if broker_down.is_set():
                    publishing_while_down.set()
                batch = [make_event(f"nodes/n{n % 50}", n) for n in range(start, start + BATCH)]
                while True:
                    try:
                        await bus.publish(topic, batch)
                        break
                    except EventBusError as exc:
                        if not exc.retryable:
                            raise
                        failed_publishes += 1
                acknowledged.extend(event.id for event in batch)

        producing = asyncio.create_task(produce())

        async def some_acknowledged() -> bool:
            if producing.done():
                producing.result()
            return len(acknowledged) >= STOP_AFTER

        await eventually(some_acknowledged, what=f"{STOP_AFTER} acknowledged events", within=60)
        began = time.monotonic()
        await asyncio.to_thread(broker.stop)
        stopped_at = len(acknowledged)
        broker_down.set()
        await asyncio.wait_for(publishing_while_down.wait(), 30)
        await asyncio.to_thread(broker.start)
        outage = time.monotonic() - began
        await asyncio.wait_for(producing, 180)

        async def all_applied() -> bool:
            assert subscription.failure is None, subscription.failure
            return set(acknowledged) <= set(effects)

        await eventually(all_applied, what="every acknowledged event applied", within=120)
        await subscription.stop()
        await bus.aclose()

    assert stopped_at < EVENTS, "the broker must go down mid-stream"
    assert len(acknowledged) == EVENTS
    assert set(acknowledged) <= set(effects)
    assert max(effects.values()) == 1, [i for i, c in effects.items() if c > 1][:5]
    assert deliveries >= EVENTS
    print(
        f"broker down+up {outage:.1f}s after {stopped_at} events; {failed_publishes} publishes "
        f"retried; {deliveries} deliveries for {len(effects)} effects"
    )
