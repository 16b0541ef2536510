"""The contracts-version guard on the buses, on the real broker (and the in-memory stand-in):
every event and record carries the producer's version; one of another major is dead-lettered
with a reason naming both versions, counted, and never handed to the handler, while the
subscription goes on; one of an older (or newer) minor of the same major is delivered."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import pytest

from qmtl.data.v1 import record_pb2
from qmtl.events.v1 import event_pb2
from qmtl.runtime import contracts_version, metrics
from qmtl.runtime.endpoints import ServiceEndpoints
from qmtl.runtime.eventbus import Delivery, WireRecord
from qmtl.runtime.eventbus.model import HEADER_DLQ_REASON, encode
from qmtl.runtime.recordbus.codec import RECORD_CODEC, RecordDelivery
from tests.contract.eventbus_support import EVENT_BUS_ADAPTERS, make_event, open_event_bus
from tests.contract.recordbus_support import make_record, open_record_bus
from tests.eventbus_kafka import read_all
from tests.polling import eventually

HEADER = contracts_version.HEADER
SPOKEN = contracts_version.SPOKEN
MAJOR = int(SPOKEN.split(".")[0])
NEWER_MAJOR = f"{MAJOR + 1}.0.0"
OLDER_MINOR = f"{MAJOR}.0.0"


def refusals() -> float:
    value = metrics.REGISTRY.get_sample_value(
        "qmtl_contracts_version_refusals_total", {"transport": "kafka"}
    )
    return value or 0.0


def speaking(record: WireRecord, version: str) -> WireRecord:
    """`record` as a producer of contracts `version` would have written it."""
    headers = tuple(
        (name, version.encode() if name == HEADER else raw) for name, raw in record.headers
    )
    return WireRecord(record.key, record.value, headers)


def reason_of(letter: WireRecord) -> str:
    return dict(letter.headers)[HEADER_DLQ_REASON].decode()


@pytest.mark.parametrize("adapter", EVENT_BUS_ADAPTERS)
async def test_an_event_of_another_major_is_dead_lettered_and_the_rest_delivered(
    adapter: str, endpoints: ServiceEndpoints
) -> None:
    async with open_event_bus(adapter, endpoints) as under:
        topic = under.topic("a")
        subject = f"nodes/{uuid.uuid4().hex}"
        current, older, newer = (make_event(subject, n) for n in range(3))
        received: list[Delivery] = []

        async def handle(delivery: Delivery) -> None:
            received.append(delivery)

        before = refusals()
        subscription = await under.bus.subscribe([topic], f"cv-{uuid.uuid4().hex}", handle)
        await under.publish_raw(
            topic,
            [speaking(encode(newer), NEWER_MAJOR), speaking(encode(older), OLDER_MINOR)],
        )
        await under.bus.publish(topic, [current])

        async def delivered() -> bool:
            return len(received) >= 2

        await eventually(delivered, what="the supported events", within=60)
        letters = await under.dead_letters(topic, 1)

        assert [d.event for d in received] == [older, current]
        assert len(letters) == 1
        assert event_pb2.Event.FromString(letters[0].value or b"") == newer
        assert NEWER_MAJOR in reason_of(letters[0])
        assert SPOKEN in reason_of(letters[0])
        assert refusals() == before + 1
        assert subscription.running
        assert subscription.failure is None
        await subscription.stop()


async def test_the_kafka_event_bus_sends_the_spoken_version(endpoints: ServiceEndpoints) -> None:
    async with open_event_bus("kafka", endpoints) as under:
        topic = under.topic("b")
        await under.bus.publish(topic, [make_event("nodes/x", 1)])

        found = await read_all(endpoints.kafka_bootstrap, topic, expect=1)

    assert dict(found[0].headers or ())[HEADER] == SPOKEN.encode()


def records(node: str, buckets: Sequence[int]) -> list[record_pb2.Record]:
    return [make_record(node, bucket, float(bucket)) for bucket in buckets]


@pytest.mark.parametrize("adapter", EVENT_BUS_ADAPTERS)
async def test_a_record_of_another_major_is_dead_lettered_and_the_rest_delivered(
    adapter: str, endpoints: ServiceEndpoints
) -> None:
    async with open_record_bus(adapter, endpoints) as under:
        topic = under.topic("a")
        node = f"n-{uuid.uuid4().hex}"
        newer, older, current = records(node, [1, 2, 3])
        received: list[RecordDelivery] = []

        async def handle(delivery: RecordDelivery) -> None:
            received.append(delivery)

        before = refusals()
        subscription = await under.bus.subscribe([topic], f"cv-{uuid.uuid4().hex}", handle)
        await under.produce_raw(
            topic,
            [
                speaking(RECORD_CODEC.encode(newer), NEWER_MAJOR),
                speaking(RECORD_CODEC.encode(older), OLDER_MINOR),
            ],
        )
        await under.bus.produce(topic, [current])

        async def delivered() -> bool:
            return len(received) >= 2

        await eventually(delivered, what="the supported records", within=60)
        letters = await under.dead_letters(topic, 1)
        refused = refusals()
        # read() leaves out what a subscriber would dead-letter (each reading counts it).
        read = await under.bus.read(topic)

        assert sorted(d.record.bucket_ts.seconds for d in received) == [120, 180]
        assert [d.record for d in read if d.record == newer] == []
        assert len(letters) == 1
        assert record_pb2.Record.FromString(letters[0].value or b"") == newer
        assert NEWER_MAJOR in reason_of(letters[0])
        assert refused == before + 1
        assert subscription.running
        assert subscription.failure is None
        await subscription.stop()


async def test_the_kafka_record_bus_sends_the_spoken_version(endpoints: ServiceEndpoints) -> None:
    async with open_record_bus("kafka", endpoints) as under:
        topic = under.topic("b")
        await under.bus.produce(topic, records(f"n-{uuid.uuid4().hex}", [5]))

        found = await read_all(endpoints.kafka_bootstrap, topic, expect=1)

    assert dict(found[0].headers or ())[HEADER] == SPOKEN.encode()
