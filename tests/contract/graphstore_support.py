"""The graph stores under contract and small builders for their inputs.

Adding an adapter to the suite is one entry in `GRAPH_ADAPTERS` plus its branch in
`open_graph_store` (the Neo4j one will give each test its own label prefix, see
qmtl.runtime.graph_migrations.steps.GraphNames, and delete its nodes afterwards).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from qmtl.runtime.graphstore import GraphStore, InMemoryGraphStore, NodeWrite

GRAPH_ADAPTERS = ["memory"]


class ManualClock:
    """Epoch seconds that move only when `advance` is called."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@asynccontextmanager
async def open_graph_store(adapter: str, clock: ManualClock) -> AsyncIterator[GraphStore]:
    if adapter == "memory":
        store = InMemoryGraphStore(clock=clock)
    else:
        raise AssertionError(f"no graph store adapter {adapter!r}")
    try:
        yield store
    finally:
        await store.aclose()


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
