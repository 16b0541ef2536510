"""The recovery steps every service's boot ends with, and their undoing at clean shutdown.

Both services close `initialize_and_recover()` the same way (docs/operations/boot.md): relay
what the outbox holds (a crashed run's events), write the clean-shutdown marker (finding one
means the previous run crashed), then publish ServiceRestarted with what the boot found, and
the ServiceCrashed alert when the previous run crashed (docs/operations/alerts.md). A
`Restart` keeps that bookkeeping for one boot and makes those steps; each service adds its own
steps (the Gateway's lease reaping, the DAG Manager's event topics) and counts into it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from qmtl.events.v1 import event_pb2
from qmtl.runtime.alerts.model import CRITICAL, SERVICE_CRASHED, alert_event, raise_alert
from qmtl.runtime.boot import Backend, BootStep, Recovery, ShutdownMarker, restarted_event
from qmtl.runtime.eventbus import OPS_EVENTS
from qmtl.runtime.outbox import EventPublisher, OutboxRelay, OutboxStore

_log = logging.getLogger("qmtl.runtime.boot")


@dataclass
class Restart:
    """One boot of `service` on `instance_id`: what it found, the relay it made."""

    service: str
    instance_id: str
    source: str
    started_at: float = field(default_factory=time.time)
    clock: Callable[[], float] = time.time
    crash_detected: bool = False
    replayed_events: int = 0
    recovered_work_items: int = 0
    repaired_resources: int = 0
    marked: bool = False
    relay: OutboxRelay | None = None
    # Set once ServiceRestarted went out: what it reported.
    restarted: Recovery | None = None

    def relay_over(self, outbox: OutboxStore, bus: EventPublisher) -> OutboxRelay:
        """The outbox relay of this process, made on first use (the drain step or earlier)."""
        if self.relay is None:
            self.relay = OutboxRelay(outbox, bus)
        return self.relay

    async def drain(self, outbox: OutboxStore, bus: EventPublisher) -> int:
        """Relays what an earlier run wrote but did not publish; counted as replayed."""
        sent = await self.relay_over(outbox, bus).drain()
        self.replayed_events += sent
        return sent

    async def mark(self, marker: ShutdownMarker) -> bool:
        """Writes the clean-shutdown marker; True when the previous run left its own (crash)."""
        if not self.marked:  # a retried step must not read its own marker as a crash
            self.crash_detected = await marker.mark_running(
                self.instance_id, started_at=self.started_at
            )
            self.marked = True
        return self.crash_detected

    async def announce(self, bus: EventPublisher) -> Recovery:
        """Publishes ServiceRestarted with what this boot found; returns what it reported."""
        recovery = Recovery(
            crash_detected=self.crash_detected,
            replayed_events=self.replayed_events,
            recovered_work_items=self.recovered_work_items,
            repaired_resources=self.repaired_resources,
        )
        event = restarted_event(
            self.service,
            self.instance_id,
            recovery,
            started_at=self.started_at,
            source=self.source,
            clock=self.clock,
        )
        await bus.publish(OPS_EVENTS, [event])
        self.restarted = recovery
        if recovery.crash_detected:
            await raise_alert(bus, self.crash_alert())
        _log.info(
            "boot: ServiceRestarted instance_id=%s crash_detected=%s replayed_events=%d "
            "recovered_work_items=%d repaired_resources=%d",
            self.instance_id,
            str(recovery.crash_detected).lower(),
            recovery.replayed_events,
            recovery.recovered_work_items,
            recovery.repaired_resources,
        )
        return recovery

    def crash_alert(self) -> event_pb2.Event:
        """ServiceCrashed: the previous run of this instance ended without a clean shutdown.

        An event, not a condition: FIRING only, never resolved; its dedupe key names this
        instance and this boot, so a retried announce is one alert and the next crash another.
        """
        boot = f"{self.started_at:.6f}"
        return alert_event(
            SERVICE_CRASHED,
            level=CRITICAL,
            service=self.service,
            instance_id=self.instance_id,
            target_id=self.instance_id,
            message=(
                f"{self.service} {self.instance_id} restarted after a crash (no clean "
                f"shutdown); replayed {self.replayed_events} event(s), recovered "
                f"{self.recovered_work_items} work item(s)"
            ),
            source=self.source,
            dedupe_key=f"{SERVICE_CRASHED}:{self.service}:{self.instance_id}:{boot}",
            idempotency_key=f"service_crashed:{self.instance_id}:{boot}",
            attributes={
                "replayed_events": str(self.replayed_events),
                "recovered_work_items": str(self.recovered_work_items),
                "repaired_resources": str(self.repaired_resources),
            },
            clock=self.clock,
        )

    # The same three as boot steps over backends the earlier steps connect.

    def drain_step(self, outbox: Callable[[], OutboxStore], bus: Backend[Any]) -> BootStep:
        async def step() -> None:
            await self.drain(outbox(), bus.value)

        return BootStep("relay outbox", step)

    def marker_step(self, marker: Callable[[], ShutdownMarker]) -> BootStep:
        async def step() -> None:
            await self.mark(marker())

        return BootStep("clean-shutdown marker", step)

    def announce_step(self, bus: Backend[Any]) -> BootStep:
        async def step() -> None:
            await self.announce(bus.value)

        return BootStep("publish ServiceRestarted", step)

    async def wind_down(self, marker: Callable[[], ShutdownMarker]) -> None:
        """Clean shutdown's part: stop the relay, then remove the marker if this boot wrote
        one. A marker that cannot be removed is logged: the next boot then reports a crash,
        which is the safe side."""
        if self.relay is not None:
            await self.relay.stop()
        if self.marked:
            try:
                await marker().clear(self.instance_id)
                self.marked = False
            except Exception:
                _log.warning("could not remove the clean-shutdown marker", exc_info=True)
