"""A small world for the GC tests: graph store, topic admin and relayed events on one clock.

`GcWorld.add` writes a node and creates its topic the way the diff would (topic_spec_for), so
a test only says what kind of node it wants and who uses it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from qmtl.events.v1 import queue_events_pb2
from qmtl.runtime.graphstore import GraphChanges, GraphStore, InMemoryGraphStore, StrategyRefs
from qmtl.runtime.topicadmin import InMemoryTopicAdmin, topic_spec_for
from qmtl.services.dag_manager.gc import GarbageCollector
from tests.contract.graphstore_support import ManualClock, node

from .outbox_support import RelayedEvents

DAY = 24 * 60 * 60.0


@dataclass
class GcWorld:
    store: GraphStore
    topics: InMemoryTopicAdmin
    events: RelayedEvents
    clock: ManualClock
    gc: GarbageCollector

    async def add(
        self,
        name: str,
        *,
        node_type: str = "Node",
        tags: tuple[str, ...] = ("btc",),
        interval: int = 60,
        strategy: str | None = None,
    ) -> str:
        """Writes node `name` (an orphan from now on unless `strategy` uses it); its topic."""
        topic = f"btc_{node_type}_{name}_v1"
        write = replace(node(name, tags=tags, interval=interval, topic=topic), node_type=node_type)
        refs = StrategyRefs(strategy, (write.node_id,)) if strategy else None
        await self.store.apply(GraphChanges(nodes=(write,), refs=refs))
        await self.topics.ensure_topics([topic_spec_for(topic, node_type)])
        return topic

    async def in_store(self, topic: str) -> bool:
        name = topic.split("_")[2]
        return f"blake3:{name}" in await self.store.get_nodes([f"blake3:{name}"])

    async def in_broker(self, topic: str) -> bool:
        return topic in await self.topics.list_topics()

    def lifecycles(self) -> list[queue_events_pb2.QueueLifecycle]:
        return [e.queue_lifecycle for e in self.events.events]


def make_world(
    *, clock: ManualClock | None = None, store: GraphStore | None = None, **gc_options: Any
) -> GcWorld:
    """A world on in-memory adapters (or on `store`, made with the same `clock`);
    `gc_options` go to the GarbageCollector."""
    clock = clock or ManualClock()
    store = store or InMemoryGraphStore(clock=clock)
    topics, events = InMemoryTopicAdmin(), RelayedEvents(store)
    gc = GarbageCollector(store, topics, events, clock=clock, **gc_options)
    return GcWorld(store, topics, events, clock, gc)
