"""The Gateway's `initialize_and_recover()` and its clean shutdown (docs/operations/boot.md).

The steps, in order, each logged with its duration and retried until it succeeds (only a
Redis that would lose jobs under the production profile ends the boot): connect the
strategy store, the work queue (its durability check), the event bus and the DAG Manager;
drain the outbox; return expired leases (`reap_expired`); re-queue strategies whose work was
interrupted (`requeue_stranded`); write the clean-shutdown marker (one was there: the last
run crashed); publish ServiceRestarted with the counts. Then the relay and the SubmitWorker
start and the rpcs open.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from qmtl.dagmanager.v1 import status_messages_pb2
from qmtl.dagmanager.v1.dag_manager_service_handler import DAG_MANAGER_SERVICE
from qmtl.runtime.boot import (
    Backend,
    BootStep,
    MemoryMarker,
    ShutdownMarker,
    relayed_check,
)
from qmtl.runtime.eventbus import EventBus
from qmtl.runtime.health import Degraded, HealthReporter
from qmtl.runtime.restart import Restart
from qmtl.runtime.rpc_caller import RpcCaller
from qmtl.runtime.service_config import Backend as BackendKind
from qmtl.runtime.service_config import Profile
from qmtl.runtime.workqueue import QueueProfile, WorkQueue, open_work_queue

from .config import GatewayConfig
from .store.port import StrategyStore
from .stranded import requeue_stranded

if TYPE_CHECKING:
    import redis.asyncio as redis

_log = logging.getLogger("qmtl.services.gateway.boot")
GET_STATUS = DAG_MANAGER_SERVICE.rpc("GetStatus")
# The DAG Manager's status check runs inside the health check's own timeout.
PEER_CHECK_TIMEOUT_S = 1.5


class DagManagerLink(Protocol):
    """How this Gateway reaches a DAG Manager: over gRPC, or one embedded in the process (the
    composition root, qmtl.cli.gateway, builds that one: the Gateway never imports it)."""

    adapter: str  # "grpc" or "in-process", for the health report

    async def open(self, bus: EventBus) -> RpcCaller: ...

    async def close(self) -> None: ...


class RedisMarker:
    """The clean-shutdown marker as one Redis key per instance, next to the Gateway's state."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._client, self._prefix = client, prefix

    def key(self, instance_id: str) -> str:
        return f"{self._prefix}running:{instance_id}"

    async def mark_running(self, instance_id: str, *, started_at: float) -> bool:
        previous = await self._client.set(self.key(instance_id), repr(started_at), get=True)
        return previous is not None

    async def clear(self, instance_id: str) -> None:
        await self._client.delete(self.key(instance_id))

    async def aclose(self) -> None:
        await self._client.aclose()


@dataclass
class GatewayBackends:
    store: Backend[StrategyStore]
    queue: Backend[WorkQueue]
    bus: Backend[EventBus]
    dag_manager: Backend[RpcCaller]
    link: DagManagerLink
    marker: Backend[ShutdownMarker]


def _queue_profile(config: GatewayConfig) -> QueueProfile:
    if config.backend is BackendKind.MEMORY:
        return QueueProfile.EMBEDDED
    if config.profile is Profile.PRODUCTION:
        return QueueProfile.PRODUCTION
    return QueueProfile.DEVELOPMENT


def gateway_backends(
    config: GatewayConfig, link: DagManagerLink, *, client_id: str
) -> GatewayBackends:
    real = config.backend is BackendKind.REAL
    adapter = "redis" if real else "memory"

    async def open_store() -> StrategyStore:
        if not real:
            from .store.memory import MemoryStrategyStore

            return MemoryStrategyStore()
        from .store.redis_store import RedisStrategyStore

        store = RedisStrategyStore.from_url(config.redis_url, prefix=config.redis_prefix)
        try:
            await store.ping()
        except BaseException:
            await store.aclose()
            raise
        return store

    async def ping_store(store: StrategyStore) -> None:
        await store.ping()

    async def open_queue() -> WorkQueue:
        return await open_work_queue(
            _queue_profile(config), name=config.queue_name, redis_url=config.redis_url
        )

    async def ping_queue(queue: WorkQueue) -> None:
        await queue.stats()

    async def open_bus() -> EventBus:
        if not real:
            from qmtl.runtime.eventbus import InMemoryEventBus

            return InMemoryEventBus()
        from qmtl.runtime.eventbus.kafka import KafkaEventBus

        return await KafkaEventBus.connect(config.kafka_bootstrap, client_id=client_id)

    async def open_dag_manager() -> RpcCaller:
        return await link.open(bus.value)

    async def ping_dag_manager(caller: RpcCaller) -> None:
        reply = await caller.call(
            GET_STATUS, status_messages_pb2.GetStatusRequest(), timeout=PEER_CHECK_TIMEOUT_S
        )
        assert isinstance(reply, status_messages_pb2.GetStatusResponse)
        if not reply.health.ready:
            raise Degraded("the DAG Manager reports it is not ready")

    memory_marker = MemoryMarker()

    async def open_marker() -> ShutdownMarker:
        if not real:
            return memory_marker
        from qmtl.runtime.workqueue.redis_calls import client_for_url

        return RedisMarker(client_for_url(config.redis_url, 5.0), config.redis_prefix)

    bus = Backend("event_bus", "kafka" if real else "memory", open_bus)
    return GatewayBackends(
        store=Backend("strategy_store", adapter, open_store, ping=ping_store),
        queue=Backend("work_queue", adapter, open_queue, ping=ping_queue),
        bus=bus,
        dag_manager=Backend("dag_manager", link.adapter, open_dag_manager, ping=ping_dag_manager),
        link=link,
        marker=Backend("marker", adapter, open_marker),
    )


def boot_steps(
    config: GatewayConfig,
    backends: GatewayBackends,
    health: HealthReporter,
    state: Restart,
) -> list[BootStep]:
    """The Gateway's initialize_and_recover(), as the ordered steps run_boot runs."""
    settings = config.settings
    for backend in (backends.store, backends.queue):
        health.add_check(backend.name, backend.check, adapter=backend.adapter)
    health.add_check(
        backends.bus.name, relayed_check(backends.bus, state), adapter=backends.bus.adapter
    )
    # Submissions are accepted and queued while the DAG Manager is away: it degrades the
    # Gateway, it does not make it unready.
    dag_manager = backends.dag_manager
    health.add_check(dag_manager.name, dag_manager.check, adapter=dag_manager.adapter,
                     required=False)  # fmt: skip

    async def reap() -> None:
        reaped = await backends.queue.value.reap_expired()
        state.recovered_work_items += reaped.returned

    async def stranded() -> None:
        report = await requeue_stranded(
            backends.store.value,
            backends.queue.value,
            settings.stranded_after,
            settings=settings,
            clock=state.clock,
            notify=state.relay_over(backends.store.value.outbox, backends.bus.value).notify,
        )
        state.recovered_work_items += report.requeued

    connect = [
        b.step()
        for b in (
            backends.store,
            backends.queue,
            backends.bus,
            backends.dag_manager,
            backends.marker,
        )
    ]
    return [
        *connect,
        state.drain_step(lambda: backends.store.value.outbox, backends.bus),
        BootStep("reap expired leases", reap),
        BootStep("requeue stranded strategies", stranded),
        state.marker_step(lambda: backends.marker.value),
        state.announce_step(backends.bus),
    ]


async def shut_down(backends: GatewayBackends, state: Restart) -> None:
    """Clean shutdown after the worker stopped: relay, marker, then every backend; each part
    on its own, so one failing to close does not keep the marker in place."""
    await state.wind_down(lambda: backends.marker.value)
    marker = backends.marker.take()
    closers: list[tuple[str, Callable[[], Awaitable[None]]]] = []
    if isinstance(marker, RedisMarker):
        closers.append(("marker", marker.aclose))
    caller = backends.dag_manager.take()
    if caller is not None:
        closers.append(("dag_manager", caller.aclose))
    closers.append(("dag_manager link", backends.link.close))
    for backend in (backends.queue, backends.store, backends.bus):
        value = backend.take()
        if value is not None:
            closers.append((backend.name, value.aclose))
    for name, close in closers:
        try:
            await close()
        except Exception:
            _log.warning("closing %s failed", name, exc_info=True)
