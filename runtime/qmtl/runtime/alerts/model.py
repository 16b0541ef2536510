"""Alerts as the platform raises them: AlertRaised events on qmtl.events.ops.

`alert_event` is the one builder (over events.make_event) and `raise_alert` publishes one;
every producer (health grace, crash at boot, dead letters, boot checks) goes through them so an
alert always carries a state, a dedupe key, the service and instance and a runbook anchor.
`Alert` is the flat view the dispatcher and the notifiers read. docs/operations/alerts.md.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeAlias

from qmtl.events.v1 import alert_events_pb2, event_pb2
from qmtl.runtime.eventbus import OPS_EVENTS, EventBusError
from qmtl.runtime.events import make_event
from qmtl.runtime.outbox import EventPublisher

_log = logging.getLogger(__name__)

AlertLevel: TypeAlias = alert_events_pb2.AlertLevel.ValueType
AlertState: TypeAlias = alert_events_pb2.AlertState.ValueType

INFO = alert_events_pb2.ALERT_LEVEL_INFO
WARNING = alert_events_pb2.ALERT_LEVEL_WARNING
ERROR = alert_events_pb2.ALERT_LEVEL_ERROR
CRITICAL = alert_events_pb2.ALERT_LEVEL_CRITICAL

FIRING = alert_events_pb2.ALERT_STATE_FIRING
RESOLVED = alert_events_pb2.ALERT_STATE_RESOLVED

# The alert names the services raise; each has a section in docs/operations/alerts.md whose
# anchor is the lower-case name.
BACKEND_DOWN = "BackendDown"
SERVICE_CRASHED = "ServiceCrashed"
WORK_ITEM_DEAD_LETTERED = "WorkItemDeadLettered"
CALLBACK_DEAD_LETTERED = "CallbackDeadLettered"
BOOT_CHECK_WARNING = "BootCheckWarning"

RUNBOOK_DOC = "docs/operations/alerts.md"

_LEVEL_NAMES = {
    alert_events_pb2.ALERT_LEVEL_UNSPECIFIED: "warning",
    INFO: "info",
    WARNING: "warning",
    ERROR: "error",
    CRITICAL: "critical",
}


def runbook_anchor(name: str) -> str:
    return name.lower()


def alert_event(
    name: str,
    *,
    level: AlertLevel,
    service: str,
    instance_id: str,
    target_id: str,
    message: str,
    source: str,
    dedupe_key: str,
    idempotency_key: str,
    state: AlertState = FIRING,
    attributes: Mapping[str, str] | None = None,
    correlation_id: str = "",
    clock: Callable[[], float] = time.time,
) -> event_pb2.Event:
    """The Event of one AlertRaised; `idempotency_key` names this raising (a republish of the
    same one carries it), `dedupe_key` the condition (its FIRING and RESOLVED share it)."""
    alert = alert_events_pb2.AlertRaised(
        level=level,
        name=name,
        target_id=target_id,
        message=message,
        attributes=dict(attributes or {}),
        state=state,
        dedupe_key=dedupe_key,
        service=service,
        instance_id=instance_id,
        runbook=runbook_anchor(name),
    )
    return make_event(
        "alert_raised",
        alert,
        subject=f"services/{service}",
        idempotency_key=idempotency_key,
        source=source,
        correlation_id=correlation_id,
        clock=clock,
    )


async def raise_alert(bus: EventPublisher, event: event_pb2.Event) -> bool:
    """Publishes an alert on qmtl.events.ops; False (logged) when the bus refuses it. An alert
    is never worth failing the operation that raised it."""
    try:
        await bus.publish(OPS_EVENTS, [event])
    except EventBusError as exc:
        alert = event.alert_raised
        _log.error("could not publish alert %s (%s): %s", alert.name, alert.dedupe_key, exc)
        return False
    return True


@dataclass(frozen=True, slots=True)
class Alert:
    """What a notifier renders: one AlertRaised with its envelope's id and time."""

    event_id: str
    name: str
    level: AlertLevel
    state: AlertState
    dedupe_key: str
    service: str
    instance_id: str
    target_id: str
    message: str
    runbook: str
    time: float
    source: str
    attributes: Mapping[str, str] = field(default_factory=dict)

    @property
    def firing(self) -> bool:
        return self.state != RESOLVED

    @property
    def level_name(self) -> str:
        return _LEVEL_NAMES.get(self.level, "warning")

    @property
    def state_name(self) -> str:
        return "FIRING" if self.firing else "RESOLVED"

    def runbook_ref(self, base: str = RUNBOOK_DOC) -> str:
        return f"{base}#{self.runbook or runbook_anchor(self.name)}"

    def title(self) -> str:
        where = self.service or self.source
        if self.instance_id:
            where = f"{where} {self.instance_id}"
        return f"[{self.state_name}] {self.name} ({self.level_name}) on {where}"

    @classmethod
    def from_event(cls, event: event_pb2.Event) -> Alert:
        raised = event.alert_raised
        return cls(
            event_id=event.id,
            name=raised.name,
            level=raised.level,
            state=raised.state,
            # Alerts raised before the field existed: the rule and its target are the condition.
            dedupe_key=raised.dedupe_key or f"{raised.name}:{raised.target_id}",
            service=raised.service,
            instance_id=raised.instance_id,
            target_id=raised.target_id,
            message=raised.message,
            runbook=raised.runbook,
            time=event.time.seconds + event.time.nanos / 1e9,
            source=event.source,
            attributes=dict(raised.attributes),
        )
