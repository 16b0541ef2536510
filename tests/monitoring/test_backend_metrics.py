"""The backend choke points bump their metrics on the real servers: a Neo4j transaction
(graphstore.neo4j_tx.transact) is timed by mode and outcome, and an event publish through the
Kafka event bus is counted, or counted as failed, by topic."""

from __future__ import annotations

import time

import pytest
from neo4j import AsyncTransaction

from qmtl.runtime import metrics
from qmtl.runtime.boot import Recovery, restarted_event
from qmtl.runtime.endpoints import ServiceEndpoints
from qmtl.runtime.eventbus.errors import EventBusError
from qmtl.runtime.eventbus.kafka import KafkaEventBus
from qmtl.runtime.graphstore.errors import GraphStoreError
from qmtl.runtime.graphstore.neo4j_tx import RetryPolicy, run, transact
from tests.contract.graphstore_neo4j import open_driver
from tests.eventbus_kafka import TopicPrefix, private_topics


def sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


async def test_neo4j_transactions_are_timed_by_mode_and_outcome() -> None:
    driver = await open_driver()
    read_ok = {"mode": "read", "outcome": "ok"}
    write_error = {"mode": "write", "outcome": "error"}
    count = "qmtl_neo4j_transaction_duration_seconds_count"
    before_ok, before_error = sample(count, **read_ok), sample(count, **write_error)

    async def one(tx: AsyncTransaction) -> list[dict[str, object]]:
        return await run(tx, "RETURN 1 AS one")

    async def bad(tx: AsyncTransaction) -> list[dict[str, object]]:
        return await run(tx, "THIS IS NOT CYPHER")

    try:
        assert await transact(driver, one, database=None, retry=RetryPolicy(), write=False) == [
            {"one": 1}
        ]
        with pytest.raises(GraphStoreError):
            await transact(driver, bad, database=None, retry=RetryPolicy())
    finally:
        await driver.close()
    assert sample(count, **read_ok) == before_ok + 1
    assert sample(count, **write_error) == before_error + 1


async def test_event_publishes_are_counted_by_topic_and_failures_apart(
    endpoints: ServiceEndpoints,
) -> None:
    prefix = TopicPrefix.fresh("metrics")
    event = restarted_event("metrics-test", "i-1", Recovery(), started_at=time.time(), source="t")
    missing = prefix("missing")
    async with private_topics(
        endpoints.kafka_bootstrap, ["events"], prefix=prefix, partitions=1
    ) as created:
        topic = created[0]
        published = sample("qmtl_events_published_total", topic=topic)
        failed = sample("qmtl_event_publish_failures_total", topic=missing)
        bus = await KafkaEventBus.connect(endpoints.kafka_bootstrap)
        try:
            await bus.publish(topic, [event, event])
            with pytest.raises(EventBusError):
                await bus.publish(missing, [event])
        finally:
            await bus.aclose()
    assert sample("qmtl_events_published_total", topic=topic) == published + 2
    assert sample("qmtl_event_publish_failures_total", topic=missing) == failed + 1
    assert sample("qmtl_events_published_total", topic=missing) == 0
