"""LogNotifier: every admitted alert as one log line (always on, needs nothing)."""

from __future__ import annotations

import logging

from ..model import CRITICAL, ERROR, INFO, Alert

_LOG_LEVELS = {INFO: logging.INFO, ERROR: logging.ERROR, CRITICAL: logging.CRITICAL}


class LogNotifier:
    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or logging.getLogger("qmtl.alerts")

    @property
    def name(self) -> str:
        return "log"

    async def send(self, alert: Alert) -> None:
        level = logging.INFO if not alert.firing else _LOG_LEVELS.get(alert.level, logging.WARNING)
        self._log.log(
            level,
            "alert %s: %s target=%s dedupe_key=%s runbook=%s",
            alert.title(),
            alert.message,
            alert.target_id,
            alert.dedupe_key,
            alert.runbook_ref(),
        )

    async def aclose(self) -> None:
        return None
