"""Applies, reports and checks the migrations of `steps` on a live Neo4j (async driver).

Concurrency: every step is idempotent (`IF NOT EXISTS`, MERGE), and on top of that one runner
at a time holds a lease on a `(:SchemaMigrationLock {name})` node (unique constraint, so MERGE
cannot make two). A second runner waits for the lease, then finds the versions recorded and
does nothing. The lease expires, so a runner killed mid-way cannot block the next one forever.
`neo4j` is imported lazily: this package ships in the qmtl-runtime-core tree, whose slim
dependencies do not include the driver.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from qmtl.runtime.graph_migrations.steps import (
    MIGRATIONS,
    TAG_INDEX_VERSION,
    GraphNames,
    Migration,
    StepKind,
    bootstrap_statements,
)

if TYPE_CHECKING:
    from neo4j import AsyncDriver

DATABASE = "neo4j"
LOCK_NAME = "graph-schema"
DEFAULT_LEASE_S = 120.0  # renewed before every step and while an index populates
DEFAULT_WAIT_S = 300.0  # how long a second runner waits for the lease
DEFAULT_INDEX_ONLINE_S = 600.0  # how long a new index may take to become ONLINE
POLL_S = 0.2
TRANSIENT_RETRIES = 8  # deadlocks between concurrent runners; backoff 0.05 s doubling
TRANSIENT_BACKOFF_S = 0.05
# Schema rules another runner created between our check and our CREATE: already done, not an error.
_ALREADY_EXISTS = frozenset(
    {
        "Neo.ClientError.Schema.EquivalentSchemaRuleAlreadyExists",
        "Neo.ClientError.Schema.ConstraintAlreadyExists",
        "Neo.ClientError.Schema.IndexAlreadyExists",
        "Neo.ClientError.Schema.ConstraintWithNameAlreadyExists",
        "Neo.ClientError.Schema.IndexWithNameAlreadyExists",
    }
)


class MigrationError(Exception):
    """A migration run could not complete; the message is one line fit for a CLI."""


class MigrationLockTimeout(MigrationError):
    """Another runner held the lease longer than we were willing to wait."""


class MigrationLockLost(MigrationError):
    """Our lease expired and another runner took it; we stop rather than race it."""


class IndexNotOnline(MigrationError):
    """An index failed to populate, or did not come ONLINE in time."""


@dataclass(frozen=True, slots=True)
class AppliedRecord:
    version: int
    name: str
    checksum: str
    applied_at: str


@dataclass(frozen=True, slots=True)
class SchemaObjectState:
    name: str
    state: str  # ONLINE, POPULATING, FAILED, or MISSING
    kind: str  # index type (RANGE, ...) or "-" when missing


@dataclass(frozen=True, slots=True)
class MigrationStatus:
    applied: tuple[AppliedRecord, ...]
    pending: tuple[Migration, ...]
    unknown_versions: tuple[int, ...]  # recorded in the graph but newer than this code
    checksum_mismatches: tuple[int, ...]
    objects: tuple[SchemaObjectState, ...]

    @property
    def at_head(self) -> bool:
        return not self.pending


@dataclass(slots=True)
class MigrationReport:
    applied: list[Migration] = field(default_factory=list)
    already_applied: list[int] = field(default_factory=list)
    waited_for_lock: bool = False


async def _run(driver: AsyncDriver, query: str, **params: Any) -> list[dict[str, Any]]:
    """Runs one auto-commit query, retrying transient errors: two runners racing for the lock
    node or a schema rule deadlock, and every statement here is idempotent, so a retry is safe."""
    from neo4j.exceptions import TransientError

    for attempt in range(TRANSIENT_RETRIES):
        try:
            return await _run_once(driver, query, **params)
        except TransientError:
            if attempt == TRANSIENT_RETRIES - 1:
                raise
            await asyncio.sleep(TRANSIENT_BACKOFF_S * 2**attempt)
    raise AssertionError("unreachable")


async def _run_once(driver: AsyncDriver, query: str, **params: Any) -> list[dict[str, Any]]:
    # Notifications off: probing labels that do not exist yet (an unmigrated graph) is expected,
    # and the driver would log each such warning.
    async with driver.session(database=DATABASE, notifications_min_severity="OFF") as session:
        result = await session.run(query, params)
        return [record.data() async for record in result]


async def _run_schema(driver: AsyncDriver, statement: str) -> None:
    from neo4j.exceptions import ClientError

    try:
        await _run(driver, statement)
    except ClientError as exc:
        if exc.code not in _ALREADY_EXISTS:
            raise


async def _applied(driver: AsyncDriver, names: GraphNames) -> dict[int, AppliedRecord]:
    rows = await _run(
        driver,
        f"MATCH (m:{names.migration}) RETURN m.version AS version, m.name AS name, "
        "m.checksum AS checksum, toString(m.applied_at) AS applied_at ORDER BY version",
    )
    return {
        int(r["version"]): AppliedRecord(
            int(r["version"]), str(r["name"]), str(r["checksum"]), str(r["applied_at"])
        )
        for r in rows
    }


async def _object_states(
    driver: AsyncDriver, wanted: Sequence[str]
) -> tuple[SchemaObjectState, ...]:
    rows = await _run(
        driver,
        "SHOW INDEXES YIELD name, state, type WHERE name IN $names RETURN name, state, type",
        names=list(wanted),
    )
    found = {
        str(r["name"]): SchemaObjectState(str(r["name"]), str(r["state"]), str(r["type"]))
        for r in rows
    }
    return tuple(found.get(name, SchemaObjectState(name, "MISSING", "-")) for name in wanted)


def _schema_names(names: GraphNames) -> list[str]:
    return [m.schema_object(names) for m in MIGRATIONS if m.schema_object is not None]


async def _missing_objects(driver: AsyncDriver, names: GraphNames) -> set[str]:
    states = await _object_states(driver, _schema_names(names))
    return {o.name for o in states if o.state == "MISSING"}


async def migration_status(
    driver: AsyncDriver, *, names: GraphNames | None = None
) -> MigrationStatus:
    """Applied and pending versions and the state of every index the migrations create."""
    names = names or GraphNames()
    applied = await _applied(driver, names)
    known = {m.version: m for m in MIGRATIONS}
    return MigrationStatus(
        applied=tuple(applied[v] for v in sorted(applied)),
        pending=tuple(m for m in MIGRATIONS if m.version not in applied),
        unknown_versions=tuple(sorted(v for v in applied if v not in known)),
        checksum_mismatches=tuple(
            sorted(
                v for v, r in applied.items() if v in known and r.checksum != known[v].checksum()
            )
        ),
        objects=await _object_states(driver, _schema_names(names)),
    )


async def check_at_head(
    driver: AsyncDriver, *, names: GraphNames | None = None
) -> tuple[bool, str]:
    """For the DAG Manager's boot check: (True, "") when every migration is recorded and the TAG
    index is ONLINE, else (False, a reason naming the command that fixes it). Never raises for
    an unmigrated graph; connection errors propagate (the caller decides how to degrade)."""
    names = names or GraphNames()
    status = await migration_status(driver, names=names)
    fix = "run `qmtl migrate` (scripts/migrations/neo4j_index_migration.py)"
    if status.pending:
        versions = ", ".join(f"{m.version} {m.name}" for m in status.pending)
        return False, f"Neo4j schema migrations pending ({versions}); {fix}"
    tag_name = names.schema(next(m.name for m in MIGRATIONS if m.version == TAG_INDEX_VERSION))
    state = next(o.state for o in status.objects if o.name == tag_name)
    if state != "ONLINE":
        return False, f"the TAG index {tag_name} is {state}, not ONLINE; {fix}"
    return True, ""


class _Lease:
    """The migration lock: a lease on one node, taken and renewed by the same query."""

    def __init__(self, driver: AsyncDriver, names: GraphNames, lease_s: float) -> None:
        self._driver = driver
        self._names = names
        self._lease_ms = int(lease_s * 1000)
        self.holder = f"{uuid.uuid4()}"

    async def try_take(self) -> bool:
        # `SET l.probe` write-locks the node before holder/expiry are read, so two runners
        # cannot both see it free; the lock is held until this transaction commits.
        query = (
            f"MERGE (l:{self._names.lock} {{name: $name}}) SET l.probe = $me "
            "WITH l, (l.holder IS NULL OR l.holder = $me OR l.expires_at < timestamp()) AS free "
            "FOREACH (_ IN CASE WHEN free THEN [1] ELSE [] END | "
            "SET l.holder = $me, l.expires_at = timestamp() + $lease_ms) "
            "REMOVE l.probe RETURN free"
        )
        rows = await _run(
            self._driver, query, name=LOCK_NAME, me=self.holder, lease_ms=self._lease_ms
        )
        return bool(rows[0]["free"])

    async def renew(self) -> None:
        if not await self.try_take():
            raise MigrationLockLost("the migration lease expired and another runner took it")

    async def release(self) -> None:
        await _run(
            self._driver,
            f"MATCH (l:{self._names.lock} {{name: $name}}) WHERE l.holder = $me "
            "REMOVE l.holder, l.expires_at",
            name=LOCK_NAME,
            me=self.holder,
        )


async def _await_online(driver: AsyncDriver, name: str, lease: _Lease, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        (state,) = await _object_states(driver, [name])
        if state.state == "ONLINE":
            return
        if state.state == "FAILED":
            raise IndexNotOnline(
                f"index {name} FAILED to populate; see SHOW INDEXES and the Neo4j log"
            )
        if time.monotonic() > deadline:
            raise IndexNotOnline(f"index {name} still {state.state} after {timeout_s:.0f}s")
        await lease.renew()
        await asyncio.sleep(POLL_S)


async def _apply(
    driver: AsyncDriver, m: Migration, names: GraphNames, lease: _Lease, online_s: float
) -> None:
    if m.kind is StepKind.DATA:
        await _run(driver, m.cypher(names))
    else:
        await _run_schema(driver, m.cypher(names))
    if m.kind is StepKind.INDEX and m.schema_object is not None:
        await _await_online(driver, m.schema_object(names), lease, online_s)
    await _run(
        driver,
        f"MERGE (m:{names.migration} {{version: $version}}) "
        "ON CREATE SET m.name = $name, m.checksum = $checksum, m.applied_at = datetime(), "
        "m.applied_by = $me",
        version=m.version,
        name=m.name,
        checksum=m.checksum(),
        me=lease.holder,
    )


def plan(names: GraphNames | None = None) -> list[str]:
    """Every statement a run would execute on an empty graph, in order (for --dry-run)."""
    names = names or GraphNames()
    return [*bootstrap_statements(names), *(m.cypher(names) for m in MIGRATIONS)]


async def run_migrations(
    driver: AsyncDriver,
    *,
    names: GraphNames | None = None,
    lease_s: float = DEFAULT_LEASE_S,
    wait_s: float = DEFAULT_WAIT_S,
    index_online_s: float = DEFAULT_INDEX_ONLINE_S,
) -> MigrationReport:
    """Applies every pending migration in version order; a no-op when the graph is at head."""
    names = names or GraphNames()
    report = MigrationReport()
    for statement in bootstrap_statements(names):
        await _run_schema(driver, statement)
    lease = _Lease(driver, names, lease_s)
    deadline = time.monotonic() + wait_s
    while not await lease.try_take():
        report.waited_for_lock = True
        if time.monotonic() > deadline:
            raise MigrationLockTimeout(
                f"another runner held the migration lock for more than {wait_s:.0f}s"
            )
        await asyncio.sleep(POLL_S)
    try:
        applied = await _applied(driver, names)  # read under the lock: what the other runner did
        # A recorded index or constraint dropped since (by hand, a partial restore) is made
        # again: its statement is idempotent and the record's MERGE keeps its applied_at.
        missing = await _missing_objects(driver, names)
        for m in MIGRATIONS:
            lost = m.schema_object is not None and m.schema_object(names) in missing
            if m.version in applied and not lost:
                report.already_applied.append(m.version)
                continue
            await lease.renew()
            await _apply(driver, m, names, lease, index_online_s)
            report.applied.append(m)
    finally:
        await lease.release()
    return report
