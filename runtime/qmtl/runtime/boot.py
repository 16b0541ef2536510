"""Building blocks of a service's `initialize_and_recover()` (docs/operations/boot.md).

A boot is an ordered list of named async steps (`BootStep`), run by `run_boot`: each is
logged with its duration (`boot: <step> ok in 12 ms`) and retried with capped backoff until it
succeeds, so a backend that is down at start makes the process wait and retry, never exit
and crash-loop; the process meanwhile serves /health (200) and /ready (503, naming the
backend). Only the errors a boot declares fatal (a configuration no retry can fix) end it.

Around the steps:
- `Backend`: a connection its step opens; its health check says "not connected" with the
  last error until then, and pings the backend afterwards.
- `BootGate`: stands in for the handler while booting, answering rpcs E_UNAVAILABLE
  (retryable) until `open(handler)`, except the health rpcs, which answer throughout.
- `ShutdownMarker`: the clean-shutdown marker. Written at boot, removed at clean shutdown;
  found at boot, the previous run crashed. It lives in the service's own backend (a
  stateless process keeps nothing on local disk), keyed by a stable instance id.
- `restarted_event`: the ServiceRestarted event closing every boot.
- `serve_and_boot`: a process's life: listen, boot while serving, stop, shut down, exit status.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from qmtl.events.v1 import event_pb2, service_events_pb2
from qmtl.runtime import metrics
from qmtl.runtime.auth import HmacTokenVerifier
from qmtl.runtime.errors import QmtlError
from qmtl.runtime.events import make_event
from qmtl.runtime.health import Degraded
from qmtl.runtime.spec import RpcSpec, ServiceSpec

T = TypeVar("T")

_log = logging.getLogger(__name__)

# The first retry comes quickly (a backend starting alongside the service), later ones back
# off to the cap: a backend down for an hour costs a log line per half minute, not a flood.
DEFAULT_INITIAL_BACKOFF_S = 0.5
DEFAULT_MAX_BACKOFF_S = 30.0


def default_instance_id(port: int | None) -> str:
    """`hostname:port`: stable across restarts of one deployment slot, unique per host."""
    host = socket.gethostname()
    return host if port is None else f"{host}:{port}"


@dataclass(frozen=True, slots=True)
class BootStep:
    name: str
    run: Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class BootPolicy:
    """How `run_boot` retries a failed step; `fatal` errors end the boot instead."""

    initial_backoff_s: float = DEFAULT_INITIAL_BACKOFF_S
    max_backoff_s: float = DEFAULT_MAX_BACKOFF_S
    fatal: tuple[type[BaseException], ...] = ()

    def __post_init__(self) -> None:
        if not (self.initial_backoff_s > 0 and self.max_backoff_s >= self.initial_backoff_s):
            raise ValueError("backoffs must satisfy 0 < initial_backoff_s <= max_backoff_s")

    def backoff(self, failures: int) -> float:
        """Seconds to wait after `failures` (>= 1) failed attempts of one step."""
        return float(min(self.max_backoff_s, self.initial_backoff_s * 2 ** (failures - 1)))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


async def run_boot(
    steps: Sequence[BootStep],
    *,
    logger: logging.Logger = _log,
    policy: BootPolicy | None = None,
) -> dict[str, float]:
    """Runs `steps` in order, each until it succeeds; returns each step's seconds.

    A failed step is logged (WARNING, the traceback at its first failure only) and retried
    after the policy's backoff; an error of `policy.fatal` is logged and re-raised.
    """
    policy = policy or BootPolicy()
    durations: dict[str, float] = {}
    for step in steps:
        started = time.perf_counter()
        failures = 0
        while True:
            try:
                await step.run()
                break
            except policy.fatal:
                logger.error("boot: %s failed and cannot be retried", step.name)
                raise
            except Exception as exc:
                failures += 1
                delay = policy.backoff(failures)
                logger.warning(
                    "boot: %s failed (attempt %d), retrying in %.1f s: %s",
                    step.name,
                    failures,
                    delay,
                    _first_line(exc),
                    exc_info=failures == 1,
                )
                await asyncio.sleep(delay)
        durations[step.name] = elapsed = time.perf_counter() - started
        metrics.BOOT_STEP_SECONDS.labels(step.name).set(elapsed)
        logger.info("boot: %s ok in %d ms", step.name, round(elapsed * 1000))
    return durations


class NotConnectedError(Exception):
    """A backend's boot step has not connected it (yet)."""


class Backend(Generic[T]):
    """A backend connection opened by a boot step, with its health check.

    `open` makes one connection attempt (the boot retries it); `ping` is the health check of
    the open connection (None: being open is enough, e.g. an in-memory adapter).
    """

    def __init__(
        self,
        name: str,
        adapter: str,
        open: Callable[[], Awaitable[T]],
        *,
        ping: Callable[[T], Awaitable[None]] | None = None,
    ) -> None:
        self.name, self.adapter = name, adapter
        self._open, self._ping = open, ping
        self._value: T | None = None
        self._last_error = "connecting"

    @property
    def connected(self) -> bool:
        return self._value is not None

    @property
    def value(self) -> T:
        if self._value is None:
            raise NotConnectedError(f"{self.name} is not connected: {self._last_error}")
        return self._value

    async def connect(self) -> T:
        if self._value is None:
            try:
                self._value = await self._open()
            except Exception as exc:
                self._last_error = _first_line(exc)
                raise
        return self._value

    def step(self) -> BootStep:
        async def connect() -> None:
            await self.connect()

        return BootStep(f"connect {self.name}", connect)

    async def check(self) -> None:
        """For HealthReporter.add_check: raises until connected, then pings."""
        value = self.value
        if self._ping is not None:
            await self._ping(value)

    def take(self) -> T | None:
        """The connection, forgotten here (for closing it at shutdown); None if never opened."""
        value, self._value = self._value, None
        self._last_error = "closed"
        return value


class _Relayed(Protocol):
    relay: Any  # an OutboxRelay once the boot made it (None before)


def relayed_check(bus: Backend[Any], state: _Relayed) -> Callable[[], Awaitable[None]]:
    """The event bus's health check: connected, and its outbox relay publishing. A relay
    failing drain after drain (the broker is unreachable) is DEGRADED: the service works and
    its events wait in the outbox, published once the broker answers."""

    async def check() -> None:
        await bus.check()
        relay = state.relay
        failures = 0 if relay is None else int(relay.failures)
        if failures:
            raise Degraded(f"the outbox relay failed its last {failures} drain(s)")

    return check


class BootGate:
    """The handler the listeners call: the service's once it has booted, E_UNAVAILABLE before.

    Until `open(handler)`, every rpc answers E_UNAVAILABLE (retryable: clients and the
    Gateway's caller retry) except those named in `always`, which `always_handler` answers
    from the start and after (the health rpcs: what a booting service has to say about itself
    is its health). The listeners bind their methods once, when they start, so the gate is
    built with one forwarding method per rpc of `spec`.
    """

    def __init__(
        self,
        spec: ServiceSpec,
        *,
        always_handler: object | None = None,
        always: Collection[str] = (),
    ) -> None:
        self._spec = spec
        self._handler: object | None = None
        unknown = set(always) - {rpc.name for rpc in spec.rpcs}
        if unknown:
            raise ValueError(f"{spec.full_name} has no rpc {sorted(unknown)}")
        if always and always_handler is None:
            raise ValueError("`always` names rpcs but no always_handler answers them")
        for rpc in spec.rpcs:
            forward = (
                getattr(always_handler, rpc.method) if rpc.name in always else self._forward(rpc)
            )
            setattr(self, rpc.method, forward)

    @property
    def handler(self) -> object | None:
        return self._handler

    def open(self, handler: object) -> None:
        self._handler = handler

    def _forward(self, rpc: RpcSpec[Any, Any]) -> Callable[[Any, Any], Awaitable[Any]]:
        async def forward(request: Any, ctx: Any) -> Any:
            handler = self._handler
            if handler is None:
                raise QmtlError.unavailable(
                    f"{self._spec.full_name} is starting (initialize_and_recover has not "
                    "finished); retry shortly",
                    retry_after=1.0,
                )
            return await getattr(handler, rpc.method)(request, ctx)

        forward.__name__ = rpc.method
        return forward


class ShutdownMarker(Protocol):
    """The clean-shutdown marker of one instance id, in the service's own backend."""

    async def mark_running(self, instance_id: str, *, started_at: float) -> bool:
        """Writes the marker; True when a previous run's marker was still there (a crash)."""
        ...

    async def clear(self, instance_id: str) -> None:
        """Removes the marker (clean shutdown)."""
        ...


class MemoryMarker:
    """The embedded backend's marker: lives and dies with the process, so it never sees a
    crash of an earlier process; it still tells a second boot within one process."""

    def __init__(self) -> None:
        self._running: dict[str, float] = {}

    async def mark_running(self, instance_id: str, *, started_at: float) -> bool:
        crashed = instance_id in self._running
        self._running[instance_id] = started_at
        return crashed

    async def clear(self, instance_id: str) -> None:
        self._running.pop(instance_id, None)


@dataclass(frozen=True, slots=True)
class Recovery:
    """What a boot found and recovered, as ServiceRestarted reports it."""

    crash_detected: bool = False
    replayed_events: int = 0
    recovered_work_items: int = 0
    repaired_resources: int = 0


def restarted_event(
    service: str,
    instance_id: str,
    recovery: Recovery,
    *,
    started_at: float,
    source: str,
    clock: Callable[[], float] = time.time,
) -> event_pb2.Event:
    """The ServiceRestarted event of one boot (subject `services/<service>`), ready to publish.

    Its idempotency key names the boot (instance and start time), so a boot that publishes it
    twice (a retried step) is one restart to a deduplicating consumer."""
    payload = service_events_pb2.ServiceRestarted(
        service=service,
        instance_id=instance_id,
        crash_detected=recovery.crash_detected,
        recovered_work_items=recovery.recovered_work_items,
        replayed_events=recovery.replayed_events,
        repaired_resources=recovery.repaired_resources,
    )
    payload.started_at.FromNanoseconds(int(started_at * 1_000_000_000))
    return make_event(
        "service_restarted",
        payload,
        subject=f"services/{service}",
        idempotency_key=f"service_restarted:{instance_id}:{int(started_at * 1_000_000_000)}",
        source=source,
        clock=clock,
    )


def token_verifier(secret: bytes, key_id: str = "") -> HmacTokenVerifier:
    """The service's verifier of `secret`; without one (development only: the production
    profile refuses to start so), a random secret nobody can sign with, said loudly, since
    every authenticated rpc then answers 401 and that looks like a broken server."""
    if not secret:
        _log.warning(
            "no token secret (--token-secret / QMTL_TOKEN_SECRET): every authenticated rpc "
            "will answer 401"
        )
        secret = secrets.token_bytes(32)
    return HmacTokenVerifier({key_id: secret})


class Listening(Protocol):
    """What serve_and_boot needs of qmtl.runtime.serve.Served."""

    async def run(self) -> None: ...

    async def wait_started(self) -> None: ...

    def stop(self) -> None: ...


async def serve_and_boot(
    served: Listening,
    *,
    boot: Callable[[], Awaitable[None]],
    shut_down: Callable[[], Awaitable[None]],
) -> int:
    """A service process's life: listen, then boot while serving, until SIGTERM/SIGINT.

    `boot` runs once the listeners accept (the health routes answer meanwhile); an error it
    raises has been reported by it and stops serving (exit status 1). After serving stops, a
    boot still running is cancelled and `shut_down` runs. Returns the exit status: 0 after a
    clean stop. A listener that cannot start raises serve's ServeError naming it.
    """
    serving = asyncio.create_task(served.run(), name="qmtl-serve")
    try:
        await served.wait_started()
    except Exception:
        await serving  # raises what stopped it, which names the listener and address
        raise

    async def booting_then_stop_on_failure() -> None:
        try:
            await boot()
        except Exception:
            served.stop()
            raise

    booting = asyncio.create_task(booting_then_stop_on_failure(), name="qmtl-boot")
    try:
        await serving
    finally:
        booting.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await booting
        await shut_down()
    if not booting.cancelled() and booting.exception() is not None:
        return 1
    return 0
