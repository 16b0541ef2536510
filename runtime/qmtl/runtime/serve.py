"""One process serving a service on its three listeners: public HTTP, internal HTTP and gRPC.

`serve(handler, verifier, service)` runs the public app, the internal app and a grpc.aio server
on ONE event loop, all three calling the SAME handler instance, until SIGINT/SIGTERM (or
`Served.stop()`); then it stops accepting everywhere, lets calls in flight finish within the
grace period and returns, so `asyncio.run(serve(...))` exits 0. The listeners are uvicorn
`Server` objects over sockets bound here (port 0 = any free port; `Served` reports the bound
ports), which lets a bind failure surface as a typed ServeError naming the listener instead of
uvicorn's `sys.exit`. Given a HealthReporter, both HTTP listeners also serve /health and
/ready (health_routes). The internal listener serves /metrics (Prometheus text, metrics_route;
docs/operations/metrics.md), every call measured by the RequestMetrics interceptor put first
in the chain. docs/operations/serving.md describes the options.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import signal
import socket
import threading
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import uvicorn
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from qmtl.common.v1 import health_pb2
from qmtl.runtime import codec
from qmtl.runtime.auth import TokenVerifier
from qmtl.runtime.errors import QmtlError
from qmtl.runtime.health import PUBLIC_VIEW, HealthReporter
from qmtl.runtime.http import server as http_server
from qmtl.runtime.http.limits import resolve_max_body_bytes
from qmtl.runtime.interceptors import RequestMetrics
from qmtl.runtime.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from qmtl.runtime.metrics import MetricsEndpoint, health_source
from qmtl.runtime.pipeline import Interceptor
from qmtl.runtime.redact import public_message

if TYPE_CHECKING:
    import grpc  # imported when a gRPC listener starts: HTTP-only serving needs no grpcio

logger = logging.getLogger("qmtl.runtime.serve")

LOOPBACK = "127.0.0.1"
DEFAULT_PUBLIC_PORT = 8080
DEFAULT_INTERNAL_PORT = 8081
DEFAULT_GRPC_PORT = 50051
# Long enough for any call within the default client timeouts to finish; short enough for an
# orchestrator's own kill timeout (Kubernetes: 30 s) to leave room after it.
DEFAULT_GRACE_SECONDS = 10.0
HEALTH_PATH = "/health"
READY_PATH = "/ready"
METRICS_PATH = "/metrics"
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class ServeConfigError(ValueError):
    """A serve option that cannot be used (a port out of range, a negative grace...)."""


class ServeError(RuntimeError):
    """A listener could not start (its address is taken, say), or serving stopped before it had."""


class RoutesFactory(Protocol):
    """A generated `<svc>_public_routes` / `<svc>_internal_routes` function."""

    def __call__(
        self, handler: Any, verifier: TokenVerifier, *, interceptors: Sequence[Interceptor] = ...
    ) -> Sequence[BaseRoute]: ...


class GrpcAdder(Protocol):
    """A generated `add_<svc>_to_server` function."""

    def __call__(
        self,
        server: grpc.aio.Server,
        handler: Any,
        verifier: TokenVerifier,
        *,
        interceptors: Sequence[Interceptor] = ...,
    ) -> object: ...  # the generated function returns its adapter


@dataclass(frozen=True, slots=True)
class ServiceBinding:
    """The generated pieces of one service, as serve mounts them on each listener.

    E.g. for GatewayService: `public_routes=gateway_service_http.gateway_service_public_routes`,
    `internal_routes=...internal_routes`, `add_to_grpc_server=gateway_service_grpc.
    add_gateway_service_to_server`, and the OpenAPI documents each HTTP app serves at
    /openapi.json (and renders at /docs): `http.server.load_document("qmtl.gateway.v1",
    "openapi/gateway.public.openapi.json")`. A piece left None is a listener not served.
    """

    name: str
    public_routes: RoutesFactory | None = None
    internal_routes: RoutesFactory | None = None
    add_to_grpc_server: GrpcAdder | None = None
    public_openapi: bytes | None = None
    internal_openapi: bytes | None = None


def _check_port(name: str, port: int | None) -> None:
    if port is None:
        return
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ServeConfigError(
            f"{name} must be a TCP port 0-65535 (0: any free port), got {port!r}"
        )


@dataclass(frozen=True, slots=True)
class ServeConfig:
    """Where each listener binds and how serving stops (docs/operations/serving.md).

    A port of 0 binds any free port (Served reports it); None leaves that listener off.
    Every host defaults to loopback: exposing a listener is a deliberate choice, and the
    internal and gRPC listeners carry every rpc, writes and admin ones included.
    """

    public_host: str = LOOPBACK
    public_port: int | None = DEFAULT_PUBLIC_PORT
    internal_host: str = LOOPBACK
    internal_port: int | None = DEFAULT_INTERNAL_PORT
    grpc_host: str = LOOPBACK
    grpc_port: int | None = DEFAULT_GRPC_PORT
    grace_seconds: float = DEFAULT_GRACE_SECONDS
    json_emit_defaults: bool = False
    max_body_bytes: int | None = None
    access_log: bool = False
    handle_signals: bool = True

    def __post_init__(self) -> None:
        _check_port("public_port", self.public_port)
        _check_port("internal_port", self.internal_port)
        _check_port("grpc_port", self.grpc_port)
        grace = self.grace_seconds
        if (
            isinstance(grace, bool)
            or not isinstance(grace, int | float)
            or not math.isfinite(grace)
        ):
            raise ServeConfigError(f"grace_seconds must be a finite number, got {grace!r}")
        if grace < 0:
            raise ServeConfigError(f"grace_seconds must not be negative, got {grace!r}")
        # Read here so a bad QMTL_HTTP_MAX_BODY_BYTES fails before anything binds.
        resolve_max_body_bytes(self.max_body_bytes)


class Listener(uvicorn.Server):
    """A uvicorn Server that leaves signals to serve() and tells it when it accepts."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.accepting = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # uvicorn would take SIGINT/SIGTERM for itself and re-raise them once stopped; serve()
        # handles them once for all three listeners.
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.accepting.set()


class _CutOff:
    """Answers a call the grace period cut off with 503 E_UNAVAILABLE instead of a bare 500.

    uvicorn cancels the calls still running when the grace period ends and, for a response not
    yet started, sends a plain-text 500. A cut-off call is the server going away, which a client
    may retry elsewhere, so it gets the retryable ErrorDetail of every other refusal. Costs a
    request nothing but a try block: the response's start is only attempted on cancellation.
    """

    def __init__(
        self,
        app: ASGIApp,
        default: codec.Encoding,
        grace_seconds: float,
        stopping: Callable[[], bool],
    ) -> None:
        self.app, self.default, self.grace_seconds = app, default, grace_seconds
        self.stopping = stopping

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        except asyncio.CancelledError:
            # Only the stop cancels calls; any other cancellation is not ours to answer.
            if scope["type"] != "http" or not self.stopping():
                raise
            try:
                await self._answer(scope, receive, send)
            except Exception:
                raise asyncio.CancelledError from None  # the response had started: just end
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()  # answered: the cancellation has done its job

    async def _answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = QmtlError.unavailable(
            f"the server stopped before the call finished (grace period {self.grace_seconds}s)"
        )
        accept = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"accept"), None)
        encoding = codec.negotiate_for_error(accept, default=self.default)
        await Response(
            codec.encode(error.to_proto(), encoding),
            status_code=error.http_status,
            headers={"Connection": "close"},
            media_type=encoding.media_type,
        )(scope, receive, send)


_HEALTH_FIELDS = health_pb2.ServiceHealth.DESCRIPTOR.fields_by_name


def health_routes(reporter: HealthReporter, *, public: bool) -> list[BaseRoute]:
    """/health (liveness) and /ready (readiness) over `reporter`, anonymous, GET only.

    /health answers 200 whenever the process serves, without checking a backend (an
    orchestrator restarts a process that fails it; a backend outage must not do that). /ready
    runs the checks: 200 when ready, 503 otherwise, with the ServiceHealth as body. A public
    listener clears the internal_only fields (components, instance, versions), so the
    anonymous world learns the state and readiness and nothing it could use to aim. JSON
    unless `Accept` asks for protobuf, with default values written (`"ready": false`).
    """

    def answer(
        request: Request, health: health_pb2.ServiceHealth, status: int, *, hide: bool
    ) -> Response:
        if hide:
            health = public_message(health, PUBLIC_VIEW)
        accept = request.headers.get("accept")
        try:
            encoding = codec.negotiate(accept, default=codec.Encoding.JSON)
        except QmtlError as exc:
            return http_server.error_response(exc, accept, default=codec.Encoding.JSON)
        body = codec.encode(health, encoding, emit_defaults=True)
        if hide and encoding is codec.Encoding.JSON:
            # Written with defaults so `"ready": false` shows; the cleared fields' empty
            # values would still name them, so they go.
            mapped = json.loads(body)
            for name in PUBLIC_VIEW.clear:
                mapped.pop(_HEALTH_FIELDS[name].json_name, None)
            body = json.dumps(mapped, separators=(",", ":")).encode()
        return Response(
            body,
            status_code=status,
            media_type=encoding.media_type,
            headers={"Cache-Control": "no-store"},
        )

    async def liveness(request: Request) -> Response:
        return answer(request, reporter.liveness(), 200, hide=True)

    async def readiness(request: Request) -> Response:
        health = await reporter.snapshot()
        return answer(request, health, 200 if health.ready else 503, hide=public)

    return [
        Route(HEALTH_PATH, liveness, methods=["GET"], name="health"),
        Route(READY_PATH, readiness, methods=["GET"], name="ready"),
    ]


def metrics_route(endpoint: MetricsEndpoint) -> BaseRoute:
    """/metrics: the Prometheus text format of `endpoint`, anonymous, GET only (internal
    listener only: metric labels name rpcs and backends, nothing for the public world)."""

    async def scrape(request: Request) -> Response:
        return Response(
            await endpoint.render(),
            media_type=METRICS_CONTENT_TYPE,
            headers={"Cache-Control": "no-store"},
        )

    return Route(METRICS_PATH, scrape, methods=["GET"], name="metrics")


def bind_listener(name: str, host: str, port: int) -> socket.socket:
    """A listening socket for the listener `name`, or ServeError naming it, host and port
    (a port in use, an address not on this machine) instead of an OSError traceback."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # A restarted server may rebind while old connections sit in TIME_WAIT; SO_REUSEADDR
        # does not let two live servers share the port (that would be SO_REUSEPORT).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ServeError(f"the {name} listener cannot bind {host}:{port}: {exc}") from exc
    sock.setblocking(False)
    return sock


def _port_of(sock: socket.socket) -> int:
    port: int = sock.getsockname()[1]
    return port


class Served:
    """A service on its listeners: `await run()` serves until `stop()` or SIGINT/SIGTERM.

    Ports are known once `await wait_started()` returns (with port 0, the ones bound).
    """

    def __init__(
        self,
        handler: object,
        verifier: TokenVerifier,
        service: ServiceBinding,
        *,
        config: ServeConfig | None = None,
        interceptors: Sequence[Interceptor] = (),
        health: HealthReporter | None = None,
        public_extra_routes: Sequence[BaseRoute] = (),
    ) -> None:
        self.handler = handler
        self.health = health
        # Routes beside the generated ones on the public listener (GET only, as every public
        # route): the Gateway's /dashboard page and its static files.
        self.public_extra_routes = tuple(public_extra_routes)
        self.verifier = verifier
        self.service = service
        self.config = ServeConfig() if config is None else config
        # RequestMetrics first: it measures every call, including what later interceptors refuse.
        self.interceptors = (RequestMetrics(), *interceptors)
        # /metrics on the internal listener; a service adds its scrape sources (queue depth...).
        self.metrics = MetricsEndpoint()
        if health is not None:
            self.metrics.add_source("health", health_source(health))
        self._ports: dict[str, int] = {}
        self._started = asyncio.Event()
        self._stop = asyncio.Event()
        self._done = asyncio.Event()
        self._failure: BaseException | None = None
        self._ran = False

    # -- what callers read -------------------------------------------------------------------

    @property
    def public_port(self) -> int | None:
        """The bound public port; None when that listener is off. Valid after wait_started."""
        return self._port("public", self.config.public_port)

    @property
    def internal_port(self) -> int | None:
        return self._port("internal", self.config.internal_port)

    @property
    def grpc_port(self) -> int | None:
        return self._port("grpc", self.config.grpc_port)

    def _port(self, name: str, configured: int | None) -> int | None:
        if configured is None:
            return None
        if not self._started.is_set():
            raise ServeError(f"the {name} port is known once serving has started")
        return self._ports.get(name)

    async def wait_started(self) -> None:
        """Returns once every listener accepts; ServeError if serving ended before that."""
        started = asyncio.ensure_future(self._started.wait())
        done = asyncio.ensure_future(self._done.wait())
        try:
            await asyncio.wait({started, done}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            started.cancel()
            done.cancel()
        if not self._started.is_set():
            raise ServeError("serving stopped before every listener started") from self._failure

    def stop(self) -> None:
        """Asks for a graceful stop: as SIGTERM does. Safe to call more than once."""
        self._stop.set()

    async def wait_stopping(self) -> None:
        """Returns once a stop was asked for (signal or stop()).

        For handlers holding a call open (a long poll): ending it early lets the stop finish
        well within the grace period.
        """
        await self._stop.wait()

    # -- serving -----------------------------------------------------------------------------

    def _apps(self) -> tuple[http_server.QmtlApp | None, http_server.QmtlApp | None]:
        cfg, svc = self.config, self.service
        options: dict[str, Any] = {
            "max_body_bytes": cfg.max_body_bytes,
            "json_emit_defaults": cfg.json_emit_defaults,
        }
        public = internal = None
        if cfg.public_port is not None and svc.public_routes is not None:
            routes = svc.public_routes(self.handler, self.verifier, interceptors=self.interceptors)
            routes = [*self._health_routes(public=True), *self.public_extra_routes, *routes]
            public = http_server.create_public_app(
                routes, openapi=svc.public_openapi, title=f"{svc.name} (public)", **options
            )
        if cfg.internal_port is not None and svc.internal_routes is not None:
            routes = svc.internal_routes(
                self.handler, self.verifier, interceptors=self.interceptors
            )
            routes = [*self._health_routes(public=False), metrics_route(self.metrics), *routes]
            internal = http_server.create_internal_app(
                routes, openapi=svc.internal_openapi, title=f"{svc.name} (internal)", **options
            )
        return public, internal

    def _health_routes(self, *, public: bool) -> list[BaseRoute]:
        return [] if self.health is None else health_routes(self.health, public=public)

    def _listener(self, app: http_server.QmtlApp, default: codec.Encoding) -> Listener:
        config = uvicorn.Config(
            _CutOff(app, default, self.config.grace_seconds, self._stop.is_set),
            lifespan="off",  # the handler's resources are the caller's, around serve()
            log_config=None,  # logging is the application's to configure
            access_log=self.config.access_log,
            timeout_graceful_shutdown=math.ceil(self.config.grace_seconds),
            server_header=False,
        )
        return Listener(config)

    def _grpc_server(self) -> grpc.aio.Server | None:
        cfg, svc = self.config, self.service
        if cfg.grpc_port is None or svc.add_to_grpc_server is None:
            return None
        import grpc  # the `grpc` extra, needed only for this listener

        limit = resolve_max_body_bytes(cfg.max_body_bytes)
        server = grpc.aio.server(
            options=[
                # Off: with SO_REUSEPORT a second server would "bind" a taken port silently.
                ("grpc.so_reuseport", 0),
                # The same bound as an HTTP body (docs/operations/http.md), not gRPC's 4 MiB.
                ("grpc.max_receive_message_length", limit),
            ]
        )
        svc.add_to_grpc_server(server, self.handler, self.verifier, interceptors=self.interceptors)
        address = f"{cfg.grpc_host}:{cfg.grpc_port}"
        try:
            port = server.add_insecure_port(address)
        except RuntimeError as exc:
            raise ServeError(f"the grpc listener cannot bind {address}: {exc}") from exc
        if port == 0:  # older grpcio report a failed bind this way
            raise ServeError(f"the grpc listener cannot bind {address}")
        self._ports["grpc"] = port
        return server

    async def run(self) -> None:
        """Serves until stop() or SIGINT/SIGTERM, then shuts down gracefully and returns."""
        if self._ran:
            raise ServeError("a Served runs once; make another to serve again")
        self._ran = True
        try:
            await self._run()
        except BaseException as exc:
            self._failure = exc
            raise
        finally:
            self._done.set()

    async def _run(self) -> None:
        cfg = self.config
        public_app, internal_app = self._apps()
        sockets: list[tuple[str, socket.socket, Listener]] = []
        try:
            for name, app, host, port, default in (
                ("public", public_app, cfg.public_host, cfg.public_port, codec.Encoding.JSON),
                (
                    "internal",
                    internal_app,
                    cfg.internal_host,
                    cfg.internal_port,
                    codec.Encoding.PROTOBUF,
                ),
            ):
                if app is not None and port is not None:
                    sock = bind_listener(name, host, port)
                    self._ports[name] = _port_of(sock)
                    sockets.append((name, sock, self._listener(app, default)))
            grpc_server = self._grpc_server()
            if grpc_server is not None:
                await grpc_server.start()
        except BaseException:
            for _, sock, _listener in sockets:
                sock.close()  # nothing stays bound when serving cannot start
            raise
        tasks = [
            asyncio.create_task(listener.serve(sockets=[sock]), name=f"qmtl-serve-{name}")
            for name, sock, listener in sockets
        ]
        listeners = [listener for _, _, listener in sockets]
        with self._signals():
            try:
                await self._until_stopped(listeners, tasks)
            finally:
                await self._shut_down(listeners, tasks, grpc_server)

    async def _until_stopped(
        self, listeners: list[Listener], tasks: list[asyncio.Task[None]]
    ) -> None:
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            accepting = asyncio.ensure_future(
                asyncio.gather(*(listener.accepting.wait() for listener in listeners))
            )
            # A listener task that ends on its own (its startup failed) ends serving too.
            pending: set[asyncio.Future[Any]] = {stop, accepting, *tasks}
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if accepting in done:
                self._started.set()
                logger.info("serving %s on %s", self.service.name, self._describe())
                done, pending = await asyncio.wait(
                    {stop, *tasks}, return_when=asyncio.FIRST_COMPLETED
                )
            accepting.cancel()
            for task in tasks:
                if task in done:
                    task.result()  # re-raises what stopped it
                    raise ServeError("an HTTP listener stopped before serve() was asked to")
        finally:
            stop.cancel()

    def _describe(self) -> str:
        cfg = self.config
        hosts = {"public": cfg.public_host, "internal": cfg.internal_host, "grpc": cfg.grpc_host}
        return ", ".join(f"{name} {hosts[name]}:{port}" for name, port in self._ports.items())

    async def _shut_down(
        self,
        listeners: list[Listener],
        tasks: list[asyncio.Task[None]],
        grpc_server: grpc.aio.Server | None,
    ) -> None:
        # All listeners stop accepting at once; each then gives its calls in flight the grace
        # period, so the whole stop takes the grace period at most, not one per listener.
        logger.info("stopping %s (grace %.1fs)", self.service.name, self.config.grace_seconds)
        # Also when run() was cancelled or a listener failed: wait_stopping() must return.
        self._stop.set()
        for listener in listeners:
            listener.should_exit = True
        stopping: list[Any] = list(tasks)
        if grpc_server is not None:
            stopping.append(grpc_server.stop(self.config.grace_seconds))
        results = await asyncio.gather(*stopping, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, asyncio.CancelledError):
                logger.error("a listener failed while stopping", exc_info=result)
        logger.info("stopped %s", self.service.name)

    @contextlib.contextmanager
    def _signals(self) -> Generator[None, None, None]:
        if (
            not self.config.handle_signals
            or threading.current_thread() is not threading.main_thread()
        ):
            yield
            return
        loop = asyncio.get_running_loop()
        # remove_signal_handler resets to the default, not to what was there before serve().
        previous = {sig: signal.getsignal(sig) for sig in _SIGNALS}
        for sig in _SIGNALS:
            loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            yield
        finally:
            for sig, handler in previous.items():
                loop.remove_signal_handler(sig)
                if handler is not None:  # None: not installed from Python, nothing to put back
                    signal.signal(sig, handler)

    def _on_signal(self, sig: signal.Signals) -> None:
        logger.info("%s received: stopping gracefully", sig.name)
        self.stop()


async def serve(
    handler: object,
    verifier: TokenVerifier,
    service: ServiceBinding,
    *,
    config: ServeConfig | None = None,
    interceptors: Sequence[Interceptor] = (),
    started: Callable[[Served], None] | None = None,
    health: HealthReporter | None = None,
) -> None:
    """Serves `service` from `handler` on its listeners until SIGINT/SIGTERM; see Served.

    `started` is called once every listener accepts, with the Served (ports, stop()).
    `health` adds /health and /ready to both HTTP listeners (health_routes).
    """
    served = Served(
        handler, verifier, service, config=config, interceptors=interceptors, health=health
    )
    if started is None:
        await served.run()
        return
    runner = asyncio.create_task(served.run())
    try:
        await served.wait_started()
        started(served)
    except BaseException:
        served.stop()
        with contextlib.suppress(BaseException):
            await runner
        raise
    await runner
