"""A DAG Manager stand-in that changes the graph with its events in the outbox, then hangs.

Run by tests/integration/test_outbox_neo4j_kafka.py: it bumps one tag-query answer and drops
one orphan queue on the real Neo4j (label prefix `--prefix`), each through the GraphStore call
that writes the announcing event into the outbox in the same transaction (the calls
TagQueryService and GarbageCollector make), with the events addressed to the test's private
Kafka topic. It then writes the event ids to `--ready` and waits, never relaying: the test
SIGKILLs it there, between the state write and the publish.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from pathlib import Path

from qmtl.events.v1 import event_pb2, queue_events_pb2
from qmtl.runtime.endpoints import ServiceEndpoints
from qmtl.runtime.graph_migrations import GraphNames
from qmtl.runtime.graphstore import GraphChanges, NodeWrite, OutboxMessage
from qmtl.runtime.graphstore.neo4j import Neo4jGraphStore
from qmtl.services.dag_manager.events import make_event
from qmtl.services.dag_manager.gc.lifecycle import DROP, NOT_ARCHIVED, lifecycle_event

ANSWER_KEY = "btc|60|any"
ORPHAN = NodeWrite(node_id="blake3:orphan", node_type="Node", topic="asset_Node_orphan_v1")


def message(event: event_pb2.Event, topic: str) -> OutboxMessage:
    return OutboxMessage(id=event.id, topic=topic, payload=event.SerializeToString())


async def main(prefix: str, topic: str, ready: Path) -> None:
    endpoints = ServiceEndpoints.from_env()
    store = await Neo4jGraphStore.connect(
        endpoints.neo4j_uri,
        endpoints.neo4j_user,
        endpoints.neo4j_password,
        names=GraphNames(prefix),
        database="neo4j",
    )
    await store.apply(GraphChanges(nodes=(ORPHAN,)))
    written: list[str] = []

    def announce(version: int) -> OutboxMessage:
        update = queue_events_pb2.QueueUpdated(tags=["btc"], interval=60, version=version)
        event = make_event(
            "queue_updated", update, subject="tags/btc/60", idempotency_key=f"qu:{version}"
        )
        written.append(event.id)
        return message(event, topic)

    await store.record_answer(ANSWER_KEY, "etag-1", announce=announce)
    dropped = lifecycle_event(
        topic=ORPHAN.topic,
        gc_tag="indicator",
        interval=0,
        created_at=0.0,
        action=DROP,
        archive_status=NOT_ARCHIVED,
        source="outbox-test",
        correlation_id="",
        clock=lambda: 1.0,
    )
    await store.delete_queues([ORPHAN.topic], announce={ORPHAN.topic: message(dropped, topic)})
    written.append(dropped.id)

    tmp = ready.with_suffix(".tmp")
    tmp.write_text(json.dumps(written))
    os.replace(tmp, ready)  # the test sees the whole list or nothing
    await asyncio.Event().wait()  # the relay would run now; the test kills us first


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--ready", required=True, type=Path)
    args = parser.parse_args()
    asyncio.run(main(args.prefix, args.topic, args.ready))
