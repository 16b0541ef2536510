"""A writer's own Redis script with the outbox in it, on the real Redis.

The script built with `outbox_script` (outbox_redis_producer_process.SET_STATE) changes state
and appends its event in one step: both happen, or, when its check refuses, neither. Redis
keeps a script's writes even when a later command fails, which is why the rule is "check
first, write last" (the last test shows it). Also here: entries damaged in ways only Redis
can hold, and a Redis error that is not an outage. Each test has a key prefix of its own,
deleted after; a Redis that does not answer fails the test.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis.asyncio as redis
from redis.exceptions import OutOfMemoryError, ResponseError

from qmtl.runtime.endpoints import ServiceEndpoints
from qmtl.runtime.eventbus import STRATEGY_EVENTS, InMemoryEventBus, decode
from qmtl.runtime.outbox import (
    OutboxError,
    OutboxRelay,
    OutboxUnavailableError,
    RedisOutbox,
    outbox_argv,
    outbox_script,
)

from .outbox_redis_producer_process import (
    NEW,
    QUEUED,
    set_state,
    set_state_script,
    state_changed,
    strategy_key,
)
from .workqueue_support import PrivateRedis, connect, delete_prefixed


@dataclass
class Writer:
    client: redis.Redis
    outbox: RedisOutbox
    key: str  # the strategy's hash


@pytest.fixture
async def writer(endpoints: ServiceEndpoints) -> AsyncIterator[Writer]:
    client = await connect(endpoints.redis_url)
    prefix = f"test:outbox-writer:{uuid.uuid4().hex}:"
    try:
        yield Writer(client, RedisOutbox(client, prefix), strategy_key(prefix))
    finally:
        await delete_prefixed(client, [prefix])
        await client.aclose()


def published(bus: InMemoryEventBus) -> list[str]:
    return [decode(r.value, r.headers).id for r in bus.records(STRATEGY_EVENTS)]


async def test_a_state_change_and_its_event_are_written_together(writer: Writer) -> None:
    event = state_changed(NEW, QUEUED)
    script = set_state_script(writer.client)

    await set_state(script, writer.outbox, writer.key, "", "QUEUED", event, STRATEGY_EVENTS)

    assert await writer.client.hget(writer.key, "state") == b"QUEUED"
    [entry] = await writer.outbox.outbox_pending()
    assert (entry.id, entry.topic, entry.payload) == outbox_argv(STRATEGY_EVENTS, event)
    bus = InMemoryEventBus(partitions=1)
    assert await OutboxRelay(writer.outbox, bus).drain() == 1
    assert published(bus) == [event.id]


async def test_a_refused_check_writes_neither_state_nor_event(writer: Writer) -> None:
    await writer.client.hset(writer.key, "state", "PROCESSING")
    script = set_state_script(writer.client)

    with pytest.raises(ResponseError, match="E_INVALID_STATE the state is PROCESSING"):
        await set_state(
            script, writer.outbox, writer.key, "", "QUEUED", state_changed(NEW, QUEUED), "t"
        )

    assert await writer.client.hget(writer.key, "state") == b"PROCESSING"
    assert await writer.outbox.outbox_size() == 0
    assert await writer.client.exists(*writer.outbox.keys.as_list()) == 0  # not even the seq


async def test_a_script_failing_after_its_writes_keeps_them_so_checks_come_first(
    writer: Writer,
) -> None:
    # What "check first, write last" guards against: Redis has no rollback.
    late_refusal = writer.client.register_script(
        outbox_script(
            "redis.call('HSET', KEYS[4], 'state', 'QUEUED')\n"
            "qmtl_outbox_append(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3])\n"
            "return redis.error_reply('refused after writing')\n"
        )
    )
    event = state_changed(NEW, QUEUED)

    with pytest.raises(ResponseError, match="refused after writing"):
        await late_refusal(
            keys=[*writer.outbox.keys.as_list(), writer.key],
            args=outbox_argv(STRATEGY_EVENTS, event),
        )

    assert await writer.client.hget(writer.key, "state") == b"QUEUED"
    assert [e.id for e in await writer.outbox.outbox_pending()] == [event.id]


async def test_any_topic_round_trips_through_the_scripts_framing(writer: Writer) -> None:
    # The entry is framed by the topic's length in bytes (Lua's), read back by Python's.
    topics = ["a:b", "tópico:ü", "7:x"]
    for topic in topics:
        await writer.outbox.append(topic, [state_changed(NEW, QUEUED)])
    assert [e.topic for e in await writer.outbox.outbox_pending()] == topics


async def test_entries_damaged_in_redis_are_dropped_and_the_rest_relayed(writer: Writer) -> None:
    outbox, client, keys = writer.outbox, writer.client, writer.outbox.keys
    first, last = state_changed(NEW, QUEUED), state_changed(QUEUED, NEW)
    await outbox.append(STRATEGY_EVENTS, [first])
    # An id in the order without an entry; an entry whose framing is cut short; an id that is
    # not UTF-8, which must still be acked byte for byte.
    for member, raw in [(b"no-entry", None), (b"cut", b"1:40:short"), (b"\xff\xfe", b"junk")]:
        if raw is not None:
            await client.hset(keys.entries, member, raw)
        await client.zadd(keys.order, {member: await client.incr(keys.seq)})
    await outbox.append(STRATEGY_EVENTS, [last])
    bus = InMemoryEventBus(partitions=1)
    relay = OutboxRelay(outbox, bus)

    assert await relay.drain() == 2
    assert published(bus) == [first.id, last.id]
    assert relay.dropped == 3
    assert await outbox.outbox_size() == 0
    assert await client.hlen(keys.entries) == 0


async def test_a_redis_error_that_is_not_an_outage_is_not_retryable(writer: Writer) -> None:
    await writer.client.set(writer.outbox.keys.order, "not a sorted set")

    with pytest.raises(OutboxError) as caught:
        await writer.outbox.outbox_pending()

    assert "WRONGTYPE" in caught.value.message
    assert (caught.value.code, caught.value.retryable) == ("E_INTERNAL", False)


async def test_out_of_memory_refuses_writes_whole_and_the_relay_still_drains(
    tmp_path: Path,
) -> None:
    server = PrivateRedis(tmp_path)  # its memory limit is ours to change
    server.start()
    client = redis.Redis.from_url(server.url)
    try:
        outbox = RedisOutbox(client, "test:outbox-oom:")
        key = strategy_key("test:outbox-oom:")
        script = set_state_script(client)
        queued = state_changed(NEW, QUEUED)
        await set_state(script, outbox, key, "", "QUEUED", queued, STRATEGY_EVENTS)
        await client.config_set("maxmemory", 1)  # any use is over it now

        with pytest.raises(OutboxUnavailableError, match="maxmemory") as refused:
            await outbox.append(STRATEGY_EVENTS, [state_changed(QUEUED, NEW)])
        assert refused.value.retryable
        with pytest.raises(OutOfMemoryError):
            await set_state(
                script, outbox, key, "QUEUED", "NEW", state_changed(QUEUED, NEW), STRATEGY_EVENTS
            )
        assert await client.hget(key, "state") == b"QUEUED"  # refused whole, nothing half-done

        bus = InMemoryEventBus(partitions=1)
        assert await OutboxRelay(outbox, bus).drain() == 1  # reads and acks need no memory
        assert published(bus) == [queued.id]
        assert await outbox.outbox_size() == 0
    finally:
        await client.aclose()
        server.stop()
