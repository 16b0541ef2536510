"""The Notifier port: one channel an alert is sent to."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterable
from typing import Protocol

from qmtl.runtime.port_errors import PortError

from ..model import Alert

REDACTED = "[redacted]"


class NotifierError(PortError):
    """A notifier could not deliver an alert. Its message never holds a secret (webhook URL,
    SMTP password): adapters build it from what failed, not from the driver's exception text,
    and pass it through `scrub`."""

    default_code = "E_UNAVAILABLE"
    default_retryable = True


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` with every non-empty secret replaced; the last guard before a log line."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


# The drivers' own loggers: httpx logs every request's full URL at INFO ("HTTP Request: POST
# https://hooks.slack.com/services/...") and the webhook URL is the secret.
DRIVER_LOGGERS = ("httpx", "httpcore", "aiosmtplib")


class SecretFilter(logging.Filter):
    """Scrubs the registered secrets from every record of the loggers it is attached to."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: Counter[str] = Counter()
        self._lock = threading.Lock()

    def add(self, secret: str) -> None:
        if secret:
            with self._lock:
                self._secrets[secret] += 1

    def remove(self, secret: str) -> None:
        with self._lock:
            if self._secrets[secret] > 1:
                self._secrets[secret] -= 1
            else:
                self._secrets.pop(secret, None)

    def filter(self, record: logging.LogRecord) -> bool:
        with self._lock:
            secrets = list(self._secrets)
        if secrets:
            text = record.getMessage()
            scrubbed = scrub(text, secrets)
            if scrubbed != text:
                record.msg, record.args = scrubbed, None
        return True


SECRETS = SecretFilter()
for _name in DRIVER_LOGGERS:
    logging.getLogger(_name).addFilter(SECRETS)


class Notifier(Protocol):
    @property
    def name(self) -> str:
        """Names the channel in logs and counters (`slack`, `email`, `log`)."""
        ...

    async def send(self, alert: Alert) -> None:
        """Delivers `alert` once; NotifierError when it did not (the dispatcher retries)."""
        ...

    async def aclose(self) -> None: ...
