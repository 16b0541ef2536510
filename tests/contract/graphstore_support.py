"""The graph stores under contract and small builders for their inputs.

Adding an adapter to the suite is one entry in `GRAPH_ADAPTERS` plus its branch in
`open_graph_store`. The Neo4j one gives each test its own label prefix on the real server,
migrated and dropped afterwards (graphstore_neo4j.py); a Neo4j that does not answer fails
the test, never skips it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from qmtl.runtime.graphstore import GraphStore, InMemoryGraphStore, NodeWrite
from qmtl.runtime.graphstore.neo4j import Neo4jGraphStore

from .graphstore_neo4j import DATABASE, SharedGraph, migrated_graph

GRAPH_ADAPTERS = ["memory", "neo4j"]


class ManualClock:
    """Epoch seconds that move only when `advance` is called."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@asynccontextmanager
async def open_graph_store(
    adapter: str, clock: ManualClock, shared: SharedGraph | None = None
) -> AsyncIterator[GraphStore]:
    """`shared`: for Neo4j, the session's migrated prefix (fast); without it, a prefix of its
    own, migrated and dropped around this one store."""
    if adapter == "memory":
        store = InMemoryGraphStore(clock=clock)
        try:
            yield store
        finally:
            await store.aclose()
    elif adapter == "neo4j" and shared is not None:
        async with shared.use() as driver:
            graph = Neo4jGraphStore(driver, names=shared.names, clock=clock, database=DATABASE)
            try:
                yield graph
            finally:
                await graph.aclose()
    elif adapter == "neo4j":
        async with migrated_graph() as (driver, names):
            graph = Neo4jGraphStore(driver, names=names, clock=clock, database=DATABASE)
            try:
                yield graph
            finally:
                await graph.aclose()
    else:
        raise AssertionError(f"no graph store adapter {adapter!r}")


def node(
    name: str,
    *,
    tags: tuple[str, ...] = (),
    interval: int = 60,
    deps: tuple[str, ...] = (),
    topic: str | None = None,
) -> NodeWrite:
    """A node whose id and default topic derive from `name` (ids are opaque to the store)."""
    return NodeWrite(
        node_id=f"blake3:{name}",
        node_type="Node",
        topic=topic or f"asset_Node_{name}_v1",
        interval=interval,
        period=5,
        tags=tags,
        dependencies=tuple(f"blake3:{d}" for d in deps),
        code_hash="code",
        schema_compat_id="compat-v1",
    )
