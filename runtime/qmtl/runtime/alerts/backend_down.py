"""BackendDown: a service's backend unhealthy beyond the grace, and its recovery.

`BackendDownAlerts` runs health.watch_down over a service's HealthReporter and publishes a
FIRING AlertRaised when a component has been unhealthy past the grace, a RESOLVED one when it
is OK again, both with the dedupe key `BackendDown:<service>:<instance>:<component>`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable

from qmtl.common.v1 import health_pb2
from qmtl.events.v1 import event_pb2
from qmtl.runtime.eventbus import EventBus
from qmtl.runtime.health import DownWatch, HealthReporter, Transition, watch_down

from .model import BACKEND_DOWN, CRITICAL, FIRING, RESOLVED, WARNING, alert_event, raise_alert

MAX_INTERVAL_S = 5.0
MIN_INTERVAL_S = 0.5


def check_interval(grace_s: float) -> float:
    """How often health is looked at: a third of the grace (so a backend down is reported
    within 4/3 of the grace), between MIN_INTERVAL_S and MAX_INTERVAL_S."""
    return min(MAX_INTERVAL_S, max(MIN_INTERVAL_S, grace_s / 3))


class BackendDownAlerts:
    def __init__(
        self,
        reporter: HealthReporter,
        bus: EventBus,
        *,
        service: str,
        instance_id: str,
        source: str,
        grace_s: float,
        interval_s: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.reporter, self.bus = reporter, bus
        self.service, self.instance_id, self.source = service, instance_id, source
        self.watch = DownWatch(grace_s)
        self.interval_s = check_interval(grace_s) if interval_s is None else interval_s
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        # One id per episode: the FIRING and its RESOLVED share the dedupe key, not the event.
        self._episode: dict[str, str] = {}

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(
                watch_down(self.reporter, self.watch, self.publish, interval_s=self.interval_s),
                name="alerts-backend-down",
            )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def publish(self, transition: Transition) -> None:
        await raise_alert(self.bus, self.event_for(transition))

    def event_for(self, transition: Transition) -> event_pb2.Event:
        component = transition.component
        state_name = health_pb2.HealthState.Name(transition.state).removeprefix("HEALTH_STATE_")
        if transition.down:
            episode = self._episode[component] = uuid.uuid4().hex[:12]
            message = (
                f"{self.service} {self.instance_id}: backend {component} {state_name} for more "
                f"than {self.watch.grace_s:g} s: {transition.detail or 'no detail'}"
            )
        else:
            episode = self._episode.pop(component, uuid.uuid4().hex[:12])
            message = f"{self.service} {self.instance_id}: backend {component} is OK again"
        return alert_event(
            BACKEND_DOWN,
            level=CRITICAL if transition.state == health_pb2.HEALTH_STATE_DOWN else WARNING,
            state=FIRING if transition.down else RESOLVED,
            service=self.service,
            instance_id=self.instance_id,
            target_id=component,
            message=message,
            source=self.source,
            dedupe_key=f"{BACKEND_DOWN}:{self.service}:{self.instance_id}:{component}",
            idempotency_key=(
                f"backend_down:{self.instance_id}:{component}:{episode}:"
                f"{'firing' if transition.down else 'resolved'}"
            ),
            attributes={
                "component": component,
                "state": state_name,
                "grace_s": f"{self.watch.grace_s:g}",
            },
            clock=self._clock,
        )
