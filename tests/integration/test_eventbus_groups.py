"""Operating consumer groups on the real broker (docs/operations/kafka.md): lag, replay by
resetting a group's offsets (refused while the group has a live member), and a consumer whose
dead-letter topic is missing stops rather than skip a record it could not put aside."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from qmtl.runtime.endpoints import ServiceEndpoints
from qmtl.runtime.eventbus import Delivery, EventBusError, WireRecord
from qmtl.runtime.eventbus.kafka import KafkaEventBus
from qmtl.runtime.eventbus.kafka_groups import group_lag, main, reset_group
from tests.contract.eventbus_support import CONTRACT_KAFKA_SETTINGS, make_event, number
from tests.eventbus_kafka import (
    TopicPrefix,
    create_topics,
    delete_topics_with_prefix,
    kafka_admin,
    private_topics,
    produce_raw,
)
from tests.polling import eventually


async def test_lag_and_replay_by_reset(
    endpoints: ServiceEndpoints, capsys: pytest.CaptureFixture[str]
) -> None:
    bootstrap = endpoints.kafka_bootstrap
    prefix = TopicPrefix.fresh("groups")
    topic, group = prefix("events"), prefix("group")
    async with private_topics(bootstrap, ["events"], prefix=prefix, partitions=3):
        bus = await KafkaEventBus.connect(bootstrap, settings=CONTRACT_KAFKA_SETTINGS)
        try:
            got: list[int] = []

            async def record(delivery: Delivery) -> None:
                got.append(number(delivery.event))

            await bus.publish(topic, [make_event(f"nodes/n{n % 5}", n) for n in range(20)])
            subscription = await bus.subscribe([topic], group, record)

            async def has(count: int) -> bool:
                return len(got) >= count

            await eventually(lambda: has(20), what="20 deliveries")

            with pytest.raises(EventBusError) as refused:  # a live member: no reset
                await reset_group(bootstrap, group, [topic], to="earliest")
            assert not refused.value.retryable
            await subscription.stop()

            assert sum(row.lag for row in await group_lag(bootstrap, group, [topic])) == 0
            await bus.publish(topic, [make_event(f"nodes/n{n % 5}", n) for n in range(20, 25)])
            lags = await group_lag(bootstrap, group, [topic])
            assert sum(row.lag for row in lags) == 5
            assert sum(row.end for row in lags) == 25
            cli = ["--bootstrap", bootstrap, "lag", group, topic]
            assert await asyncio.to_thread(main, cli) == 0  # the CLI runs its own loop
            assert "total lag 5" in capsys.readouterr().out

            targets = await reset_group(bootstrap, group, [topic], to="earliest")
            assert sorted(targets.values()) == [0, 0, 0]
            assert sum(row.lag for row in await group_lag(bootstrap, group, [topic])) == 25

            got.clear()
            await bus.subscribe([topic], group, record)
            await eventually(lambda: has(25), what="the replay")
            assert sorted(got) == list(range(25))
        finally:
            await bus.aclose()


async def test_a_consumer_without_its_dead_letter_topic_stops_without_committing_past(
    endpoints: ServiceEndpoints,
) -> None:
    bootstrap = endpoints.kafka_bootstrap
    prefix = TopicPrefix.fresh("nodlq")
    topic, group = prefix("events"), prefix("group")
    async with kafka_admin(bootstrap) as admin:
        await create_topics(admin, [topic], partitions=1, with_dlq=False)
        # A short request timeout: finding the topic missing takes one.
        quick = dataclasses.replace(CONTRACT_KAFKA_SETTINGS, request_timeout_ms=2_000)
        bus = await KafkaEventBus.connect(bootstrap, settings=quick)
        try:
            await bus.publish(topic, [make_event("nodes/n", 0)])
            await produce_raw(bootstrap, topic, [WireRecord(b"nodes/n", b"\xff\xff", ())])
            await bus.publish(topic, [make_event("nodes/n", 2)])
            got: list[int] = []

            async def record(delivery: Delivery) -> None:
                got.append(number(delivery.event))

            subscription = await bus.subscribe([topic], group, record)

            async def stopped() -> bool:
                return not subscription.running

            await eventually(stopped, what="the subscription to stop")
            failure = subscription.failure
            assert isinstance(failure, EventBusError)
            assert failure.code == "E_NOT_FOUND"
            assert got == [0]
            (row,) = await group_lag(bootstrap, group, [topic])
            assert row.committed == 1  # past the good record, not past the bad one
        finally:
            await bus.aclose()
            await delete_topics_with_prefix(admin, prefix.prefix)
