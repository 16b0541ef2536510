"""The DAG Manager's boot check of the Neo4j graph schema (docs/operations/neo4j.md, "Boot check").

An unmigrated graph, a behind one or a TAG index that is not ONLINE still answers every query,
only slower (tag lookups fall back to label scans), so the check never stops the service: it
logs one WARNING naming the command that fixes it and reports the `neo4j-schema` component
DEGRADED. Neo4j not answering is reported the same way; whether the service is then usable is
for the server's own readiness (issue 12 wires this check into the server process).
"""

from __future__ import annotations

import asyncio
import logging
import shlex
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from qmtl.common.v1 import health_pb2
from qmtl.runtime.graph_migrations import GraphNames, check_at_head

if TYPE_CHECKING:
    from neo4j import AsyncDriver

COMPONENT = "neo4j-schema"
SERVICE = "dag-manager"
ADAPTER = "neo4j"
# Bounds the whole check (a few schema reads); Neo4j that has not answered by then is degraded.
DEFAULT_TIMEOUT_S = 10.0

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GraphSchemaCheck:
    """The outcome of one boot check: `ok`, and otherwise why and what to run."""

    ok: bool
    reason: str  # empty when ok
    command: str  # what fixes it; empty when ok or when no command would (Neo4j unreachable)
    component: health_pb2.ComponentHealth

    @property
    def state(self) -> health_pb2.HealthState.ValueType:
        return self.component.state

    def service_health(self, *, ready: bool = True) -> health_pb2.ServiceHealth:
        """The DAG Manager's health as far as this check knows it: the service keeps serving on
        a degraded schema, so `ready` defaults to True and the state is the component's."""
        health = health_pb2.ServiceHealth(service=SERVICE, state=self.state, ready=ready)
        health.components.append(self.component)
        return health


def migrate_command(names: GraphNames, uri: str | None) -> str:
    """The exact `qmtl migrate` invocation for this graph (docs/operations/neo4j.md)."""
    parts = ["qmtl", "migrate"]
    if uri:
        parts += ["--uri", uri]
    if names.prefix:  # side-by-side/test graphs only; production has no prefix
        parts += ["--label-prefix", names.prefix]
    return shlex.join(parts)


def _component(
    state: health_pb2.HealthState.ValueType, detail: str, started: float, checked_at: float
) -> health_pb2.ComponentHealth:
    component = health_pb2.ComponentHealth(
        name=COMPONENT, state=state, adapter=ADAPTER, detail=detail
    )
    component.checked_at.FromNanoseconds(int(checked_at * 1_000_000_000))
    component.latency.FromNanoseconds(int((time.perf_counter() - started) * 1_000_000_000))
    return component


async def check_graph_schema(
    driver: AsyncDriver,
    *,
    names: GraphNames | None = None,
    uri: str | None = None,
    logger: logging.Logger = _LOG,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> GraphSchemaCheck:
    """Checks that every migration is applied and the TAG index is ONLINE. Never raises for
    the graph's state nor for Neo4j being unreachable: both come back DEGRADED, after one
    WARNING on `logger`. `uri` is the driver's Bolt URI, put into the command the warning
    names (`qmtl migrate --uri ...`)."""
    names = names or GraphNames()
    started, checked_at = time.perf_counter(), time.time()
    try:
        async with asyncio.timeout(timeout_s):
            ok, reason = await check_at_head(driver, names=names)
    except TimeoutError:
        reason = f"Neo4j did not answer the schema check within {timeout_s:g} s"
        return _unreachable(reason, started, checked_at, logger)
    except Exception as exc:
        from neo4j.exceptions import DriverError, Neo4jError

        if not isinstance(exc, (DriverError, Neo4jError, OSError)):
            raise  # a bug, not an unavailable backend
        first_line = str(exc).splitlines()[0] if str(exc) else ""
        reason = f"Neo4j unreachable ({type(exc).__name__}: {first_line})"
        return _unreachable(reason, started, checked_at, logger)
    if ok:
        component = _component(health_pb2.HEALTH_STATE_OK, "", started, checked_at)
        return GraphSchemaCheck(ok=True, reason="", command="", component=component)
    command = migrate_command(names, uri)
    logger.warning(
        "graph schema not at head, serving degraded (tag lookups scan labels): %s. Fix: %s",
        reason,
        command,
    )
    component = _component(
        health_pb2.HEALTH_STATE_DEGRADED, f"{reason}; run: {command}", started, checked_at
    )
    return GraphSchemaCheck(ok=False, reason=reason, command=command, component=component)


def _unreachable(
    reason: str, started: float, checked_at: float, logger: logging.Logger
) -> GraphSchemaCheck:
    logger.warning("graph schema check failed, serving degraded: %s", reason)
    component = _component(health_pb2.HEALTH_STATE_DEGRADED, reason, started, checked_at)
    return GraphSchemaCheck(ok=False, reason=reason, command="", component=component)
