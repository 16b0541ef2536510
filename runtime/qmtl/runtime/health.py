"""A service's health: one check per backend, folded into a qmtl.common.v1.ServiceHealth.

Each component is a named async check (ping Redis, ask Neo4j, ...) that returns when the
backend answers, raises `Degraded` when it answers but not fully, and raises anything else
when it does not; a check that runs past its timeout counts as not answering. A failing
required component is DOWN and makes the service not ready; a failing optional one is only
DEGRADED. The service state is the worst component state, and `ready` also waits for the
boot (`mark_booted`). docs/operations/boot.md ("Health").

A snapshot runs every check concurrently and is reused for `max_age` seconds, so a probe
storm on the anonymous /ready route costs the backends one round of checks per interval.
Transport-neutral: serve() exposes it as /health and /ready, a handler's GetHealth rpcs read
`snapshot()`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from google.protobuf import descriptor

from qmtl.api.v1 import visibility_pb2
from qmtl.common.v1 import health_pb2
from qmtl.runtime.redact import Hidden

_log = logging.getLogger(__name__)

OK = health_pb2.HEALTH_STATE_OK
DEGRADED = health_pb2.HEALTH_STATE_DEGRADED
DOWN = health_pb2.HEALTH_STATE_DOWN

# One backend round trip on a healthy network takes milliseconds; a check still running after
# this is reported as not answering rather than holding up the probe that asked.
DEFAULT_CHECK_TIMEOUT_S = 2.0
# Orchestrators probe every few seconds; one round of checks per second is plenty fresh.
DEFAULT_MAX_AGE_S = 1.0

_SEVERITY = {health_pb2.HEALTH_STATE_UNSPECIFIED: 0, OK: 0, DEGRADED: 1, DOWN: 2}

Check = Callable[[], Awaitable[None]]


def _internal_only(field: descriptor.FieldDescriptor) -> bool:
    return bool(field.GetOptions().Extensions[visibility_pb2.internal_only])


# What a public listener clears from a ServiceHealth: read from the schema's
# (qmtl.api.v1.internal_only) marks, as the generated public views are.
PUBLIC_VIEW = Hidden(
    clear=tuple(f.name for f in health_pb2.ServiceHealth.DESCRIPTOR.fields if _internal_only(f))
)


class Degraded(Exception):
    """Raised by a check whose backend answers but not fully (a schema behind, a fallback)."""


def worst(
    states: list[health_pb2.HealthState.ValueType],
) -> health_pb2.HealthState.ValueType:
    """The most severe of `states`; OK when there are none."""
    return max(states, key=_SEVERITY.__getitem__, default=OK)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


@dataclass(frozen=True, slots=True)
class _Registered:
    name: str
    check: Check
    required: bool
    adapter: str
    timeout_s: float


class HealthReporter:
    def __init__(
        self,
        service: str,
        *,
        instance_id: str,
        version: str,
        contract_version: str,
        clock: Callable[[], float] = time.time,
        max_age_s: float = DEFAULT_MAX_AGE_S,
    ) -> None:
        self.service = service
        self.instance_id = instance_id  # a process learns its port once bound: settable
        self.version = version
        self.contract_version = contract_version
        self._clock = clock
        self._max_age_s = max_age_s
        self._started_at = clock()
        self._checks: dict[str, _Registered] = {}
        self._booted = False
        self._cached: tuple[float, health_pb2.ServiceHealth] | None = None
        self._lock = asyncio.Lock()

    def add_check(
        self,
        name: str,
        check: Check,
        *,
        required: bool = True,
        adapter: str = "",
        timeout_s: float = DEFAULT_CHECK_TIMEOUT_S,
    ) -> None:
        """Adds (or replaces) the component `name`; `adapter` is e.g. `neo4j` or `memory`."""
        if not timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s!r}")
        self._checks[name] = _Registered(name, check, required, adapter, timeout_s)
        self._cached = None

    def mark_booted(self) -> None:
        """initialize_and_recover() has finished: the service may be ready from now on."""
        self._booted = True
        self._cached = None

    @property
    def booted(self) -> bool:
        return self._booted

    def liveness(self) -> health_pb2.ServiceHealth:
        """What /health answers: the process serves. No check runs, so no state is claimed."""
        return health_pb2.ServiceHealth(service=self.service, ready=self._booted)

    async def snapshot(self) -> health_pb2.ServiceHealth:
        """The service's health with every component checked (at most `max_age_s` ago).

        The message is shared with other callers until it expires: copy it to change it."""
        async with self._lock:  # one round of checks at a time; the others reuse it
            now = time.monotonic()
            if self._cached is not None and now - self._cached[0] < self._max_age_s:
                return self._cached[1]
            health = await self._check_all()
            self._cached = (time.monotonic(), health)
            return health

    async def _check_all(self) -> health_pb2.ServiceHealth:
        checks = list(self._checks.values())
        components = await asyncio.gather(*(self._run(check) for check in checks))
        health = health_pb2.ServiceHealth(
            service=self.service,
            instance_id=self.instance_id,
            version=self.version,
            contract_version=self.contract_version,
        )
        health.started_at.FromNanoseconds(int(self._started_at * 1_000_000_000))
        health.components.extend(components)
        health.state = worst([c.state for c in components])
        required_down = any(
            c.state == DOWN for c, r in zip(components, checks, strict=True) if r.required
        )
        health.ready = self._booted and not required_down
        return health

    async def _run(self, registered: _Registered) -> health_pb2.ComponentHealth:
        checked_at = self._clock()
        started = time.perf_counter()
        state, detail = OK, ""
        try:
            async with asyncio.timeout(registered.timeout_s):
                await registered.check()
        except Degraded as exc:
            state, detail = DEGRADED, str(exc)
        except TimeoutError:
            state = DOWN if registered.required else DEGRADED
            detail = f"no answer within {registered.timeout_s:g} s"
        except Exception as exc:  # any failure of a backend check is its state, not ours
            state = DOWN if registered.required else DEGRADED
            detail = _first_line(exc)
            _log.debug("health check %s failed", registered.name, exc_info=True)
        component = health_pb2.ComponentHealth(
            name=registered.name, state=state, adapter=registered.adapter, detail=detail
        )
        component.checked_at.FromNanoseconds(int(checked_at * 1_000_000_000))
        component.latency.FromNanoseconds(int((time.perf_counter() - started) * 1_000_000_000))
        return component


# A backend may blink (a leader election, a restart under a supervisor); only one that stays
# unhealthy this long is worth waking someone for.
DEFAULT_DOWN_GRACE_S = 60.0


@dataclass(frozen=True, slots=True)
class Transition:
    """A component crossed the grace: `down` True when it has been unhealthy for longer than
    the grace (reported once), False when one so reported is OK again."""

    component: str
    down: bool
    state: health_pb2.HealthState.ValueType
    detail: str
    since: float


class DownWatch:
    """Which components have been unhealthy (DOWN, or DEGRADED: an optional backend that does
    not answer) continuously for longer than `grace_s`, fed one snapshot at a time.

    `observe` returns the transitions of this snapshot: a component unhealthy in every snapshot
    since `since` and past the grace is reported down once; its first OK snapshot afterwards
    reports it back. A component that recovers within the grace is never reported.
    """

    def __init__(self, grace_s: float = DEFAULT_DOWN_GRACE_S) -> None:
        if grace_s < 0:
            raise ValueError(f"grace_s must be >= 0, got {grace_s!r}")
        self.grace_s = grace_s
        self._since: dict[str, float] = {}
        self._reported: set[str] = set()

    @property
    def reported(self) -> frozenset[str]:
        return frozenset(self._reported)

    def observe(self, health: health_pb2.ServiceHealth, now: float) -> list[Transition]:
        out = []
        for component in health.components:
            name = component.name
            if component.state in (OK, health_pb2.HEALTH_STATE_UNSPECIFIED):
                self._since.pop(name, None)
                if name in self._reported:
                    self._reported.discard(name)
                    out.append(Transition(name, False, component.state, component.detail, now))
                continue
            since = self._since.setdefault(name, now)
            if name not in self._reported and now - since >= self.grace_s:
                self._reported.add(name)
                out.append(Transition(name, True, component.state, component.detail, since))
        return out


async def watch_down(
    reporter: HealthReporter,
    watch: DownWatch,
    on_transition: Callable[[Transition], Awaitable[None]],
    *,
    interval_s: float = 5.0,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Checks `reporter` every `interval_s` and hands each transition to `on_transition`, until
    cancelled. A failing callback is logged; the loop goes on."""
    while True:
        health = await reporter.snapshot()
        for transition in watch.observe(health, clock()):
            try:
                await on_transition(transition)
            except Exception:
                _log.exception(
                    "health: the down-watch callback failed for %s", transition.component
                )
        await asyncio.sleep(interval_s)
