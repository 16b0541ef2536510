"""A small global DAG for the migration tests: ComputeNodes with tags and intervals, their Queues.

Nodes are written in the pre-migration shape (tags only as the `tags` list property, as qmtl
stores them), so the tag backfill has data to convert. Everything carries the labels of the
test's `GraphNames`, so a test only ever touches what it made.
"""

from __future__ import annotations

import hashlib
from typing import Any

from neo4j import AsyncDriver

from qmtl.runtime.graph_migrations import GraphNames
from tests.contract.graphstore_neo4j import DATABASE

SAMPLE_NODES = 300
TAG_POOL = ("price", "volume", "btc", "eth", "spot", "perp", "1m", "features", "signal", "risk")
INTERVALS = (0, 60, 300, 3600)


def sample_rows(count: int = SAMPLE_NODES) -> list[dict[str, Any]]:
    rows = []
    for i in range(count):
        # 0..3 tags, some duplicates across nodes, one node in ten untagged (tags missing).
        tags = [TAG_POOL[(i * k) % len(TAG_POOL)] for k in (1, 3, 7)][: i % 4]
        node_id = "blake3:" + hashlib.sha256(f"sample-{i}".encode()).hexdigest()
        rows.append(
            {
                "node_id": node_id,
                "node_type": "Indicator" if i % 3 else "StreamInput",
                "interval": INTERVALS[i % len(INTERVALS)],
                "tags": sorted(set(tags)) if i % 10 else None,
                "topic": f"sample.{i:04d}.{node_id[7:15]}",
            }
        )
    return rows


def expected_tagged_pairs(rows: list[dict[str, Any]]) -> int:
    return sum(len(r["tags"]) for r in rows if r["tags"])


async def load_sample(driver: AsyncDriver, names: GraphNames, rows: list[dict[str, Any]]) -> None:
    await driver.execute_query(
        f"UNWIND $rows AS r CREATE (c:{names.compute_node} {{node_id: r.node_id, "
        "node_type: r.node_type, interval: r.interval}) "
        "FOREACH (_ IN CASE WHEN r.tags IS NULL THEN [] ELSE [1] END | SET c.tags = r.tags) "
        f"CREATE (c)-[:EMITS]->(:{names.queue} {{topic: r.topic, interval: r.interval}})",
        rows=rows,
        database_=DATABASE,
    )
