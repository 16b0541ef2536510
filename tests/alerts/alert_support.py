"""Alerts as the producers make them, for the dispatcher and notifier tests."""

from __future__ import annotations

import itertools
import time

from qmtl.events.v1 import event_pb2
from qmtl.runtime.alerts import Alert, alert_event
from qmtl.runtime.alerts.model import CRITICAL, FIRING, RESOLVED, AlertState

_serial = itertools.count()


def event(
    name: str = "BackendDown",
    *,
    key: str = "BackendDown:gateway:gw-1:dag_manager",
    state: AlertState = FIRING,
    message: str = "backend dag_manager DEGRADED for more than 3 s",
    at: float | None = None,
) -> event_pb2.Event:
    return alert_event(
        name,
        level=CRITICAL,
        state=state,
        service="gateway",
        instance_id="gw-1",
        target_id="dag_manager",
        message=message,
        source="qmtl/gateway",
        dedupe_key=key,
        idempotency_key=f"test:{next(_serial)}",
        attributes={"component": "dag_manager"},
        clock=(lambda: at) if at is not None else time.time,
    )


def alert(name: str = "BackendDown", *, key: str = "k", state: AlertState = FIRING) -> Alert:
    return Alert.from_event(event(name, key=key, state=state))


def resolved(key: str = "k") -> Alert:
    return alert(key=key, state=RESOLVED)
