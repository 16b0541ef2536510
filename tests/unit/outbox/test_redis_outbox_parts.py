"""The Redis outbox's parts that need no server: keys, the entry framing, the script text,
construction checks, and how an unreachable or silent Redis is reported.

On the real Redis: tests/contract/test_outbox_contract.py (the OutboxStore behaviour) and
tests/integration/test_outbox_redis_writer.py (a writer's own script).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from qmtl.events.v1 import event_pb2
from qmtl.runtime.eventbus import DAG_EVENTS, InvalidEventError
from qmtl.runtime.graphstore import MAX_OUTBOX_PAYLOAD_BYTES
from qmtl.runtime.outbox import (
    OUTBOX_APPEND_LUA,
    OutboxConfigError,
    OutboxTooLargeError,
    OutboxUnavailableError,
    RedisOutbox,
    RedisOutboxKeys,
    outbox_argv,
    outbox_script,
)
from qmtl.runtime.outbox.redis_store import decode_entry


def test_keys_sit_under_the_prefix_in_the_scripts_argument_order() -> None:
    keys = RedisOutboxKeys.for_prefix("qmtl:gw:{s}:")
    assert keys.as_list() == [
        "qmtl:gw:{s}:outbox:order",
        "qmtl:gw:{s}:outbox:seq",
        "qmtl:gw:{s}:outbox:entries",
    ]
    assert (keys.order, keys.seq, keys.entries) == tuple(keys.as_list())


def test_a_writers_script_starts_with_the_shebang_then_the_append_function() -> None:
    script = outbox_script("return 1")
    assert script.startswith("#!lua\n")  # Redis reads flags only from the first line
    assert (
        "local function qmtl_outbox_append(order_key, seq_key, entries_key, id, topic, payload)"
        in (OUTBOX_APPEND_LUA)
    )
    assert script == "#!lua\n" + OUTBOX_APPEND_LUA + "\nreturn 1"


@pytest.mark.parametrize("topic", [DAG_EVENTS, "a:b", "tópico"])
def test_an_entry_decodes_whatever_its_topic_holds(topic: str) -> None:
    payload = b"\x00:12:\xff"  # colons and digits in the payload are not framing
    raw = b"1500:%d:" % len(topic.encode()) + topic.encode() + payload
    entry = decode_entry("e", raw)
    assert (entry.id, entry.topic, entry.payload, entry.created_at) == ("e", topic, payload, 1.5)


@pytest.mark.parametrize(
    "raw",
    [
        None,  # the order names an id the entries hash lacks
        b"",
        b"garbage",
        b"1500:x:topic",
        b"1500:99:short",
        b"1500:0:payload",
        b"1500:-1:topic",
        b"x:5:topicpayload",
        b"1500:2:\xff\xfepayload",  # a topic that is not UTF-8
    ],
)
def test_an_entry_that_does_not_decode_comes_back_unpublishable(
    raw: bytes | None, caplog: pytest.LogCaptureFixture
) -> None:
    entry = decode_entry("e", raw)
    assert (entry.id, entry.topic) == ("e", "")  # the relay drops an entry without a topic
    assert entry.payload == (raw or b"")
    assert "e does not decode" in caplog.text


def test_outbox_argv_is_what_a_script_passes_for_one_entry() -> None:
    event = event_pb2.Event(id="e1", type="qmtl.dag.queue_updated", subject="tags/x/60")
    assert outbox_argv(DAG_EVENTS, event) == ("e1", DAG_EVENTS, event.SerializeToString())


@pytest.mark.parametrize(
    ("topic", "event", "field"),
    [
        (DAG_EVENTS, event_pb2.Event(type="t", subject="s"), "events[0].id"),
        (DAG_EVENTS, event_pb2.Event(id="e", subject="s"), "events[0].type"),
        (DAG_EVENTS, event_pb2.Event(id="e", type="t"), "events[0].subject"),
        ("", event_pb2.Event(id="e", type="t", subject="s"), "topic"),
        (DAG_EVENTS + ".dlq", event_pb2.Event(id="e", type="t", subject="s"), "topic"),
    ],
)
def test_outbox_argv_refuses_what_the_relay_could_not_publish(
    topic: str, event: event_pb2.Event, field: str
) -> None:
    with pytest.raises(InvalidEventError) as caught:
        outbox_argv(topic, event)
    assert caught.value.field == field


def test_outbox_argv_refuses_a_payload_the_broker_would_refuse() -> None:
    event = event_pb2.Event(id="e", type="t", subject="s" * MAX_OUTBOX_PAYLOAD_BYTES)
    with pytest.raises(OutboxTooLargeError) as caught:
        outbox_argv(DAG_EVENTS, event)
    assert (caught.value.field, caught.value.code) == ("payload", "E_PAYLOAD_TOO_LARGE")


@pytest.mark.parametrize(
    ("decode_responses", "call_timeout", "field"),
    [(True, 5.0, "client"), (False, 0.0, "call_timeout")],
)
async def test_a_store_that_could_not_work_is_refused_at_construction(
    decode_responses: bool, call_timeout: float, field: str
) -> None:
    client = redis.Redis(decode_responses=decode_responses)  # refused before any call
    try:
        with pytest.raises(OutboxConfigError) as caught:
            RedisOutbox(client, "p:", call_timeout=call_timeout)
    finally:
        await client.aclose()
    assert (caught.value.field, caught.value.code) == (field, "E_VALIDATION")


async def test_an_unreachable_redis_is_a_retryable_unavailable_error() -> None:
    client = redis.Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0))
    try:
        with pytest.raises(OutboxUnavailableError) as caught:
            await RedisOutbox(client, "p:", call_timeout=5).outbox_pending()
    finally:
        await client.aclose()
    assert (caught.value.code, caught.value.retryable) == ("E_UNAVAILABLE", True)
    assert caught.value.to_qmtl_error().retryable


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """A port that accepts connections and never answers (a paused or half-open Redis)."""
    held: list[asyncio.StreamWriter] = []

    async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_a_redis_that_never_answers_fails_the_call_at_its_deadline(
    silent_server: int,
) -> None:
    client = redis.Redis(host="127.0.0.1", port=silent_server)
    event = event_pb2.Event(id="e", type="t", subject="s")
    try:
        with pytest.raises(OutboxUnavailableError) as caught:
            await RedisOutbox(client, "p:", call_timeout=0.2).append(DAG_EVENTS, [event])
    finally:
        await client.aclose()
    assert "did not answer within 0.2s" in caught.value.message
    assert caught.value.retryable


def test_the_package_imports_without_the_redis_client() -> None:
    # The core wheel ships the relay and MemoryOutbox but no Redis client.
    code = (
        "import sys, qmtl.runtime.outbox as o\n"
        "assert 'redis' not in sys.modules, 'redis was imported'\n"
        "assert o.MemoryOutbox and o.OutboxRelay\n"
        "o.RedisOutbox\n"
        "assert 'redis' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
