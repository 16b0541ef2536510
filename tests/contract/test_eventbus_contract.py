"""The EventBus contract: the in-memory bus and the aiokafka bus (on the real broker) behave
exactly like this. Deliveries are awaited with `eventually`, never a fixed sleep."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from qmtl.runtime.endpoints import ServiceEndpoints
from qmtl.runtime.eventbus import (
    CONTENT_TYPE,
    HEADER_CONTENT_TYPE,
    HEADER_DLQ_GROUP,
    HEADER_DLQ_OFFSET,
    HEADER_DLQ_PARTITION,
    HEADER_DLQ_REASON,
    HEADER_DLQ_TOPIC,
    HEADER_MESSAGE_TYPE,
    Deduper,
    Delivery,
    EventBusError,
    InvalidEventError,
    Subscription,
    WireRecord,
    dead_letter_topic,
    deduplicated,
    encode,
)
from tests.polling import eventually

from .eventbus_support import EVENT_BUS_ADAPTERS, BusUnderTest, make_event, number, open_event_bus


@pytest.fixture(params=EVENT_BUS_ADAPTERS)
async def bus(
    request: pytest.FixtureRequest, endpoints: ServiceEndpoints
) -> AsyncIterator[BusUnderTest]:
    async with open_event_bus(request.param, endpoints) as opened:
        yield opened


class Recorder:
    """A handler that records what it got; `fail_on` raises once on that event number."""

    def __init__(self, *, fail_on: int | None = None) -> None:
        self.got: list[Delivery] = []
        self.fail_on = fail_on

    async def __call__(self, delivery: Delivery) -> None:
        if self.fail_on is not None and number(delivery.event) == self.fail_on:
            self.fail_on = None
            raise RuntimeError(f"handler failed on {number(delivery.event)}")
        self.got.append(delivery)

    def numbers(self) -> list[int]:
        return [number(d.event) for d in self.got]

    def has(self, count: int) -> Callable[[], Awaitable[bool]]:
        async def check() -> bool:
            return len(self.got) >= count

        return check


# --- round trip and order -----------------------------------------------------------------


async def test_published_events_reach_a_subscriber_intact(bus: BusUnderTest) -> None:
    topic = bus.topic("a")
    sent = [make_event(f"strategies/s{n}", n) for n in range(6)]
    recorder = Recorder()
    subscription = await bus.bus.subscribe([topic], "g", recorder)
    await bus.bus.publish(topic, sent)
    await eventually(recorder.has(6), what="6 deliveries")
    assert sorted(d.event.SerializeToString() for d in recorder.got) == sorted(
        e.SerializeToString() for e in sent
    )
    assert {d.topic for d in recorder.got} == {topic}
    assert all(0 <= d.partition < 3 and d.offset >= 0 for d in recorder.got)
    assert subscription.running
    assert subscription.failure is None
    await subscription.stop()
    assert not subscription.running


async def test_events_of_one_subject_arrive_in_order_on_one_partition(bus: BusUnderTest) -> None:
    topic = bus.topic("a")
    subjects = [f"nodes/n{k}" for k in range(5)]
    recorder = Recorder()
    await bus.bus.subscribe([topic], "g", recorder)
    n = 0
    for _ in range(4):  # several publishes, interleaving subjects
        batch = []
        for _ in range(25):
            batch.append(make_event(subjects[n % 5], n))
            n += 1
        await bus.bus.publish(topic, batch)
    await eventually(recorder.has(100), what="100 deliveries")
    by_subject: dict[str, list[int]] = defaultdict(list)
    partitions: dict[str, set[int]] = defaultdict(set)
    for d in recorder.got:
        by_subject[d.event.subject].append(number(d.event))
        partitions[d.event.subject].add(d.partition)
    for k, subject in enumerate(subjects):
        assert by_subject[subject] == list(range(k, 100, 5))
        assert len(partitions[subject]) == 1


async def test_every_group_gets_every_event(bus: BusUnderTest) -> None:
    topic = bus.topic("a")
    first, second = Recorder(), Recorder()
    await bus.bus.subscribe([topic], "g1", first)
    await bus.bus.publish(topic, [make_event("services/x", n) for n in range(10)])
    # A group that joins later still starts at the oldest retained event.
    await bus.bus.subscribe([topic], "g2", second)
    await eventually(first.has(10), what="group 1")
    await eventually(second.has(10), what="group 2")
    assert first.numbers() == second.numbers() == list(range(10))


async def test_one_subscription_reads_several_topics(bus: BusUnderTest) -> None:
    recorder = Recorder()
    await bus.bus.subscribe([bus.topic("a"), bus.topic("b")], "g", recorder)
    await bus.bus.publish(bus.topic("a"), [make_event("services/x", 1)])
    await bus.bus.publish(bus.topic("b"), [make_event("services/x", 2)])
    await eventually(recorder.has(2), what="both topics")
    assert {(d.topic, number(d.event)) for d in recorder.got} == {
        (bus.topic("a"), 1),
        (bus.topic("b"), 2),
    }


# --- commits and redelivery ---------------------------------------------------------------


async def test_an_event_whose_handler_raised_goes_to_the_groups_next_subscriber(
    bus: BusUnderTest,
) -> None:
    topic = bus.topic("a")
    await bus.bus.publish(topic, [make_event("strategies/one", n) for n in range(10)])
    failing = Recorder(fail_on=5)
    subscription = await bus.bus.subscribe([topic], "g", failing)
    await eventually(_stopped(subscription), what="the failing subscription to stop")
    assert isinstance(subscription.failure, RuntimeError)
    with pytest.raises(RuntimeError, match="handler failed on 5"):
        await subscription.wait()
    assert failing.numbers() == [0, 1, 2, 3, 4]

    # 0..4 were committed, 5 was not: the next subscriber starts exactly at 5.
    nxt = Recorder()
    await bus.bus.subscribe([topic], "g", nxt)
    await eventually(nxt.has(5), what="redelivery")
    assert nxt.numbers() == [5, 6, 7, 8, 9]


async def test_stop_mid_batch_finishes_the_handler_in_flight_and_hands_over_the_rest(
    bus: BusUnderTest,
) -> None:
    topic = bus.topic("a")
    await bus.bus.publish(topic, [make_event("strategies/one", n) for n in range(8)])
    gate, reached = asyncio.Event(), asyncio.Event()
    got: list[int] = []

    async def slow(delivery: Delivery) -> None:
        if number(delivery.event) == 3:
            reached.set()
            await gate.wait()
        got.append(number(delivery.event))

    subscription = await bus.bus.subscribe([topic], "g", slow)
    await asyncio.wait_for(reached.wait(), 30)
    stopping = asyncio.create_task(subscription.stop())
    gate.set()
    await asyncio.wait_for(stopping, 30)
    assert got == [0, 1, 2, 3]
    assert subscription.failure is None
    await subscription.wait()

    nxt = Recorder()
    await bus.bus.subscribe([topic], "g", nxt)
    await eventually(nxt.has(4), what="the rest")
    assert nxt.numbers() == [4, 5, 6, 7]


async def test_a_group_member_that_stops_hands_its_partitions_to_the_other(
    bus: BusUnderTest,
) -> None:
    topic = bus.topic("a")
    first, second = Recorder(), Recorder()
    one = await bus.bus.subscribe([topic], "g", first)
    await bus.bus.subscribe([topic], "g", second)
    await bus.bus.publish(topic, [make_event(f"nodes/n{n % 6}", n) for n in range(30)])

    async def all_handled() -> bool:
        return len({*first.numbers(), *second.numbers()}) == 30

    await eventually(all_handled, what="30 events across the group", within=30)
    await one.stop()
    before = len(second.got)
    await bus.bus.publish(topic, [make_event(f"nodes/n{n % 6}", n) for n in range(30, 60)])
    await eventually(second.has(before + 30), what="the survivor to take over", within=30)
    assert set(second.numbers()[before:]) == set(range(30, 60))


# --- dedupe -------------------------------------------------------------------------------


async def test_deduplicated_handler_applies_a_republished_event_once(bus: BusUnderTest) -> None:
    topic = bus.topic("a")
    effects: list[int] = []
    raw = Recorder()

    async def effect(delivery: Delivery) -> None:
        effects.append(number(delivery.event))

    deduper = Deduper(capacity=100)
    dedupe_effect = deduplicated(effect, deduper)

    async def both(delivery: Delivery) -> None:
        await raw(delivery)
        await dedupe_effect(delivery)

    await bus.bus.subscribe([topic], "g", both)
    once = make_event("strategies/one", 1)
    # A publish retried after a lost acknowledgement sends the same event (same id) again.
    await bus.bus.publish(topic, [once, make_event("strategies/one", 2)])
    await bus.bus.publish(topic, [once])
    await eventually(raw.has(3), what="3 deliveries")
    assert raw.numbers() == [1, 2, 1]
    assert effects == [1, 2]
    assert len(deduper) == 2


def test_deduper_forgets_the_least_recently_seen_beyond_its_capacity() -> None:
    deduper = Deduper(capacity=2)
    for event_id in ("a", "b"):
        deduper.mark(event_id)
    assert deduper.seen("a")  # "a" is now the most recent, "b" the oldest
    deduper.mark("c")
    assert deduper.seen("a")
    assert deduper.seen("c")
    assert not deduper.seen("b")
    with pytest.raises(EventBusError) as caught:
        Deduper(capacity=0)
    assert caught.value.field == "capacity"
    assert not caught.value.retryable


async def test_deduplicated_handler_that_raised_runs_again_on_redelivery() -> None:
    deduper = Deduper()
    calls: list[str] = []

    async def flaky(delivery: Delivery) -> None:
        calls.append(delivery.event.id)
        if len(calls) == 1:
            raise RuntimeError("effect failed")

    handler = deduplicated(flaky, deduper)
    delivery = Delivery(make_event("s/x", 1, event_id="e1"), "t", 0, 0)
    with pytest.raises(RuntimeError):
        await handler(delivery)
    await handler(delivery)
    await handler(delivery)
    assert calls == ["e1", "e1"]


# --- dead letters -------------------------------------------------------------------------


async def test_undecodable_records_go_to_the_dead_letter_topic_and_never_block(
    bus: BusUnderTest,
) -> None:
    topic = bus.topic("a")
    key = b"strategies/one"  # same key, same partition: the good event sits behind the bad
    good = make_event("strategies/one", 7)
    wrong_type = WireRecord(
        key,
        good.SerializeToString(),
        ((HEADER_CONTENT_TYPE, CONTENT_TYPE.encode()), (HEADER_MESSAGE_TYPE, b"qmtl.Other")),
    )
    bad = [
        WireRecord(key, b"\xff\xff\xff", ()),
        WireRecord(key, b"", ()),  # parses, but an Event without id or type
        WireRecord(key, None, ()),  # a tombstone
        wrong_type,
    ]
    await bus.publish_raw(topic, [*bad, encode(good)])
    recorder = Recorder()
    subscription = await bus.bus.subscribe([topic], "g", recorder)
    await eventually(recorder.has(1), what="the good event behind the bad ones")
    assert recorder.numbers() == [7]
    assert subscription.running
    assert subscription.failure is None

    letters = await bus.dead_letters(topic, 4)
    assert [letter.value for letter in letters] == [
        b"\xff\xff\xff",
        b"",
        None,
        good.SerializeToString(),
    ]
    partition = recorder.got[0].partition
    for offset, letter in enumerate(letters):
        headers = dict(letter.headers)
        assert letter.key == key
        assert headers[HEADER_DLQ_TOPIC] == topic.encode()
        assert headers[HEADER_DLQ_PARTITION] == str(partition).encode()
        assert headers[HEADER_DLQ_OFFSET] == str(offset).encode()
        assert headers[HEADER_DLQ_GROUP] == b"g"
        assert headers[HEADER_DLQ_REASON]
    assert b"qmtl.Other" in dict(letters[3].headers)[HEADER_DLQ_REASON]
    assert dict(letters[3].headers)[HEADER_MESSAGE_TYPE] == b"qmtl.Other"  # originals kept

    # Committed past them: the group's next subscriber gets only what is new.
    await subscription.stop()
    nxt = Recorder()
    await bus.bus.subscribe([topic], "g", nxt)
    await bus.bus.publish(topic, [make_event("strategies/one", 8)])
    await eventually(nxt.has(1), what="the next event")
    assert nxt.numbers() == [8]
    assert len(await bus.all_dead_letters(topic)) == 4


# --- refusals -----------------------------------------------------------------------------


async def test_events_without_id_type_or_subject_are_refused_and_nothing_is_sent(
    bus: BusUnderTest,
) -> None:
    topic = bus.topic("a")
    recorder = Recorder()
    await bus.bus.subscribe([topic], "g", recorder)
    for name in ("id", "type", "subject"):
        broken = make_event("strategies/one", 0)
        broken.ClearField(name)
        with pytest.raises(InvalidEventError) as caught:
            await bus.bus.publish(topic, [make_event("strategies/one", 1), broken])
        assert caught.value.field == f"events[1].{name}"
        assert not caught.value.retryable
        assert caught.value.code == "E_VALIDATION"
    await bus.bus.publish(topic, [make_event("strategies/one", 2)])
    await eventually(recorder.has(1), what="the valid event")
    assert recorder.numbers() == [2]


async def test_dead_letter_topics_are_not_for_publishing_or_subscribing(bus: BusUnderTest) -> None:
    dlq = dead_letter_topic(bus.topic("a"))
    with pytest.raises(InvalidEventError):
        await bus.bus.publish(dlq, [make_event("strategies/one", 1)])
    with pytest.raises(EventBusError) as caught:
        await bus.bus.subscribe([bus.topic("a"), dlq], "g", Recorder())
    assert caught.value.field == "topics[1]"
    assert not caught.value.retryable
    with pytest.raises(EventBusError) as no_group:
        await bus.bus.subscribe([bus.topic("a")], "", Recorder())
    assert no_group.value.field == "group"


async def test_a_closed_bus_refuses_to_publish(bus: BusUnderTest) -> None:
    await bus.bus.aclose()
    with pytest.raises(EventBusError) as caught:
        await bus.bus.publish(bus.topic("a"), [make_event("strategies/one", 1)])
    assert not caught.value.retryable


def _stopped(subscription: Subscription) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return not subscription.running

    return check
