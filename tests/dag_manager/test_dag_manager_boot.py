"""The DAG Manager's boot check of the graph schema, against the real Neo4j.

Each test gets labels and schema names of its own (`GraphNames(prefix)`) and drops exactly
those afterwards, as tests/integration/test_neo4j_migrations.py does.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from collections.abc import AsyncIterator
from typing import cast

import pytest
from neo4j import AsyncDriver, AsyncGraphDatabase

from qmtl.common.v1 import health_pb2
from qmtl.runtime.endpoints import ServiceEndpoints
from qmtl.runtime.graph_migrations import (
    MIGRATIONS,
    GraphNames,
    drop_prefixed_graph,
    run_migrations,
)
from qmtl.runtime.graph_migrations.steps import TAG_INDEX_VERSION
from qmtl.services.dag_manager.boot import COMPONENT, check_graph_schema
from tests.contract.graphstore_neo4j import DATABASE, open_driver

LOGGER = "qmtl.test.dag_manager.boot"
TAG_INDEX = next(m.name for m in MIGRATIONS if m.version == TAG_INDEX_VERSION)


@pytest.fixture
async def driver() -> AsyncIterator[AsyncDriver]:
    driver = await open_driver()
    yield driver
    await driver.close()


@pytest.fixture
async def names(driver: AsyncDriver) -> AsyncIterator[GraphNames]:
    names = GraphNames(f"B{uuid.uuid4().hex[:12]}")
    yield names
    await drop_prefixed_graph(driver, names, database=DATABASE)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


async def test_unmigrated_graph_is_degraded_with_one_warning_naming_the_command(
    driver: AsyncDriver,
    names: GraphNames,
    endpoints: ServiceEndpoints,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    result = await check_graph_schema(
        driver, names=names, uri=endpoints.neo4j_uri, logger=logging.getLogger(LOGGER)
    )

    command = f"qmtl migrate --uri {endpoints.neo4j_uri} --label-prefix {names.prefix}"
    assert not result.ok
    assert result.command == command
    assert "migrations pending" in result.reason
    [warning] = _warnings(caplog)
    assert command in warning
    assert result.component.name == COMPONENT
    assert result.component.state == health_pb2.HEALTH_STATE_DEGRADED
    assert result.component.adapter == "neo4j"
    assert command in result.component.detail
    assert result.component.checked_at.seconds > 0
    health = result.service_health()
    assert health.service == "dag-manager"
    assert health.state == health_pb2.HEALTH_STATE_DEGRADED
    assert health.ready  # keeps serving, slower
    assert [c.name for c in health.components] == [COMPONENT]


async def test_migrated_graph_is_healthy_without_a_warning(
    driver: AsyncDriver, names: GraphNames, caplog: pytest.LogCaptureFixture
) -> None:
    await run_migrations(driver, names=names)
    caplog.set_level(logging.DEBUG, logger=LOGGER)

    result = await check_graph_schema(driver, names=names, logger=logging.getLogger(LOGGER))

    assert result.ok
    assert (result.reason, result.command, result.component.detail) == ("", "", "")
    assert result.state == health_pb2.HEALTH_STATE_OK
    assert result.service_health().state == health_pb2.HEALTH_STATE_OK
    assert _warnings(caplog) == []


async def test_dropped_tag_index_is_degraded_naming_it(
    driver: AsyncDriver,
    names: GraphNames,
    endpoints: ServiceEndpoints,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await run_migrations(driver, names=names)
    tag_index = names.schema(TAG_INDEX)
    await driver.execute_query(f"DROP CONSTRAINT {tag_index}", database_=DATABASE)
    caplog.set_level(logging.WARNING, logger=LOGGER)

    result = await check_graph_schema(
        driver, names=names, uri=endpoints.neo4j_uri, logger=logging.getLogger(LOGGER)
    )

    assert not result.ok
    assert result.state == health_pb2.HEALTH_STATE_DEGRADED
    assert f"{tag_index} is MISSING" in result.reason
    [warning] = _warnings(caplog)
    assert tag_index in warning
    assert "qmtl migrate --uri" in warning
    assert tag_index in result.component.detail


async def test_the_command_the_warning_names_brings_a_dropped_tag_index_back(
    driver: AsyncDriver, names: GraphNames
) -> None:
    # `qmtl migrate` is run_migrations; with TAG index's version recorded, it used to skip it
    # ("already at head"), so the command the warning names changed nothing.
    await run_migrations(driver, names=names)
    await driver.execute_query(f"DROP CONSTRAINT {names.schema(TAG_INDEX)}", database_=DATABASE)
    assert not (await check_graph_schema(driver, names=names)).ok

    report = await run_migrations(driver, names=names)

    assert [m.version for m in report.applied] == [TAG_INDEX_VERSION]
    assert (await check_graph_schema(driver, names=names)).ok


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_unreachable_neo4j_is_degraded_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    driver = AsyncGraphDatabase.driver(
        f"bolt://127.0.0.1:{_closed_port()}", auth=("neo4j", "x"), connection_timeout=2.0
    )
    caplog.set_level(logging.WARNING, logger=LOGGER)
    try:
        result = await check_graph_schema(driver, logger=logging.getLogger(LOGGER))
    finally:
        await driver.close()

    assert not result.ok
    assert result.state == health_pb2.HEALTH_STATE_DEGRADED
    assert "Neo4j unreachable" in result.reason
    assert result.command == ""
    [warning] = _warnings(caplog)
    assert "Neo4j unreachable" in warning
    assert result.component.detail == result.reason


class _HangingDriver:
    """A driver whose sessions never answer, like a Neo4j that accepts and then stalls."""

    def session(self, **_: object) -> _HangingDriver:
        return self

    async def __aenter__(self) -> _HangingDriver:
        await asyncio.Event().wait()  # never set: only the check's timeout ends this
        return self

    async def __aexit__(self, *_: object) -> None:
        return None


class _BrokenDriver(_HangingDriver):
    async def __aenter__(self) -> _HangingDriver:
        raise TypeError("a bug, not an outage")


async def test_stalled_neo4j_is_degraded_after_the_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    result = await check_graph_schema(
        cast(AsyncDriver, _HangingDriver()), logger=logging.getLogger(LOGGER), timeout_s=0.05
    )
    assert result.state == health_pb2.HEALTH_STATE_DEGRADED
    assert result.reason == "Neo4j did not answer the schema check within 0.05 s"
    assert len(_warnings(caplog)) == 1


async def test_a_bug_is_not_reported_as_an_outage() -> None:
    with pytest.raises(TypeError, match="a bug"):
        await check_graph_schema(cast(AsyncDriver, _BrokenDriver()))
