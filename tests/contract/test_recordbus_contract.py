"""The RecordBus contract: the in-memory bus and the aiokafka bus (on the real broker) behave
exactly like this. Deliveries are awaited with `eventually`, never a fixed sleep."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from qmtl.runtime.endpoints import ServiceEndpoints
from qmtl.runtime.eventbus import (
    HEADER_DLQ_REASON,
    HEADER_MESSAGE_TYPE,
    InvalidEventError,
    Subscription,
    WireRecord,
)
from qmtl.runtime.recordbus import RECORD_TYPE, RecordDelivery
from qmtl.runtime.records import dedupe_key, message_key
from tests.polling import eventually

from .recordbus_support import (
    RECORD_BUS_ADAPTERS,
    RecordBusUnderTest,
    make_record,
    open_record_bus,
    value_of,
)


@pytest.fixture(params=RECORD_BUS_ADAPTERS)
async def bus(
    request: pytest.FixtureRequest, endpoints: ServiceEndpoints
) -> AsyncIterator[RecordBusUnderTest]:
    async with open_record_bus(request.param, endpoints) as opened:
        yield opened


class Recorder:
    """A handler that records what it got; `fail_on` raises once on that value."""

    def __init__(self, *, fail_on: float | None = None) -> None:
        self.got: list[RecordDelivery] = []
        self.fail_on = fail_on

    async def __call__(self, delivery: RecordDelivery) -> None:
        if self.fail_on is not None and value_of(delivery.record) == self.fail_on:
            self.fail_on = None
            raise RuntimeError(f"handler failed on {value_of(delivery.record)}")
        self.got.append(delivery)

    def values(self) -> list[float]:
        return [value_of(d.record) for d in self.got]

    def has(self, count: int) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return len(self.got) >= count

        return check


def _stopped(subscription: Subscription) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return not subscription.running

    return check


async def test_produced_records_reach_a_subscriber_intact(bus: RecordBusUnderTest) -> None:
    topic = bus.topic("a")
    sent = [make_record(f"node-{n % 3}", n, float(n)) for n in range(9)]
    recorder = Recorder()
    subscription = await bus.bus.subscribe([topic], "g", recorder)
    await bus.bus.produce(topic, sent)
    await eventually(recorder.has(9), what="9 deliveries")
    assert sorted(d.record.SerializeToString() for d in recorder.got) == sorted(
        r.SerializeToString() for r in sent
    )
    assert {d.topic for d in recorder.got} == {topic}
    assert all(0 <= d.partition < 3 and d.offset >= 0 for d in recorder.got)
    assert subscription.failure is None
    await subscription.stop()
    assert not subscription.running


async def test_records_of_one_bucket_share_a_partition_whatever_their_window(
    bus: RecordBusUnderTest,
) -> None:
    """Partitioned by the partition key (node, interval, bucket), keyed by the message key
    (which adds the window hash): versions of one bucket stay on one partition, in order."""
    topic = bus.topic("a")
    recorder = Recorder()
    await bus.bus.subscribe([topic], "g", recorder)
    sent = [
        make_record("node-x", bucket, float(10 * bucket + version), window=f"w{version}")
        for version in range(4)
        for bucket in range(6)
    ]
    await bus.bus.produce(topic, sent)
    await eventually(recorder.has(len(sent)), what="every record")
    partitions: dict[int, set[int]] = defaultdict(set)
    versions: dict[int, list[float]] = defaultdict(list)
    for d in recorder.got:
        bucket = d.record.bucket_ts.seconds // 60
        partitions[bucket].add(d.partition)
        versions[bucket].append(value_of(d.record))
    assert all(len(found) == 1 for found in partitions.values()), partitions
    assert len({p for found in partitions.values() for p in found}) > 1  # spread over partitions
    for bucket, values in versions.items():
        assert values == [10.0 * bucket + v for v in range(4)]


async def test_the_wire_is_the_message_key_and_a_plain_record(bus: RecordBusUnderTest) -> None:
    topic = bus.topic("a")
    record = make_record("node-x", 3, 1.5, window="abc")
    await bus.bus.produce(topic, [record])
    (delivery,) = await bus.bus.read(topic)
    assert delivery.record == record
    if bus.adapter == "memory":
        from qmtl.runtime.recordbus import InMemoryRecordBus

        assert isinstance(bus.bus, InMemoryRecordBus)
        (wire,) = bus.bus.records(topic)
        assert wire.key == message_key(record).encode() == b"node-x:60:180:abc"
        assert dict(wire.headers)[HEADER_MESSAGE_TYPE] == RECORD_TYPE.encode()


async def test_a_record_without_keys_is_refused_and_nothing_is_sent(
    bus: RecordBusUnderTest,
) -> None:
    topic = bus.topic("a")
    good = make_record("node-x", 1, 1.0)
    bad = make_record("", 2, 2.0)
    with pytest.raises(InvalidEventError) as caught:
        await bus.bus.produce(topic, [good, bad])
    assert caught.value.field == "records[1].node_id"
    assert not caught.value.retryable
    misaligned = make_record("node-x", 1, 1.0)
    misaligned.bucket_ts.seconds = 61
    with pytest.raises(InvalidEventError, match="multiple of the interval"):
        await bus.bus.produce(topic, [misaligned])
    with pytest.raises(InvalidEventError, match="dead-letter"):
        await bus.bus.produce(topic + ".dlq", [good])
    assert await bus.bus.read(topic) == []


async def test_every_group_gets_every_record(bus: RecordBusUnderTest) -> None:
    topic = bus.topic("a")
    first, second = Recorder(), Recorder()
    await bus.bus.subscribe([topic], "g1", first)
    await bus.bus.produce(topic, [make_record("node-x", n, float(n)) for n in range(10)])
    await bus.bus.subscribe([topic], "g2", second)
    await eventually(first.has(10), what="group 1")
    await eventually(second.has(10), what="group 2")
    assert sorted(first.values()) == sorted(second.values()) == [float(n) for n in range(10)]


async def test_a_record_whose_handler_raised_goes_to_the_groups_next_subscriber(
    bus: RecordBusUnderTest,
) -> None:
    """Commit after the handler: what it did not finish is delivered again."""
    topic = bus.topic("a")
    # One bucket: one partition, so the order is the order produced.
    sent = [make_record("node-x", 0, float(n), window=f"w{n}") for n in range(8)]
    await bus.bus.produce(topic, sent)
    failing = Recorder(fail_on=5.0)
    subscription = await bus.bus.subscribe([topic], "g", failing)
    await eventually(_stopped(subscription), what="the failing subscription to stop")
    assert isinstance(subscription.failure, RuntimeError)
    assert failing.values() == [0.0, 1.0, 2.0, 3.0, 4.0]
    nxt = Recorder()
    await bus.bus.subscribe([topic], "g", nxt)
    await eventually(nxt.has(3), what="redelivery")
    assert nxt.values() == [5.0, 6.0, 7.0]


async def test_an_undecodable_record_is_dead_lettered_and_the_rest_delivered(
    bus: RecordBusUnderTest,
) -> None:
    topic = bus.topic("a")
    recorder = Recorder()
    await bus.bus.subscribe([topic], "g", recorder)
    await bus.produce_raw(topic, [WireRecord(b"k", b"\xff\xfe not protobuf", ())])
    await bus.bus.produce(topic, [make_record("node-x", 0, 7.0)])
    await eventually(recorder.has(1), what="the good record")
    (letter,) = await bus.dead_letters(topic, 1)
    assert letter.value == b"\xff\xfe not protobuf"
    assert dict(letter.headers)[HEADER_DLQ_REASON]
    assert recorder.values() == [7.0]


async def test_read_returns_what_the_topic_retains_without_moving_any_group(
    bus: RecordBusUnderTest,
) -> None:
    topic = bus.topic("a")
    sent = [make_record("node-x", n, float(n)) for n in range(12)]
    await bus.bus.produce(topic, sent)
    await bus.produce_raw(topic, [WireRecord(b"k", b"\xff\xfe not protobuf", ())])
    read = await bus.bus.read(topic)
    assert sorted(dedupe_key(d.record) for d in read) == sorted(dedupe_key(r) for r in sent)
    by_partition: dict[int, list[int]] = defaultdict(list)
    for d in read:
        by_partition[d.partition].append(d.offset)
    assert all(offsets == sorted(offsets) for offsets in by_partition.values())
    # Reading joined no group: a new group still starts at the oldest record.
    recorder = Recorder()
    await bus.bus.subscribe([topic], "g", recorder)
    await eventually(recorder.has(12), what="the group's first delivery")
    assert await bus.bus.read(bus.topic("b")) == []
