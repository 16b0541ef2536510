"""Kafka plumbing shared by the event-bus tests (contract and integration): reaching the broker
(failing, never skipping, when it does not answer), per-test topic names under a random
prefix, creating them with their dead-letter topics and deleting them afterwards, and reading
a topic raw, as a consumer that knows nothing of QMTL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError

from qmtl.runtime.eventbus import WireRecord, dead_letter_topic
from tests.polling import eventually

STEP_TIMEOUT_S = 30.0
REQUEST_TIMEOUT_MS = 15_000


def unreachable(bootstrap: str, exc: BaseException) -> str:
    return (
        f"Kafka is not reachable at {bootstrap} ({exc!r}); start it with "
        "`make services-up` or `scripts/services/kafka.sh start`"
    )


@dataclass(frozen=True)
class TopicPrefix:
    """Topic names private to one test."""

    prefix: str

    @classmethod
    def fresh(cls, label: str = "eventbus") -> TopicPrefix:
        return cls(f"{label}-{uuid.uuid4().hex[:12]}.")

    def __call__(self, name: str) -> str:
        return f"{self.prefix}{name}"


@asynccontextmanager
async def kafka_admin(bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=REQUEST_TIMEOUT_MS)
    try:
        await asyncio.wait_for(client.start(), STEP_TIMEOUT_S)
    except (KafkaError, TimeoutError, OSError) as exc:
        await client.close()
        pytest.fail(unreachable(bootstrap, exc))
    try:
        yield client
    finally:
        await client.close()


async def create_topics(
    admin: AIOKafkaAdminClient, names: Sequence[str], *, partitions: int, with_dlq: bool = True
) -> list[str]:
    """Creates each topic (and its dead-letter topic); returns every name created."""
    wanted = [*names, *(dead_letter_topic(name) for name in names if with_dlq)]
    result = await asyncio.wait_for(
        admin.create_topics(
            [NewTopic(name=n, num_partitions=partitions, replication_factor=1) for n in wanted]
        ),
        STEP_TIMEOUT_S,
    )
    errors = [(t, code) for t, code, *_ in result.topic_errors if code != 0]
    assert not errors, errors
    await wait_for_leaders(admin, wanted, partitions)
    return wanted


async def wait_for_leaders(
    admin: AIOKafkaAdminClient, names: Sequence[str], partitions: int
) -> None:
    """Returns once every partition of `names` has a leader: CreateTopics answers before
    that, and a client asking for metadata too early finds no topic."""

    async def ready() -> bool:
        described = await admin.describe_topics(list(names))
        return all(
            t["error_code"] == 0
            and len(t["partitions"]) == partitions
            and all(p["leader"] >= 0 for p in t["partitions"])
            for t in described
        )

    await eventually(ready, what=f"leaders for {list(names)}", within=STEP_TIMEOUT_S)


async def delete_topics_with_prefix(admin: AIOKafkaAdminClient, prefix: str) -> None:
    names = [name for name in await admin.list_topics() if name.startswith(prefix)]
    if names:
        await asyncio.wait_for(admin.delete_topics(names), STEP_TIMEOUT_S)


@asynccontextmanager
async def private_topics(
    bootstrap: str, names: Sequence[str], *, prefix: TopicPrefix, partitions: int
) -> AsyncIterator[list[str]]:
    """`names` (under `prefix`) exist with their dead-letter topics for the block, then every
    topic under the prefix is deleted."""
    async with kafka_admin(bootstrap) as admin:
        created = await create_topics(admin, [prefix(n) for n in names], partitions=partitions)
        try:
            yield created
        finally:
            await delete_topics_with_prefix(admin, prefix.prefix)


async def produce_raw(bootstrap: str, topic: str, records: Sequence[WireRecord]) -> None:
    """Writes records as bytes with a plain producer, as a foreign or buggy producer would."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await asyncio.wait_for(producer.start(), STEP_TIMEOUT_S)
    try:
        for record in records:
            await producer.send_and_wait(
                topic, value=record.value, key=record.key, headers=list(record.headers)
            )
    finally:
        await producer.stop()


async def read_all(
    bootstrap: str, topic: str, *, expect: int | None = None
) -> list[ConsumerRecord]:
    """Every record of `topic` up to its end offsets at the time of the call (or, with
    `expect`, until that many arrived), read without a group by a plain consumer."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=REQUEST_TIMEOUT_MS,
    )
    await asyncio.wait_for(consumer.start(), STEP_TIMEOUT_S)
    try:
        async with kafka_admin(bootstrap) as admin:
            (described,) = await admin.describe_topics([topic])
        assert described["partitions"], f"topic {topic} has no partitions: {described}"
        tps = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        total = sum(ends.values()) if expect is None else expect
        records: list[ConsumerRecord] = []
        deadline = asyncio.get_running_loop().time() + STEP_TIMEOUT_S
        while len(records) < total:
            assert asyncio.get_running_loop().time() < deadline, (
                f"read {len(records)} of {total} records of {topic}"
            )
            batches = await consumer.getmany(timeout_ms=500)
            for batch in batches.values():
                records.extend(batch)
        return records
    finally:
        await consumer.stop()
