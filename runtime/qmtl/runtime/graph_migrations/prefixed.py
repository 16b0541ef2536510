"""Removing a prefixed graph: every node under one `GraphNames` prefix's labels and every
schema object of that prefix. Tests, benchmarks and side-by-side trials run the real
migrations on labels of their own (Community Neo4j has one database) and remove exactly those
afterwards; the unprefixed production graph is refused."""

from __future__ import annotations

from neo4j import AsyncDriver

from .steps import GraphNames

# Nodes deleted per inner transaction, so a 100k-node graph is removed within memory.
DELETE_BATCH = 10_000


class UnprefixedGraph(Exception):
    """Asked to drop the production (unprefixed) graph."""


async def drop_prefixed_graph(
    driver: AsyncDriver, names: GraphNames, *, database: str | None = None
) -> None:
    if not names.prefix:
        raise UnprefixedGraph("refusing to drop the unprefixed graph")
    # CALL { ... } IN TRANSACTIONS runs only in an auto-commit transaction (session.run).
    async with driver.session(database=database, notifications_min_severity="OFF") as session:
        for label in (*names.data_labels, names.migration, names.lock):
            result = await session.run(
                f"MATCH (n:{label}) CALL {{ WITH n DETACH DELETE n }} "
                f"IN TRANSACTIONS OF {DELETE_BATCH} ROWS"
            )
            await result.consume()
        # Constraints first: dropping one also drops the index that backs it.
        for kind, plural in (("CONSTRAINT", "CONSTRAINTS"), ("INDEX", "INDEXES")):
            result = await session.run(
                f"SHOW {plural} YIELD name WHERE name STARTS WITH $p RETURN name",
                p=names.schema(""),
            )
            for name in [record["name"] async for record in result]:
                dropped = await session.run(f"DROP {kind} {name} IF EXISTS")
                await dropped.consume()
