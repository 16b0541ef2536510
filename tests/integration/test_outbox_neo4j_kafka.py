"""The transactional outbox on the real Neo4j and the real Kafka broker.

- An event written with its state change is relayed (TagQueryService on Neo4j).
- A relay that dies after the broker acked and before its outbox ack: the next relay
  republishes the same Event.id, which a consumer dedupes.
- The issue's required one: a producer process SIGKILLed between the state write and the
  publish; a fresh relay delivers what it wrote to a real Kafka topic.

Each test has its own label prefix (migrated, dropped after) and its own Kafka topics under a
random prefix (deleted after). A server that does not answer fails the test.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from neo4j import AsyncDriver

from qmtl.common.v1 import match_mode_pb2
from qmtl.events.v1 import event_pb2
from qmtl.runtime.endpoints import ServiceEndpoints
from qmtl.runtime.eventbus import DAG_EVENTS, Deduper, InMemoryEventBus, decode
from qmtl.runtime.eventbus.kafka import KafkaEventBus
from qmtl.runtime.graph_migrations import GraphNames
from qmtl.runtime.graphstore import DEFAULT_OUTBOX_PAGE, GraphChanges, OutboxEntry, OutboxMessage
from qmtl.runtime.graphstore.neo4j import Neo4jGraphStore
from qmtl.runtime.outbox import OutboxRelay
from qmtl.services.dag_manager.events import make_event
from qmtl.services.dag_manager.tag_queries import TagQueryService
from tests.contract.graphstore_neo4j import DATABASE, migrated_graph
from tests.contract.graphstore_support import ManualClock, node
from tests.eventbus_kafka import TopicPrefix, private_topics, read_all
from tests.polling import eventually

from .outbox_producer_process import ANSWER_KEY, ORPHAN

REPO = Path(__file__).resolve().parents[2]
PRODUCER = Path(__file__).with_name("outbox_producer_process.py")
ANY = match_mode_pb2.MATCH_MODE_ANY


@dataclass
class Graph:
    driver: AsyncDriver
    names: GraphNames

    def store(self) -> Neo4jGraphStore:
        return Neo4jGraphStore(self.driver, names=self.names, database=DATABASE)


@pytest.fixture
async def graph() -> AsyncIterator[Graph]:
    async with migrated_graph() as (driver, names):
        yield Graph(driver, names)


@pytest.fixture
async def topic(endpoints: ServiceEndpoints) -> AsyncIterator[str]:
    prefix = TopicPrefix.fresh("outbox")
    async with private_topics(endpoints.kafka_bootstrap, ["dag"], prefix=prefix, partitions=1):
        yield prefix("dag")


def decoded(records: Sequence[Any]) -> list[event_pb2.Event]:
    """aiokafka ConsumerRecords, decoded as any consumer of the topic would."""
    return [decode(r.value, tuple(r.headers or ())) for r in records]


async def test_an_event_written_with_its_state_change_is_relayed(graph: Graph) -> None:
    store = Neo4jGraphStore(graph.driver, names=graph.names, clock=ManualClock(), database=DATABASE)
    bus = InMemoryEventBus(partitions=1)
    relay = OutboxRelay(store, bus)
    service = TagQueryService(store, relay)
    await store.apply(GraphChanges(nodes=(node("a", tags=("btc",)),)))

    update = await service.resolve(["btc"], 60, ANY)

    [pending] = await store.outbox_pending()  # committed with the version, not yet sent
    assert pending.topic == DAG_EVENTS
    assert await relay.drain() == 1
    [record] = bus.records(DAG_EVENTS)
    event = decode(record.value, record.headers)
    assert event.id == pending.id
    assert event.queue_updated == update
    assert await store.outbox_pending() == []


async def test_racing_recorders_of_one_new_answer_announce_it_once(graph: Graph) -> None:
    first, second = graph.store(), graph.store()
    written: list[int] = []

    def announce(version: int) -> OutboxMessage:
        event = make_event(
            "queue_updated",
            event_pb2.Event().queue_updated,
            subject="tags/btc/60",
            idempotency_key=f"k:{version}",
        )
        written.append(version)
        return OutboxMessage(event.id, DAG_EVENTS, event.SerializeToString())

    answers = await asyncio.gather(
        *(store.record_answer("q", "e1", announce=announce) for store in (first, second) * 3)
    )

    assert sorted(answers) == [(1, False)] * 5 + [(1, True)]
    [entry] = await first.outbox_pending()  # one bump, one entry (a retried attempt left none)
    assert event_pb2.Event.FromString(entry.payload).idempotency_key == "k:1"
    assert set(written) == {1}


class DiesBeforeAck:
    """The Neo4j store as a relay sees it, in a process that dies right before the ack."""

    def __init__(self, store: Neo4jGraphStore) -> None:
        self.store = store

    async def outbox_pending(self, limit: int = DEFAULT_OUTBOX_PAGE) -> list[OutboxEntry]:
        return await self.store.outbox_pending(limit)

    async def outbox_ack(self, ids: Sequence[str]) -> int:
        raise SystemExit("relay killed after the broker acked")


async def test_a_relay_dying_before_its_ack_republishes_the_same_event_id(
    graph: Graph, topic: str, endpoints: ServiceEndpoints
) -> None:
    store = graph.store()
    event = make_event(
        "queue_updated", event_pb2.Event().queue_updated, subject="tags/x/60", idempotency_key="k"
    )
    message = OutboxMessage(event.id, topic, event.SerializeToString())
    await store.record_answer("q", "e", announce=lambda _: message)
    bus = await KafkaEventBus.connect(endpoints.kafka_bootstrap, client_id="outbox-test")
    try:
        with pytest.raises(SystemExit):
            await OutboxRelay(DiesBeforeAck(store), bus).drain()
        assert [e.id for e in await store.outbox_pending()] == [event.id]
        assert await OutboxRelay(store, bus).drain() == 1  # the next relay
    finally:
        await bus.aclose()

    delivered = decoded(await read_all(endpoints.kafka_bootstrap, topic, expect=2))
    assert [e.id for e in delivered] == [event.id, event.id]
    deduper, effects = Deduper(), list[str]()
    for got in delivered:
        if not deduper.seen(got.id):
            effects.append(got.id)
            deduper.mark(got.id)
    assert effects == [event.id]
    assert await store.outbox_pending() == []


async def test_producer_killed_between_state_write_and_publish_the_relay_delivers_it(
    graph: Graph, topic: str, endpoints: ServiceEndpoints, tmp_path: Path
) -> None:
    ready, log = tmp_path / "ready.json", tmp_path / "producer.log"
    cmd = [
        sys.executable,
        str(PRODUCER),
        f"--prefix={graph.names.prefix}",
        f"--topic={topic}",
        f"--ready={ready}",
    ]
    with log.open("wb") as out:
        producer = await asyncio.create_subprocess_exec(
            *cmd, stdout=out, stderr=subprocess.STDOUT, cwd=REPO
        )
    try:

        async def written() -> bool:
            if producer.returncode is not None:
                raise AssertionError(f"producer exited early:\n{log.read_text()}")
            return ready.exists()

        await eventually(written, what="the producer's state writes", within=60)
        producer.send_signal(signal.SIGKILL)
        assert await asyncio.wait_for(producer.wait(), 30) == -signal.SIGKILL
    finally:
        if producer.returncode is None:
            producer.kill()
            await producer.wait()
    ids = json.loads(ready.read_text())

    store = graph.store()
    # The state changes committed, and their events with them, unsent.
    assert await store.record_answer(ANSWER_KEY, "etag-1") == (1, False)
    assert await store.get_nodes([ORPHAN.node_id]) == {}
    assert [e.id for e in await store.outbox_pending()] == ids

    # A fresh relay (a new instance, as at boot) delivers them to the real broker.
    bus = await KafkaEventBus.connect(endpoints.kafka_bootstrap, client_id="outbox-relay")
    try:
        assert await OutboxRelay(store, bus).drain() == 2
    finally:
        await bus.aclose()
    delivered = decoded(await read_all(endpoints.kafka_bootstrap, topic, expect=2))
    assert [e.id for e in delivered] == ids
    assert [e.WhichOneof("payload") for e in delivered] == ["queue_updated", "queue_lifecycle"]
    assert delivered[0].queue_updated.version == 1
    assert delivered[1].queue_lifecycle.queue == ORPHAN.topic
    assert await store.outbox_pending() == []
