"""What the diff tests share: a DiffService on the in-memory adapters, and a snapshot of
everything a diff could have written, to prove a failing diff wrote nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from qmtl.dagmanager.v1 import diff_messages_pb2
from qmtl.runtime.errors import Code, QmtlError, error_info
from qmtl.runtime.graphstore import GraphStore, InMemoryGraphStore
from qmtl.runtime.topicadmin import InMemoryTopicAdmin, TopicAdmin
from qmtl.services.dag_manager.diff import DiffLimits, DiffService
from tests.contract.graphstore_support import ManualClock


@dataclass
class DiffEnv:
    store: GraphStore
    admin: InMemoryTopicAdmin
    clock: ManualClock
    # Ids a test wrote on purpose, so the snapshot looks at them too.
    seeded: list[str] = field(default_factory=list)

    def service(
        self,
        *,
        limits: DiffLimits | None = None,
        store: GraphStore | None = None,
        topics: TopicAdmin | None = None,
    ) -> DiffService:
        return DiffService(
            store if store is not None else self.store,
            topics if topics is not None else self.admin,
            clock=self.clock,
            limits=limits,
        )

    async def snapshot(self, request: diff_messages_pb2.DiffRequest) -> tuple[Any, ...]:
        ids = {n.node_id for n in request.dag.nodes if n.node_id}
        ids.update(dep for n in request.dag.nodes for dep in n.spec.dependencies if dep)
        ids.update(self.seeded)
        nodes = await self.store.get_nodes(sorted(ids))
        orphans = await self.store.orphans(older_than=-1e12, limit=10_000)
        return nodes, orphans, await self.admin.list_topics()


def make_env() -> DiffEnv:
    clock = ManualClock()
    return DiffEnv(InMemoryGraphStore(clock=clock), InMemoryTopicAdmin(), clock)


async def expect_rejected(
    env: DiffEnv,
    request: diff_messages_pb2.DiffRequest,
    code: Code,
    field: str | None,
    *,
    status: int,
    service: DiffService | None = None,
) -> QmtlError:
    """Runs a diff that must fail with `code` naming `field` (None: an error without one, e.g.
    the broker's), and checks it changed nothing."""
    before = await env.snapshot(request)
    with pytest.raises(QmtlError) as caught:
        await (service or env.service()).diff(request)
    error = caught.value
    assert (error.info.wire_code, error.details.get("field")) == (
        error_info(code).wire_code,
        field,
    ), error.message
    assert error.status == status
    assert await env.snapshot(request) == before
    return error
