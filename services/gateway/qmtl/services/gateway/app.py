"""The `qmtl gateway` process: one GatewayHandler on the public and internal HTTP listeners.

`serve_gateway(config, link)` binds the listeners first (so /health and /ready answer while
the backends connect), prints the bound ports, runs initialize_and_recover() (boot.py), then
starts the relay and the SubmitWorker and opens the rpcs; it returns 0 after SIGTERM/SIGINT
once the listeners, the worker, the relay and the backends have stopped and the clean-shutdown
marker is removed. `link` is how the DAG Manager is reached (gRPC, or embedded: the composition
root qmtl.cli.gateway decides). docs/operations/boot.md.
"""

from __future__ import annotations

import logging
import sys
import time
import uuid
from importlib import metadata
from typing import TextIO

from qmtl.gateway.v1 import gateway_service_http, health_messages_pb2
from qmtl.gateway.v1.gateway_service_handler import GATEWAY_SERVICE, GatewayServiceBase
from qmtl.runtime import contracts_version
from qmtl.runtime.alerts.backend_down import BackendDownAlerts
from qmtl.runtime.auth import TokenVerifier
from qmtl.runtime.boot import (
    BootGate,
    BootPolicy,
    default_instance_id,
    run_boot,
    serve_and_boot,
    token_verifier,
)
from qmtl.runtime.callbacks.delivery import CallbackDeliverer, make_client, static_key
from qmtl.runtime.callbacks.signing import SigningKey
from qmtl.runtime.eventbus import EventBus
from qmtl.runtime.gen import Context
from qmtl.runtime.health import DEFAULT_DOWN_GRACE_S, HealthReporter
from qmtl.runtime.http.server import load_document
from qmtl.runtime.metrics import observe_boot, outbox_backlog_source, queue_depth_source
from qmtl.runtime.restart import Restart
from qmtl.runtime.serve import ServeConfig, Served, ServiceBinding
from qmtl.runtime.workqueue import DurabilityError

from .boot import (
    DagManagerLink,
    GatewayBackends,
    boot_steps,
    gateway_backends,
    shut_down,
)
from .config import SERVICE, GatewayConfig
from .dashboard import DashboardAccess, ViewerTokens, dashboard_routes, resolve_access
from .handler import GatewayHandler
from .waiting import Completions
from .worker import SubmitWorker

_log = logging.getLogger("qmtl.services.gateway.app")
_boot_log = logging.getLogger("qmtl.services.gateway.boot")

HEALTH_RPCS = ("GetHealth", "GetHealthDetail")


def binding() -> ServiceBinding:
    """The Gateway's generated routes and OpenAPI documents (no gRPC listener: the SDK and
    runners call it over HTTP)."""
    return ServiceBinding(
        name=GATEWAY_SERVICE.full_name,
        public_routes=gateway_service_http.gateway_service_public_routes,
        internal_routes=gateway_service_http.gateway_service_internal_routes,
        public_openapi=load_document("qmtl.gateway.v1", "openapi/gateway.public.openapi.json"),
        internal_openapi=load_document("qmtl.gateway.v1", "openapi/gateway.internal.openapi.json"),
    )


class GatewayHealth(GatewayServiceBase):
    """GetHealth (public: the listener clears the internal_only fields) and GetHealthDetail
    from the HealthReporter, answered from the first moment the listeners accept."""

    def __init__(self, health: HealthReporter) -> None:
        self._health = health

    async def get_health(
        self, request: health_messages_pb2.GetHealthRequest, ctx: Context
    ) -> health_messages_pb2.GetHealthResponse:
        return health_messages_pb2.GetHealthResponse(health=await self._health.snapshot())

    async def get_health_detail(
        self, request: health_messages_pb2.GetHealthDetailRequest, ctx: Context
    ) -> health_messages_pb2.GetHealthDetailResponse:
        return health_messages_pb2.GetHealthDetailResponse(health=await self._health.snapshot())


def service_version() -> str:
    try:
        return metadata.version("qmtl-gateway")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def _urls(served: Served, config: GatewayConfig) -> str:
    return (
        f"public=http://{config.public_host}:{served.public_port} "
        f"internal=http://{config.internal_host}:{served.internal_port}"
    )


async def serve_gateway(
    config: GatewayConfig,
    link: DagManagerLink,
    *,
    out: TextIO = sys.stdout,
    dashboard: DashboardAccess = DashboardAccess.AUTO,
    alert_down_grace: float = DEFAULT_DOWN_GRACE_S,
) -> int:
    """Serves until SIGTERM/SIGINT; the process's exit status. `dashboard`: who may read the
    /dashboard page on the public listener (docs/operations/dashboard.md); `alert_down_grace`:
    seconds a backend stays unhealthy before a BackendDown alert (docs/operations/alerts.md)."""
    health = HealthReporter(
        SERVICE,
        instance_id="",
        version=service_version(),
        contract_version=contracts_version.SPOKEN,
    )
    gate = BootGate(GATEWAY_SERVICE, always_handler=GatewayHealth(health), always=HEALTH_RPCS)
    serve_config = ServeConfig(
        public_host=config.public_host,
        public_port=config.public_port,
        internal_host=config.internal_host,
        internal_port=config.internal_port,
        grpc_port=None,
        grace_seconds=config.grace_seconds,
        max_body_bytes=config.max_body_bytes,
    )
    verifier: TokenVerifier = token_verifier(config.token_secret, config.token_key_id)
    access = resolve_access(dashboard, config.profile)
    viewer = ViewerTokens() if access is DashboardAccess.ANONYMOUS else None
    if viewer is not None:
        verifier = viewer.verifier(verifier)
    served = Served(
        gate,
        verifier,
        binding(),
        config=serve_config,
        health=health,
        public_extra_routes=dashboard_routes(access, viewer),
    )
    process = _GatewayProcess(config, link, health, gate, served, out)
    process.alert_down_grace = alert_down_grace
    return await serve_and_boot(served, boot=process.boot, shut_down=process.shut_down)


class _GatewayProcess:
    """What happens between the listeners accepting and the stop: boot, then shutdown."""

    def __init__(
        self,
        config: GatewayConfig,
        link: DagManagerLink,
        health: HealthReporter,
        gate: BootGate,
        served: Served,
        out: TextIO,
    ) -> None:
        self.config, self.link, self.health, self.gate = config, link, health, gate
        self.served, self.out = served, out
        self.backends: GatewayBackends | None = None
        self.state: Restart | None = None
        self.worker: SubmitWorker | None = None
        self.callbacks: CallbackDeliverer | None = None
        self.alert_down_grace = DEFAULT_DOWN_GRACE_S
        self.down_alerts: BackendDownAlerts | None = None

    async def boot(self) -> None:
        config, served = self.config, self.served
        started = time.perf_counter()
        instance_id = config.instance_id or default_instance_id(served.internal_port)
        self.health.instance_id = f"{instance_id}/{uuid.uuid4().hex[:8]}"
        print(f"qmtl gateway: listening {_urls(served, config)}", file=self.out, flush=True)
        backends = self.backends = gateway_backends(
            config, self.link, client_id=f"qmtl-gateway-{instance_id}"
        )
        state = self.state = Restart(SERVICE, instance_id, config.settings.source)
        steps = boot_steps(config, backends, self.health, state)
        try:
            await run_boot(steps, logger=_boot_log, policy=BootPolicy(fatal=(DurabilityError,)))
        except Exception as exc:
            print(f"qmtl gateway: error: {exc}", file=sys.stderr, flush=True)
            raise
        relay = state.relay
        assert relay is not None  # the drain step made it
        store, queue = backends.store.value, backends.queue.value
        caller = backends.dag_manager.value
        completions = Completions()
        self.worker = SubmitWorker(
            store,
            queue,
            caller,
            worker_id=instance_id,
            callbacks=self._callbacks(backends.bus.value),
            settings=config.settings,
            notify=relay.notify,
            completions=completions,
            sweep_interval=config.settings.stranded_after,
        )
        handler = GatewayHandler(
            store,
            queue,
            caller,
            settings=config.settings,
            health=self.health,
            notify=relay.notify,
            completions=completions,
        )
        relay.start()
        self.worker.start()
        self.gate.open(handler)
        self.health.mark_booted()
        self.down_alerts = BackendDownAlerts(
            self.health,
            backends.bus.value,
            service=SERVICE,
            instance_id=instance_id,
            source=config.settings.source,
            grace_s=self.alert_down_grace,
        )
        self.down_alerts.start()
        crashed = state.restarted is not None and state.restarted.crash_detected
        served.metrics.add_source("workqueue", queue_depth_source(queue, config.queue_name))
        served.metrics.add_source("outbox", outbox_backlog_source(store.outbox))
        observe_boot(SERVICE, time.perf_counter() - started, crash_detected=crashed)
        print(
            f"qmtl gateway: ready in {round((time.perf_counter() - started) * 1000)} ms "
            f"{_urls(served, config)} crash_detected={'true' if crashed else 'false'}",
            file=self.out,
            flush=True,
        )

    def _callbacks(self, bus: EventBus) -> CallbackDeliverer | None:
        config = self.config
        if not config.callback_secret:
            # Their jobs stay queued (retried, then dead-lettered) until a Gateway with a
            # secret takes them; said once, as a strategy's callback_url looks accepted.
            _log.warning(
                "no callback secret (--callback-secret / QMTL_CALLBACK_SECRET): strategy "
                "callbacks are not delivered by this instance"
            )
            return None
        key = SigningKey(config.callback_key_id, config.callback_secret)
        self.callbacks = CallbackDeliverer(
            make_client(),
            static_key(key),
            bus,
            allowed_hosts=config.settings.callback_allowed_hosts,
            source=config.settings.source,
            instance_id=config.instance_id or default_instance_id(self.served.internal_port),
        )
        return self.callbacks

    async def shut_down(self) -> None:
        if self.down_alerts is not None:
            await self.down_alerts.stop()
        if self.worker is not None:
            await self.worker.stop()  # the job in hand finishes before the backends close
        if self.callbacks is not None:
            await self.callbacks.client.aclose()
        if self.backends is not None and self.state is not None:
            await shut_down(self.backends, self.state)
        _log.info("stopped")
