"""Neo4j graphs of their own for tests: fresh labels, the real migrations, dropped after.

Community Neo4j has one database shared by every test (and every engineer running tests at the
same time), so a graph is a `GraphNames(f"T{uuid}")` prefix, migrated with the real
`run_migrations`, and afterwards exactly that prefix's nodes and schema objects are deleted.
Migrating takes ~3 s (ten schema objects), so a suite shares one prefix per session
(`SharedGraph`) and deletes its data, not its schema, after each test; `migrated_graph` gives
one caller a prefix of its own.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
from neo4j import AsyncDriver, AsyncGraphDatabase
from neo4j.exceptions import ServiceUnavailable

from qmtl.runtime.endpoints import ServiceEndpoints
from qmtl.runtime.graph_migrations import GraphNames, drop_prefixed_graph, run_migrations

DATABASE = "neo4j"


async def open_driver() -> AsyncDriver:
    endpoints = ServiceEndpoints.from_env()
    driver = AsyncGraphDatabase.driver(
        endpoints.neo4j_uri,
        auth=(endpoints.neo4j_user, endpoints.neo4j_password),
        notifications_min_severity="OFF",
    )
    try:
        await driver.verify_connectivity()
    except ServiceUnavailable as exc:
        await driver.close()
        pytest.fail(
            f"Neo4j is not reachable at {endpoints.neo4j_uri} ({exc}); start it with "
            "`make services-up` or `scripts/services/neo4j.sh start`"
        )
    return driver


async def wipe_data(driver: AsyncDriver, names: GraphNames) -> None:
    """Deletes the graph store's nodes of the prefix; the schema and migration records stay."""
    for label in names.data_labels:
        await driver.execute_query(f"MATCH (n:{label}) DETACH DELETE n", database_=DATABASE)


async def drop_graph(driver: AsyncDriver, names: GraphNames) -> None:
    """Deletes the prefix's nodes, constraints and indexes, and nothing else."""
    await drop_prefixed_graph(driver, names, database=DATABASE)


@asynccontextmanager
async def migrated_graph() -> AsyncIterator[tuple[AsyncDriver, GraphNames]]:
    driver = await open_driver()
    names = GraphNames(f"T{uuid.uuid4().hex[:12]}")
    try:
        await run_migrations(driver, names=names)
        yield driver, names
    finally:
        await drop_graph(driver, names)
        await driver.close()


class SharedGraph:
    """One migrated prefix for a whole session, migrated on first use (tests of the in-memory
    adapter never touch Neo4j). Each `use()` opens a driver on the current event loop and
    wipes the data when the test is done."""

    def __init__(self) -> None:
        self.names = GraphNames(f"T{uuid.uuid4().hex[:12]}")
        self.migrated = False

    @asynccontextmanager
    async def use(self) -> AsyncIterator[AsyncDriver]:
        driver = await open_driver()
        try:
            if not self.migrated:
                await run_migrations(driver, names=self.names)
                self.migrated = True
            yield driver
        finally:
            await wipe_data(driver, self.names)
            await driver.close()

    async def drop(self) -> None:
        driver = await open_driver()
        try:
            await drop_graph(driver, self.names)
        finally:
            await driver.close()


@pytest.fixture(scope="session")
def shared_graph() -> Iterator[SharedGraph]:
    shared = SharedGraph()
    yield shared
    if shared.migrated:
        # Session teardown runs outside every test's event loop.
        asyncio.run(shared.drop())
