"""A consumer process SIGKILLed mid-batch and restarted: no event lost, none applied twice.

5,000 events wait on a one-partition topic of the shared broker. The first consumer process
applies effects (in Redis, deduped by id in the same script) and parks at its 1,250th delivery,
in the middle of a fetched batch whose earlier deliveries are applied but not committed; the
test checks that, then SIGKILLs it. A second process in the same group redelivers from the last
commit: every event is applied exactly once, and the redelivered ones were indeed delivered
again (more deliveries than events).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as redis
from aiokafka import AIOKafkaConsumer, TopicPartition

from qmtl.runtime.endpoints import ServiceEndpoints
from qmtl.runtime.eventbus.kafka import KafkaEventBus
from tests.contract.eventbus_support import make_event
from tests.eventbus_kafka import STEP_TIMEOUT_S, TopicPrefix, private_topics
from tests.polling import eventually

from .eventbus_support import ConsumerProcess

EVENTS = 5_000
PARK_AT = 1_250


@pytest.fixture
async def redis_client(endpoints: ServiceEndpoints) -> AsyncIterator[redis.Redis]:
    client = redis.Redis.from_url(
        endpoints.redis_url, socket_connect_timeout=3, decode_responses=True
    )
    try:
        await client.ping()
    except redis.ConnectionError as exc:
        await client.aclose()
        pytest.fail(f"Redis is not reachable at {endpoints.redis_url} ({exc})")
    yield client
    await client.aclose()


async def _get(client: redis.Redis, key: str) -> str:
    value = await client.get(key)
    assert isinstance(value, str), (key, value)
    return value


async def committed_offset(bootstrap: str, group: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await asyncio.wait_for(consumer.start(), STEP_TIMEOUT_S)
    try:
        offset = await consumer.committed(TopicPartition(topic, 0))
        return -1 if offset is None else int(offset)
    finally:
        await consumer.stop()


async def test_a_consumer_killed_mid_batch_loses_nothing_and_applies_nothing_twice(
    endpoints: ServiceEndpoints, redis_client: redis.Redis, tmp_path: Path
) -> None:
    bootstrap = endpoints.kafka_bootstrap
    prefix = TopicPrefix.fresh("sigkill")
    topic, group = prefix("events"), prefix("group")
    keys = f"test:eventbus-sigkill:{uuid.uuid4().hex}:"
    processes: list[ConsumerProcess] = []
    try:
        async with private_topics(bootstrap, ["events"], prefix=prefix, partitions=1):
            bus = await KafkaEventBus.connect(bootstrap, client_id="sigkill-producer")
            sent = [make_event(f"nodes/n{n % 20}", n) for n in range(EVENTS)]
            for start in range(0, EVENTS, 500):
                await bus.publish(topic, sent[start : start + 500])
            await bus.aclose()

            def spawn(name: str, park_at: int) -> ConsumerProcess:
                process = ConsumerProcess.spawn(
                    tmp_path / f"{name}.log",
                    *(bootstrap, topic, group, endpoints.redis_url, keys, str(park_at)),
                )
                processes.append(process)
                return process

            first = spawn("first", PARK_AT)

            async def parked() -> bool:
                return await redis_client.exists(keys + "parked") == 1

            await eventually(parked, what="the first consumer to park", within=60, watch=[first])
            parked_offset = int(await _get(redis_client, keys + "parked"))
            applied_before_kill = await redis_client.llen(keys + "effects")
            first.kill()
            assert first.proc.returncode == -9

            # Mid-batch: deliveries applied after the last commit exist, and will come again.
            committed = await committed_offset(bootstrap, group, topic)
            assert parked_offset == PARK_AT - 1
            assert applied_before_kill == PARK_AT - 1
            assert 0 <= committed < parked_offset, (committed, parked_offset)

            second = spawn("second", 0)

            async def all_applied() -> bool:
                return await redis_client.llen(keys + "effects") >= EVENTS

            await eventually(all_applied, what="every event applied", within=60, watch=[second])
            second.kill()

            effects = list(await redis_client.lrange(keys + "effects", 0, -1))
            deliveries = int(await _get(redis_client, keys + "deliveries"))
    finally:
        for process in processes:
            process.kill()
        stale = [key async for key in redis_client.scan_iter(match=keys + "*", count=1000)]
        if stale:
            await redis_client.delete(*stale)

    assert sorted(effects) == sorted(event.id for event in sent)
    assert len(effects) == len(set(effects)) == EVENTS
    # The second process got again what the first applied after the last commit.
    assert deliveries - EVENTS == applied_before_kill - committed
    print(f"killed at offset {parked_offset}, committed {committed}; {deliveries} deliveries")
