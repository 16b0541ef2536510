"""The bench's own Neo4j handling: a graph under a label prefix of its own (set up by the real
migrations, dropped afterwards), a bulk loader, the TAG index dropped and put back, and the
lookups as raw Cypher so that the adapter's query and qmtl's are measured the same way."""

from __future__ import annotations

import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from neo4j import AsyncDriver, AsyncGraphDatabase, RoutingControl

from qmtl.common.v1 import match_mode_pb2
from qmtl.runtime.endpoints import ServiceEndpoints
from qmtl.runtime.graph_migrations import (
    MIGRATIONS,
    GraphNames,
    check_at_head,
    drop_prefixed_graph,
    run_migrations,
)
from qmtl.runtime.graph_migrations.steps import TAG_INDEX_VERSION
from qmtl.runtime.graphstore import NodeWrite
from qmtl.runtime.graphstore.neo4j import _props as node_props
from qmtl.runtime.graphstore.neo4j_cypher import statements

from .workload import Lookup

DATABASE = "neo4j"
BULK_BATCH = 10_000  # nodes per transaction of the bulk load (the store's MAX_BATCH)
_TAG_MIGRATION = next(m for m in MIGRATIONS if m.version == TAG_INDEX_VERSION)


class TagIndexNotRestored(Exception):
    """The bench dropped the TAG index and could not bring it back: run `qmtl migrate`."""


def progress(message: str) -> None:
    print(f"[bench/graph {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def connect(endpoints: ServiceEndpoints) -> AsyncDriver:
    return AsyncGraphDatabase.driver(
        endpoints.neo4j_uri,
        auth=(endpoints.neo4j_user, endpoints.neo4j_password),
        notifications_min_severity="OFF",
    )


async def drop_graph(driver: AsyncDriver, names: GraphNames) -> None:
    """Deletes every node under the bench's labels and every schema object of its prefix."""
    await drop_prefixed_graph(driver, names, database=DATABASE)


@asynccontextmanager
async def bench_graph(driver: AsyncDriver, names: GraphNames) -> AsyncIterator[None]:
    """The prefixed graph at migration head for the duration; dropped afterwards, even after
    a failure or Ctrl-C."""
    await run_migrations(driver, names=names)
    try:
        yield
    finally:
        progress(f"dropping the bench graph (labels {names.prefix}*)")
        await drop_graph(driver, names)


def tag_index_name(names: GraphNames) -> str:
    return names.schema(_TAG_MIGRATION.name)


@asynccontextmanager
async def tag_index_dropped(driver: AsyncDriver, names: GraphNames) -> AsyncIterator[None]:
    """The TAG index (the Tag.name unique constraint) dropped, and recreated on the way out by
    its own migration statement; fails loudly if the graph is not back at head."""
    await driver.execute_query(f"DROP CONSTRAINT {tag_index_name(names)}", database_=DATABASE)
    try:
        yield
    finally:
        await driver.execute_query(_TAG_MIGRATION.cypher(names), database_=DATABASE)
        ok, reason = await check_at_head(driver, names=names)
        if not ok:
            raise TagIndexNotRestored(f"the TAG index did not come back: {reason}")


class LookupQueries:
    """The adapter's lookup and qmtl's, as raw Cypher answering one record of rows (the
    adapter's shape, topic first), so both pay the same client-side decoding."""

    def __init__(self, names: GraphNames) -> None:
        q = statements(names)
        self._indexed = {False: q.lookup_any, True: q.lookup_all}
        # What qmtl ran: membership in the `tags` list property, which no Neo4j 5 index
        # serves, so a scan of every ComputeNode.
        scan = (
            f"MATCH (c:{names.compute_node}) "
            "WHERE {cond} AND ($interval = 0 OR c.interval = $interval) "
            f"MATCH (c)-[:EMITS]->(q:{names.queue}) WITH q, c ORDER BY q.topic "
            "RETURN collect([q.topic, c.node_id, c.interval, c.tags, c.global]) AS rows"
        )
        self._scan = {
            False: scan.format(cond="any(t IN c.tags WHERE t IN $tags)"),
            True: scan.format(cond="all(t IN $tags WHERE t IN c.tags)"),
        }

    def indexed(self, lookup: Lookup) -> str:
        return self._indexed[lookup.match_mode == match_mode_pb2.MATCH_MODE_ALL]

    def list_scan(self, lookup: Lookup) -> str:
        return self._scan[lookup.match_mode == match_mode_pb2.MATCH_MODE_ALL]


async def ping(driver: AsyncDriver) -> None:
    await driver.execute_query("RETURN 1", database_=DATABASE, routing_=RoutingControl.READ)


@dataclass(frozen=True, slots=True)
class RawAnswer:
    topics: list[str]
    # Neo4j's own time for the query (planning from cache, execution, streaming), without
    # the client and the network: the steadier figure when the machine is busy.
    server_s: float


async def run_lookup(driver: AsyncDriver, query: str, lookup: Lookup) -> RawAnswer:
    tags: Sequence[str] = sorted(set(lookup.tags))
    records, summary, _ = await driver.execute_query(
        query,
        tags=list(tags),
        wanted=len(tags),
        interval=lookup.interval,
        database_=DATABASE,
        routing_=RoutingControl.READ,
    )
    server_ms = (summary.result_available_after or 0) + (summary.result_consumed_after or 0)
    rows = records[0]["rows"] if records else []
    return RawAnswer(sorted(str(row[0]) for row in rows), server_ms / 1000.0)


async def bulk_load(
    driver: AsyncDriver,
    names: GraphNames,
    nodes: Sequence[NodeWrite],
    report: Callable[[str], None],
    batch: int = BULK_BATCH,
) -> float:
    """Writes `nodes` (all new, no dependencies) in the adapter's model, as its `apply` would
    (same properties, Queue and EMITS, Tag and TAGGED), but CREATE-only and without apply's
    locking reads; seconds taken. The tag nodes come first, so each batch only matches them."""
    started = time.perf_counter()
    tags = sorted({tag for node in nodes for tag in node.tags})
    await driver.execute_query(
        f"UNWIND $tags AS name MERGE (:{names.tag} {{name: name}})",
        tags=tags,
        database_=DATABASE,
    )
    now = time.time()
    for start in range(0, len(nodes), batch):
        chunk = nodes[start : start + batch]
        rows = [{"props": node_props(n), "topic": n.topic} for n in chunk]
        await driver.execute_query(
            f"UNWIND $rows AS r CREATE (c:{names.compute_node}) SET c = r.props, "
            "c.created_at = $now, c.orphaned_since = $now "
            f"CREATE (c)-[:EMITS]->(:{names.queue} {{topic: r.topic, "
            "interval: r.props.interval, created_at: $now}) "
            f"WITH c UNWIND c.tags AS tag MATCH (t:{names.tag} {{name: tag}}) "
            "CREATE (c)-[:TAGGED]->(t)",
            rows=rows,
            now=now,
            database_=DATABASE,
        )
        done = start + len(chunk)
        rate = done / (time.perf_counter() - started)
        report(f"loaded {done:,}/{len(nodes):,} nodes ({rate:,.0f} nodes/s)")
    return time.perf_counter() - started
