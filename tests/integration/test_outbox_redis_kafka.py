"""The Redis outbox on the real Redis and the real Kafka broker: the issue's "producer process
killed between state write and publish: the outbox relay delivers it", for state in Redis.

A Gateway stand-in (outbox_redis_producer_process.py) sets a strategy's state and writes its
event in one script, then hangs and is SIGKILLed; a fresh relay delivers the event to a
private Kafka topic (deleted after) with the id written. The Redis keys are under a prefix of
the test's own, deleted after. A server that does not answer fails the test.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as redis

from qmtl.runtime.endpoints import ServiceEndpoints
from qmtl.runtime.eventbus.kafka import KafkaEventBus
from qmtl.runtime.outbox import OutboxRelay, RedisOutbox
from tests.eventbus_kafka import TopicPrefix, private_topics, read_all
from tests.polling import eventually

from .outbox_redis_producer_process import NEW, QUEUED, STRATEGY_ID, strategy_key
from .test_outbox_neo4j_kafka import decoded
from .workqueue_support import connect, delete_prefixed

REPO = Path(__file__).resolve().parents[2]
PRODUCER = Path(__file__).with_name("outbox_redis_producer_process.py")


@pytest.fixture
async def client(endpoints: ServiceEndpoints) -> AsyncIterator[redis.Redis]:
    client = await connect(endpoints.redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def prefix(client: redis.Redis) -> AsyncIterator[str]:
    prefix = f"test:outbox-redis-kafka:{uuid.uuid4().hex}:"
    try:
        yield prefix
    finally:
        await delete_prefixed(client, [prefix])


@pytest.fixture
async def topic(endpoints: ServiceEndpoints) -> AsyncIterator[str]:
    topics = TopicPrefix.fresh("outbox-redis")
    async with private_topics(endpoints.kafka_bootstrap, ["gw"], prefix=topics, partitions=1):
        yield topics("gw")


async def run_producer_until_killed(prefix: str, topic: str, tmp_path: Path) -> str:
    """Starts the producer, waits for its write, SIGKILLs it; returns the event id it wrote."""
    ready, log = tmp_path / "ready.json", tmp_path / "producer.log"
    cmd = [sys.executable, str(PRODUCER), f"--prefix={prefix}", f"--topic={topic}"]
    with log.open("wb") as out:
        producer = await asyncio.create_subprocess_exec(
            *cmd, f"--ready={ready}", stdout=out, stderr=subprocess.STDOUT, cwd=REPO
        )
    try:

        async def written() -> bool:
            if producer.returncode is not None:
                raise AssertionError(f"producer exited early:\n{log.read_text()}")
            return ready.exists()

        await eventually(written, what="the producer's state write", within=60)
        producer.send_signal(signal.SIGKILL)
        assert await asyncio.wait_for(producer.wait(), 30) == -signal.SIGKILL
    finally:
        if producer.returncode is None:
            producer.kill()
            await producer.wait()
    event_id: str = json.loads(ready.read_text())
    return event_id


async def test_producer_killed_between_state_write_and_publish_the_relay_delivers_it(
    client: redis.Redis, prefix: str, topic: str, endpoints: ServiceEndpoints, tmp_path: Path
) -> None:
    event_id = await run_producer_until_killed(prefix, topic, tmp_path)

    # The state change is in Redis, and its event with it, unsent.
    assert await client.hget(strategy_key(prefix), "state") == b"QUEUED"
    outbox = RedisOutbox(client, prefix)
    [pending] = await outbox.outbox_pending()
    assert (pending.id, pending.topic) == (event_id, topic)

    # A fresh relay (a new instance, as at boot) delivers it to the real broker.
    bus = await KafkaEventBus.connect(endpoints.kafka_bootstrap, client_id="outbox-redis-relay")
    try:
        relay = OutboxRelay(outbox, bus)
        assert await relay.drain() == 1
        assert await outbox.outbox_size() == 0
        assert await relay.drain() == 0
    finally:
        await bus.aclose()

    [delivered] = decoded(await read_all(endpoints.kafka_bootstrap, topic, expect=1))
    assert delivered.id == event_id
    assert delivered.type == "qmtl.gateway.strategy_state_changed"
    changed = delivered.strategy_state_changed
    assert (changed.strategy_id, changed.from_state, changed.to_state) == (STRATEGY_ID, NEW, QUEUED)
    assert len(await read_all(endpoints.kafka_bootstrap, topic)) == 1  # the second drain sent none
