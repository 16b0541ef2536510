"""A Gateway over the memory store, the memory work queue and a fake DAG Manager, called
through the InProcessCaller as the embedded deployment calls the real one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from qmtl.dag.v1 import diff_result_pb2, queue_pb2, strategy_pb2
from qmtl.dagmanager.v1 import diff_messages_pb2, queue_messages_pb2
from qmtl.dagmanager.v1.dag_manager_service_handler import (
    DAG_MANAGER_SERVICE,
    DagManagerServiceBase,
)
from qmtl.events.v1 import event_pb2
from qmtl.gateway.v1 import strategy_messages_pb2
from qmtl.gateway.v1.gateway_service_handler import GATEWAY_SERVICE
from qmtl.runtime import nodeid
from qmtl.runtime.auth import Principal
from qmtl.runtime.client_retry import RetryPolicy
from qmtl.runtime.context import Context
from qmtl.runtime.errors import QmtlError
from qmtl.runtime.inprocess import InProcessCaller
from qmtl.runtime.workqueue import (
    BackoffPolicy,
    InMemoryWorkQueue,
    QueueSettings,
    WorkerSettings,
)
from qmtl.services.gateway.handler import GatewayHandler
from qmtl.services.gateway.settings import GatewaySettings
from qmtl.services.gateway.store.memory import MemoryStrategyStore
from qmtl.services.gateway.waiting import Completions
from qmtl.services.gateway.worker import JobHandler, SubmitWorker
from qmtl.work.v1 import work_item_pb2
from tests.dag_manager.dag_builders import DagBuilder

GATEWAY = Principal("service:gateway", frozenset({"dag:diff", "dag:read"}))
SUBMITTER = Principal("test:submitter", frozenset({"strategies:submit"}))
STATE_CHANGED = "qmtl.gateway.strategy_state_changed"

QUEUED = strategy_pb2.STRATEGY_STATE_QUEUED
PROCESSING = strategy_pb2.STRATEGY_STATE_PROCESSING
COMPLETED = strategy_pb2.STRATEGY_STATE_COMPLETED
FAILED = strategy_pb2.STRATEGY_STATE_FAILED


def queue_name(node_id: str) -> str:
    return "q." + node_id.removeprefix("blake3:")[:16]


def expected_diff(request: diff_messages_pb2.DiffRequest) -> diff_result_pb2.DiffResult:
    """What FakeDagManager answers: every node new, on a queue named after its id."""
    result = diff_result_pb2.DiffResult(
        strategy_id=request.strategy_id,
        crc32=request.node_ids_crc32,
        dry_run=request.dry_run,
        new_node_ids=[node.node_id for node in request.dag.nodes],
    )
    for node in request.dag.nodes:
        result.queue_map.queues[node.node_id].CopyFrom(
            queue_pb2.QueueDescriptor(queue=queue_name(node.node_id), node_id=node.node_id)
        )
    return result


class FakeDagManager(DagManagerServiceBase):
    """A deterministic Diff; `failures` are raised first, one per call; while `gate` is set,
    each Diff waits for it (`entered` counts the calls waiting)."""

    def __init__(self) -> None:
        self.failures: list[QmtlError] = []
        self.calls: list[diff_messages_pb2.DiffRequest] = []
        self.gate: asyncio.Event | None = None
        self.entered = 0
        self.queues = [queue_pb2.QueueDescriptor(queue="q.btc", node_id="blake3:" + "b" * 64)]

    async def diff(
        self, request: diff_messages_pb2.DiffRequest, ctx: Context
    ) -> diff_messages_pb2.DiffResponse:
        self.calls.append(request)
        self.entered += 1
        if self.gate is not None:
            await self.gate.wait()
        if self.failures:
            raise self.failures.pop(0)
        return diff_messages_pb2.DiffResponse(result=expected_diff(request))

    async def get_queues_by_tag(
        self, request: queue_messages_pb2.GetQueuesByTagRequest, ctx: Context
    ) -> queue_messages_pb2.GetQueuesByTagResponse:
        matched = [q for q in self.queues if request.tags and request.interval == 60]
        return queue_messages_pb2.GetQueuesByTagResponse(queues=matched)


def submit_request(
    builder: DagBuilder | None = None, **fields: Any
) -> strategy_messages_pb2.SubmitStrategyRequest:
    """A valid submission of `builder`'s DAG (a two-node chain by default)."""
    if builder is None:
        builder = DagBuilder()
        first = builder.node("Source", tags=["btc"], params={"variant": fields.pop("seed", 0)})
        builder.node("Indicator", deps=[first])
    dag = builder.dag()
    fields.setdefault("name", "test strategy")
    request = strategy_messages_pb2.SubmitStrategyRequest(
        node_ids_crc32=nodeid.node_ids_crc32(node.node_id for node in dag.nodes), **fields
    )
    request.dag.CopyFrom(dag)
    return request


def ctx_for(rpc: str, principal: Principal | None = SUBMITTER) -> Context:
    return Context(GATEWAY_SERVICE.rpc(rpc), "http", principal, {})


class RecordingDeliverer:
    """Stands in for CallbackDeliverer: records the callback jobs the worker hands it."""

    def __init__(self) -> None:
        self.items: list[work_item_pb2.WorkItem] = []

    async def __call__(self, item: work_item_pb2.WorkItem) -> bytes:
        self.items.append(item)
        return b""


@dataclass
class GatewayEnv:
    store: MemoryStrategyStore
    queue: InMemoryWorkQueue
    dag_manager: FakeDagManager
    caller: InProcessCaller
    settings: GatewaySettings
    completions: Completions
    handler: GatewayHandler
    notified: list[int] = field(default_factory=list)
    workers: list[SubmitWorker] = field(default_factory=list)

    def worker(
        self, worker_id: str = "w1", *, callbacks: JobHandler | None = None, start: bool = True
    ) -> SubmitWorker:
        worker = SubmitWorker(
            self.store,
            self.queue,
            self.caller,
            worker_id=worker_id,
            callbacks=callbacks,
            settings=self.settings,
            notify=lambda: self.notified.append(1),
            completions=self.completions,
        )
        if start:
            worker.start()
        self.workers.append(worker)
        return worker

    async def submit(
        self, request: strategy_messages_pb2.SubmitStrategyRequest
    ) -> tuple[strategy_messages_pb2.SubmitStrategyResponse, int]:
        ctx = ctx_for("SubmitStrategy")
        response = await self.handler.submit_strategy(request, ctx)
        return response, ctx.status

    async def strategy(self, strategy_id: str) -> strategy_pb2.Strategy:
        found = await self.store.get(strategy_id)
        assert found is not None
        return found

    async def state_events(self, strategy_id: str = "") -> list[event_pb2.Event]:
        events, _ = await self.store.events(
            strategy_id=strategy_id, types=(STATE_CHANGED,), limit=1_000
        )
        return events

    async def outbox_events(self) -> list[event_pb2.Event]:
        entries = await self.store.outbox.outbox_pending(limit=1_000)
        return [event_pb2.Event.FromString(entry.payload) for entry in entries]

    async def wait_for_state(self, strategy_id: str, *states: int) -> strategy_pb2.Strategy:
        from tests.polling import eventually

        async def reached() -> bool:
            return (await self.strategy(strategy_id)).state in states

        await eventually(reached, what=f"strategy {strategy_id} in {states}", within=10.0)
        return await self.strategy(strategy_id)


def make_settings(**overrides: Any) -> GatewaySettings:
    fields: dict[str, Any] = {
        "worker": WorkerSettings(lease_ttl=5.0, poll_interval=0.01, reap_interval=0.05),
        "wait_poll_initial": 0.01,
        "wait_poll_max": 0.05,
    }
    fields.update(overrides)
    return GatewaySettings(**fields)


async def gateway_env(
    *, caller_retry: RetryPolicy | None = None, **settings: Any
) -> AsyncIterator[GatewayEnv]:
    """`caller_retry`: the DAG Manager caller's own retry of the idempotent Diff; off unless
    given, so that a failed Diff is one failed job attempt and the queue's retries are what a
    test sees."""
    store = MemoryStrategyStore()
    # Retries come back at once: the backoff is the queue's, tested with the queue.
    queue = InMemoryWorkQueue(QueueSettings(backoff=BackoffPolicy(base=0.001, cap=0.001)))
    fake = FakeDagManager()
    caller = InProcessCaller(
        fake,
        DAG_MANAGER_SERVICE,
        principal=GATEWAY,
        retry=caller_retry or RetryPolicy(max_attempts=1),
    )
    resolved = make_settings(**settings)
    completions = Completions()
    env = GatewayEnv(store, queue, fake, caller, resolved, completions, handler=None)  # type: ignore[arg-type]
    env.handler = GatewayHandler(
        store,
        queue,
        caller,
        settings=resolved,
        notify=lambda: env.notified.append(1),
        completions=completions,
    )
    try:
        yield env
    finally:
        for worker in env.workers:
            await worker.stop()
        await caller.aclose()
        await queue.aclose()
        await store.aclose()
