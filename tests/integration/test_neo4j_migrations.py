"""The Neo4j schema migrations on the real server (scripts/migrations/neo4j_index_migration.py).

Community Neo4j has one database shared by every test, so each test runs the real migrations on
labels and schema names of its own (`GraphNames(prefix)`) and drops exactly those afterwards.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from neo4j import AsyncDriver

from qmtl.runtime.endpoints import ServiceEndpoints
from qmtl.runtime.graph_migrations import (
    HEAD_VERSION,
    MIGRATIONS,
    GraphNames,
    UnprefixedGraph,
    check_at_head,
    drop_prefixed_graph,
    migration_status,
    run_migrations,
)
from qmtl.runtime.graph_migrations.runner import _Lease
from qmtl.runtime.graph_migrations.steps import InvalidGraphPrefix
from tests.contract.graphstore_neo4j import open_driver
from tests.integration.neo4j_sample import (
    DATABASE,
    expected_tagged_pairs,
    load_sample,
    sample_rows,
)
from tests.polling import eventually

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "migrations" / "neo4j_index_migration.py"
ALL_VERSIONS = [m.version for m in MIGRATIONS]


@pytest.fixture
async def driver() -> AsyncIterator[AsyncDriver]:
    driver = await open_driver()
    yield driver
    await driver.close()


@pytest.fixture
async def names(driver: AsyncDriver) -> AsyncIterator[GraphNames]:
    names = GraphNames(f"T{uuid.uuid4().hex[:12]}")
    yield names
    await drop_prefixed_graph(driver, names, database=DATABASE)


async def _records(driver: AsyncDriver, names: GraphNames) -> list[dict[str, Any]]:
    records, _, _ = await driver.execute_query(
        f"MATCH (m:{names.migration}) RETURN m.version AS version, "
        "toString(m.applied_at) AS at ORDER BY version",
        database_=DATABASE,
    )
    return [r.data() for r in records]


def _cli(*args: str, prefix: str, endpoints: ServiceEndpoints) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [
            sys.executable,
            str(SCRIPT),
            "--uri",
            endpoints.neo4j_uri,
            "--label-prefix",
            prefix,
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


async def test_apply_on_empty_graph_then_second_run_is_a_no_op(
    driver: AsyncDriver, names: GraphNames
) -> None:
    ok, reason = await check_at_head(driver, names=names)
    assert not ok
    assert "qmtl migrate" in reason

    first = await run_migrations(driver, names=names)
    assert [m.version for m in first.applied] == ALL_VERSIONS
    status = await migration_status(driver, names=names)
    assert status.at_head
    assert [r.version for r in status.applied] == ALL_VERSIONS
    assert {o.state for o in status.objects} == {"ONLINE"}
    assert await check_at_head(driver, names=names) == (True, "")
    before = await _records(driver, names)

    second = await run_migrations(driver, names=names)
    assert second.applied == []
    assert second.already_applied == ALL_VERSIONS
    assert await _records(driver, names) == before  # recorded once, applied_at untouched


async def test_apply_on_sample_dataset_backfills_tags(
    driver: AsyncDriver, names: GraphNames
) -> None:
    rows = sample_rows()
    await load_sample(driver, names, rows)
    await run_migrations(driver, names=names)
    records, _, _ = await driver.execute_query(
        f"MATCH (:{names.compute_node})-[r:TAGGED]->(:{names.tag}) RETURN count(r) AS pairs",
        database_=DATABASE,
    )
    assert records[0]["pairs"] == expected_tagged_pairs(rows) > 0
    # Rerunning the backfill (as a concurrent runner might) must not duplicate tags or edges.
    backfill = next(m for m in MIGRATIONS if m.name == "tag_backfill")
    async with driver.session(database=DATABASE) as session:  # IN TRANSACTIONS: auto-commit
        await (await session.run(backfill.cypher(names))).consume()
    records, _, _ = await driver.execute_query(
        f"MATCH (t:{names.tag}) WITH count(t) AS tags "
        f"MATCH (:{names.compute_node})-[r:TAGGED]->() RETURN tags, count(r) AS pairs",
        database_=DATABASE,
    )
    distinct_tags = {t for r in rows if r["tags"] for t in r["tags"]}
    assert records[0]["tags"] == len(distinct_tags)
    assert records[0]["pairs"] == expected_tagged_pairs(rows)


def _operators(plan: dict[str, Any]) -> list[tuple[str, str]]:
    found = [(str(plan["operatorType"]), str(plan.get("args", {}).get("Details", "")))]
    for child in plan.get("children", []):
        found += _operators(child)
    return found


async def test_profile_tag_lookup_uses_an_index_seek(
    driver: AsyncDriver, names: GraphNames
) -> None:
    await load_sample(driver, names, sample_rows())
    await run_migrations(driver, names=names)
    _, summary, _ = await driver.execute_query(
        f"PROFILE MATCH (t:{names.tag}) WHERE t.name IN $tags "
        f"MATCH (c:{names.compute_node})-[:TAGGED]->(t) "
        f"MATCH (c)-[:EMITS]->(q:{names.queue}) WHERE q.interval = $interval "
        "RETURN DISTINCT q.topic AS topic",
        tags=["btc", "price"],
        interval=60,
        database_=DATABASE,
    )
    assert summary.profile is not None
    ops = _operators(summary.profile)
    assert not [op for op, _ in ops if op.startswith("NodeByLabelScan")], ops
    seeks = [d for op, d in ops if op.startswith(("NodeUniqueIndexSeek", "NodeIndexSeek"))]
    assert any(names.tag in d for d in seeks), ops


async def test_two_concurrent_processes_both_succeed_and_record_once(
    driver: AsyncDriver, names: GraphNames, endpoints: ServiceEndpoints
) -> None:
    await load_sample(driver, names, sample_rows())
    procs = [_cli(prefix=names.prefix, endpoints=endpoints) for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    applied_lines = [
        line for out, _ in outputs for line in out.splitlines() if line.startswith("applied")
    ]
    assert sorted(applied_lines) == sorted(f"applied {m.version} {m.name}" for m in MIGRATIONS)
    assert [r["version"] for r in await _records(driver, names)] == ALL_VERSIONS


async def test_lease_excludes_a_second_runner_until_released_or_expired(
    driver: AsyncDriver, names: GraphNames
) -> None:
    await run_migrations(driver, names=names)  # creates the lock's constraint
    first, second = _Lease(driver, names, 60.0), _Lease(driver, names, 60.0)
    assert await first.try_take()
    assert not await second.try_take()
    await first.release()
    assert await second.try_take()
    short = _Lease(driver, names, 0.05)
    await second.release()
    assert await short.try_take()

    async def taken() -> bool:
        return await first.try_take()

    await eventually(taken, what="the expired lease to be taken over", within=10)


async def test_cli_status_and_dry_run(
    driver: AsyncDriver, names: GraphNames, endpoints: ServiceEndpoints
) -> None:
    out, err = _cli("--dry-run", prefix=names.prefix, endpoints=endpoints).communicate(timeout=60)
    assert f"CREATE CONSTRAINT {names.schema('tag_name_unique')} IF NOT EXISTS" in out, err
    assert f"FOR (x:{names.tag}) REQUIRE x.name IS UNIQUE;" in out
    status = await migration_status(driver, names=names)
    assert len(status.pending) == len(MIGRATIONS)  # the dry run changed nothing
    assert {o.state for o in status.objects} == {"MISSING"}

    proc = _cli("--status", prefix=names.prefix, endpoints=endpoints)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert out.splitlines()[0] == "at head: no"
    assert f"pending {HEAD_VERSION} {MIGRATIONS[-1].name}" in out

    await run_migrations(driver, names=names)
    out, err = _cli("--status", prefix=names.prefix, endpoints=endpoints).communicate(timeout=60)
    assert out.splitlines()[0] == "at head: yes", err
    assert f"index {names.schema('tag_name_unique')} ONLINE" in out
    assert "pending" not in out


def test_cli_unreachable_neo4j_exits_1_with_one_line() -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--status", "--uri", "bolt://127.0.0.1:1"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: Neo4j (ServiceUnavailable)"), proc.stderr


async def test_check_at_head_reports_a_missing_tag_index(
    driver: AsyncDriver, names: GraphNames
) -> None:
    await run_migrations(driver, names=names)
    await driver.execute_query(
        f"DROP CONSTRAINT {names.schema('tag_name_unique')}", database_=DATABASE
    )
    ok, reason = await check_at_head(driver, names=names)
    assert not ok
    assert f"TAG index {names.schema('tag_name_unique')} is MISSING" in reason


@pytest.mark.parametrize("prefix", ["1abc", "a b", "x`) DETACH DELETE n //", "a" * 40])
def test_label_prefix_must_be_a_plain_identifier(prefix: str) -> None:
    with pytest.raises(InvalidGraphPrefix):
        GraphNames(prefix)


async def test_dropping_the_unprefixed_graph_is_refused(driver: AsyncDriver) -> None:
    with pytest.raises(UnprefixedGraph):
        await drop_prefixed_graph(driver, GraphNames(), database=DATABASE)
