"""The Kafka started by scripts/services/kafka.sh is real: topics, produce, consume, delete.

A uniquely named topic is created with the admin client, one protobuf-encoded message goes in
and comes back out through a consumer group reading from the beginning, and the topic is
deleted afterwards. The broker address is `endpoints.kafka_bootstrap` (QMTL_KAFKA_BOOTSTRAP,
else 127.0.0.1:$QMTL_KAFKA_PORT). A broker that does not answer fails the test, never skips it.
Every network step is bounded by STEP_TIMEOUT_S.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from google.protobuf import struct_pb2, timestamp_pb2

from qmtl.runtime.endpoints import ServiceEndpoints

CONNECT_TIMEOUT_S = 5.0
STEP_TIMEOUT_S = 30.0
REQUEST_TIMEOUT_MS = 15_000
CONTENT_TYPE = b"application/x-protobuf; messageType=google.protobuf.Struct"


def _unreachable(bootstrap: str, exc: BaseException) -> str:
    return (
        f"Kafka is not reachable at {bootstrap} ({exc!r}); start it with "
        "`make services-up` or `scripts/services/kafka.sh start`"
    )


@pytest.fixture
async def admin(endpoints: ServiceEndpoints) -> AsyncIterator[AIOKafkaAdminClient]:
    bootstrap = endpoints.kafka_bootstrap
    host, _, port = bootstrap.split(",")[0].strip().rpartition(":")
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(host, int(port)), CONNECT_TIMEOUT_S
        )
    except (OSError, TimeoutError) as exc:
        pytest.fail(_unreachable(bootstrap, exc))
    writer.close()
    await writer.wait_closed()

    client = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=REQUEST_TIMEOUT_MS)
    try:
        await asyncio.wait_for(client.start(), STEP_TIMEOUT_S)
    except (KafkaError, TimeoutError) as exc:
        await client.close()
        pytest.fail(_unreachable(bootstrap, exc))
    yield client
    await client.close()


@pytest.fixture
async def topic(admin: AIOKafkaAdminClient) -> AsyncIterator[str]:
    name = f"qmtl-smoke-{uuid.uuid4().hex[:12]}"
    created = await asyncio.wait_for(
        admin.create_topics([NewTopic(name=name, num_partitions=1, replication_factor=1)]),
        STEP_TIMEOUT_S,
    )
    assert [(t, code) for t, code, *_ in created.topic_errors] == [(name, 0)], created
    yield name
    deleted = await asyncio.wait_for(admin.delete_topics([name]), STEP_TIMEOUT_S)
    assert [(t, code) for t, code, *_ in deleted.topic_error_codes] == [(name, 0)], deleted


def _sample_message() -> struct_pb2.Struct:
    created = timestamp_pb2.Timestamp(seconds=1_767_225_600, nanos=123_000_000)
    message = struct_pb2.Struct()
    message.update(
        {
            "kind": "qmtl.smoke",
            "created": created.ToJsonString(),
            "value": 42.5,
            "ok": True,
            "tags": ["kafka", "protobuf"],
            "nested": {"symbol": "BTC/USDT", "interval_s": 60},
        }
    )
    return message


async def test_protobuf_message_round_trips_through_a_consumer_group(
    endpoints: ServiceEndpoints, topic: str
) -> None:
    bootstrap = endpoints.kafka_bootstrap
    sent = _sample_message()
    key = b"smoke-key"

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", request_timeout_ms=REQUEST_TIMEOUT_MS
    )
    await asyncio.wait_for(producer.start(), STEP_TIMEOUT_S)
    try:
        record = await asyncio.wait_for(
            producer.send_and_wait(
                topic,
                value=sent.SerializeToString(),
                key=key,
                headers=[("content-type", CONTENT_TYPE)],
            ),
            STEP_TIMEOUT_S,
        )
    finally:
        await producer.stop()
    assert (record.topic, record.partition, record.offset) == (topic, 0, 0)

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"{topic}-group",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        request_timeout_ms=REQUEST_TIMEOUT_MS,
    )
    await asyncio.wait_for(consumer.start(), STEP_TIMEOUT_S)
    try:
        received = await asyncio.wait_for(consumer.getone(), STEP_TIMEOUT_S)
        await asyncio.wait_for(consumer.commit(), STEP_TIMEOUT_S)
    finally:
        await consumer.stop()

    assert (received.topic, received.offset, received.key) == (topic, 0, key)
    assert dict(received.headers) == {"content-type": CONTENT_TYPE}
    decoded = struct_pb2.Struct.FromString(received.value)
    assert decoded == sent
    assert decoded["nested"]["symbol"] == "BTC/USDT"
    assert list(decoded["tags"]) == ["kafka", "protobuf"]
