"""The `qmtl dagmanager` process: one DagManagerHandler on the public, internal and gRPC listeners.

`serve_dag_manager(config)` binds the listeners first (so /health and /ready answer while the
backends connect), prints the bound ports, runs initialize_and_recover() (recover.py) and then
opens the rpcs; it returns 0 after SIGTERM/SIGINT once listeners, relay and backends have
stopped and the clean-shutdown marker is removed. `embed(bus)` is the same core inside another
process (the Gateway's `--backend memory`). docs/operations/boot.md.
"""

from __future__ import annotations

import logging
import sys
import time
import uuid
from dataclasses import dataclass
from importlib import metadata
from typing import TextIO

from qmtl.dagmanager.v1 import (
    dag_manager_service_grpc,
    dag_manager_service_http,
    health_messages_pb2,
    status_messages_pb2,
)
from qmtl.dagmanager.v1.dag_manager_service_handler import (
    DAG_MANAGER_SERVICE,
    DagManagerServiceBase,
)
from qmtl.runtime import contracts_version
from qmtl.runtime.alerts.backend_down import BackendDownAlerts
from qmtl.runtime.boot import (
    BootGate,
    BootPolicy,
    default_instance_id,
    run_boot,
    serve_and_boot,
    token_verifier,
)
from qmtl.runtime.eventbus import EventBus
from qmtl.runtime.gen import Context
from qmtl.runtime.graphstore import InMemoryGraphStore
from qmtl.runtime.health import DEFAULT_DOWN_GRACE_S, HealthReporter
from qmtl.runtime.http.server import load_document
from qmtl.runtime.metrics import observe_boot, outbox_backlog_source
from qmtl.runtime.outbox import OutboxRelay
from qmtl.runtime.restart import Restart
from qmtl.runtime.serve import ServeConfig, Served, ServiceBinding
from qmtl.runtime.service_config import Backend
from qmtl.runtime.topicadmin import InMemoryTopicAdmin

from .config import SERVICE, DagManagerConfig
from .handler import DagManagerHandler
from .recover import (
    DagManagerBackends,
    boot_steps,
    memory_backends,
    real_backends,
    shut_down,
)

_log = logging.getLogger("qmtl.services.dag_manager.app")
_boot_log = logging.getLogger("qmtl.services.dag_manager.boot")

HEALTH_RPCS = ("GetStatus", "GetHealthDetail")


def binding() -> ServiceBinding:
    """The DAG Manager's generated routes, gRPC adapter and OpenAPI documents."""
    return ServiceBinding(
        name=DAG_MANAGER_SERVICE.full_name,
        public_routes=dag_manager_service_http.dag_manager_service_public_routes,
        internal_routes=dag_manager_service_http.dag_manager_service_internal_routes,
        add_to_grpc_server=dag_manager_service_grpc.add_dag_manager_service_to_server,
        public_openapi=load_document(
            "qmtl.dagmanager.v1", "openapi/dagmanager.public.openapi.json"
        ),
        internal_openapi=load_document(
            "qmtl.dagmanager.v1", "openapi/dagmanager.internal.openapi.json"
        ),
    )


class DagManagerHealth(DagManagerServiceBase):
    """GetStatus (public: the listener clears the internal_only fields) and GetHealthDetail,
    both from the HealthReporter, answered from the first moment the listeners accept."""

    def __init__(self, health: HealthReporter) -> None:
        self._health = health

    async def get_status(
        self, request: status_messages_pb2.GetStatusRequest, ctx: Context
    ) -> status_messages_pb2.GetStatusResponse:
        return status_messages_pb2.GetStatusResponse(health=await self._health.snapshot())

    async def get_health_detail(
        self, request: health_messages_pb2.GetHealthDetailRequest, ctx: Context
    ) -> health_messages_pb2.GetHealthDetailResponse:
        return health_messages_pb2.GetHealthDetailResponse(health=await self._health.snapshot())


@dataclass
class Embedded:
    """A DAG Manager inside another process (the Gateway's `--backend memory`): in-memory
    graph and topics, its events relayed onto the host's bus. `handler` answers every rpc,
    GetStatus and GetHealthDetail included; call it through an InProcessCaller."""

    handler: BootGate
    relay: OutboxRelay

    async def aclose(self) -> None:
        await self.relay.stop()


async def embed(bus: EventBus, *, source: str = "qmtl/dag-manager/embedded") -> Embedded:
    """Builds and boots an embedded DAG Manager over in-memory adapters and `bus`."""
    store, topics = InMemoryGraphStore(), InMemoryTopicAdmin()
    health = HealthReporter(
        SERVICE,
        instance_id="embedded",
        version=service_version(),
        contract_version=contracts_version.SPOKEN,
    )
    health.add_check("graph_store", _always_ok, adapter="memory")
    gate = BootGate(
        DAG_MANAGER_SERVICE, always_handler=DagManagerHealth(health), always=HEALTH_RPCS
    )
    relay = OutboxRelay(store, bus)
    gate.open(DagManagerHandler(store, topics, relay, source=source))
    relay.start()
    health.mark_booted()
    return Embedded(gate, relay)


async def _always_ok() -> None:
    return None


def service_version() -> str:
    try:
        return metadata.version("qmtl-dagmanager")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def _urls(served: Served, config: DagManagerConfig) -> str:
    return (
        f"public=http://{config.public_host}:{served.public_port} "
        f"internal=http://{config.internal_host}:{served.internal_port} "
        f"grpc={config.grpc_host}:{served.grpc_port}"
    )


async def serve_dag_manager(
    config: DagManagerConfig,
    *,
    out: TextIO = sys.stdout,
    alert_down_grace: float = DEFAULT_DOWN_GRACE_S,
) -> int:
    """Serves until SIGTERM/SIGINT; the process's exit status. `alert_down_grace`: seconds a
    backend stays unhealthy before a BackendDown alert (docs/operations/alerts.md)."""
    health = HealthReporter(
        SERVICE,
        instance_id="",
        version=service_version(),
        contract_version=contracts_version.SPOKEN,
    )
    gate = BootGate(
        DAG_MANAGER_SERVICE, always_handler=DagManagerHealth(health), always=HEALTH_RPCS
    )
    serve_config = ServeConfig(
        public_host=config.public_host,
        public_port=config.public_port,
        internal_host=config.internal_host,
        internal_port=config.internal_port,
        grpc_host=config.grpc_host,
        grpc_port=config.grpc_port,
        grace_seconds=config.grace_seconds,
        max_body_bytes=config.max_body_bytes,
    )
    verifier = token_verifier(config.token_secret, config.token_key_id)
    served = Served(gate, verifier, binding(), config=serve_config, health=health)
    process = _DagManagerProcess(config, health, gate, served, out)
    process.alert_down_grace = alert_down_grace
    return await serve_and_boot(served, boot=process.boot, shut_down=process.shut_down)


class _DagManagerProcess:
    """What happens between the listeners accepting and the stop: boot, then shutdown."""

    def __init__(
        self,
        config: DagManagerConfig,
        health: HealthReporter,
        gate: BootGate,
        served: Served,
        out: TextIO,
    ) -> None:
        self.config, self.health, self.gate, self.served, self.out = (
            config,
            health,
            gate,
            served,
            out,
        )
        self.backends: DagManagerBackends | None = None
        self.state: Restart | None = None
        self.alert_down_grace = DEFAULT_DOWN_GRACE_S
        self.down_alerts: BackendDownAlerts | None = None

    async def boot(self) -> None:
        config, served = self.config, self.served
        started = time.perf_counter()
        instance_id = config.instance_id or default_instance_id(served.internal_port)
        self.health.instance_id = f"{instance_id}/{uuid.uuid4().hex[:8]}"
        print(f"qmtl dagmanager: listening {_urls(served, config)}", file=self.out, flush=True)
        source = f"qmtl/dag-manager/{instance_id}"
        if config.backend is Backend.REAL:
            self.backends = real_backends(config, client_id=f"qmtl-dag-manager-{instance_id}")
        else:
            self.backends = memory_backends()
        backends = self.backends
        state = self.state = Restart(SERVICE, instance_id, source)
        steps = boot_steps(config, backends, self.health, state)
        try:
            await run_boot(steps, logger=_boot_log, policy=BootPolicy())
        except Exception as exc:
            print(f"qmtl dagmanager: error: {exc}", file=sys.stderr, flush=True)
            raise
        assert state.relay is not None  # the drain step made it
        handler = DagManagerHandler(
            backends.store.value, backends.topics.value, state.relay, source=source
        )
        state.relay.start()
        self.gate.open(handler)
        self.health.mark_booted()
        self.down_alerts = BackendDownAlerts(
            self.health,
            backends.bus.value,
            service=SERVICE,
            instance_id=instance_id,
            source=source,
            grace_s=self.alert_down_grace,
        )
        self.down_alerts.start()
        crashed = state.restarted is not None and state.restarted.crash_detected
        served.metrics.add_source("outbox", outbox_backlog_source(backends.store.value))
        observe_boot(SERVICE, time.perf_counter() - started, crash_detected=crashed)
        print(
            f"qmtl dagmanager: ready in {round((time.perf_counter() - started) * 1000)} ms "
            f"{_urls(served, config)} crash_detected={'true' if crashed else 'false'}",
            file=self.out,
            flush=True,
        )

    async def shut_down(self) -> None:
        if self.down_alerts is not None:
            await self.down_alerts.stop()
        if self.backends is not None and self.state is not None:
            await shut_down(self.backends, self.state)
        _log.info("stopped")
