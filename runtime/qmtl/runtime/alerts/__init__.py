"""Alerts from the platform itself: AlertRaised producers (model.py), the rate-limit gate, the
dispatcher and its notifiers (Slack, e-mail, log). docs/operations/alerts.md.
"""

from .dispatcher import GROUP, AlertDispatcher, RetryPolicy
from .model import (
    BACKEND_DOWN,
    BOOT_CHECK_WARNING,
    CALLBACK_DEAD_LETTERED,
    CRITICAL,
    ERROR,
    FIRING,
    INFO,
    RESOLVED,
    SERVICE_CRASHED,
    WARNING,
    WORK_ITEM_DEAD_LETTERED,
    Alert,
    alert_event,
    raise_alert,
)
from .ratelimit import AlertGate

__all__ = [
    "BACKEND_DOWN",
    "BOOT_CHECK_WARNING",
    "CALLBACK_DEAD_LETTERED",
    "CRITICAL",
    "ERROR",
    "FIRING",
    "GROUP",
    "INFO",
    "RESOLVED",
    "SERVICE_CRASHED",
    "WARNING",
    "WORK_ITEM_DEAD_LETTERED",
    "Alert",
    "AlertDispatcher",
    "AlertGate",
    "RetryPolicy",
    "alert_event",
    "raise_alert",
]
