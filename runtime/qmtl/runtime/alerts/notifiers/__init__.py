"""Notifiers: where the dispatcher sends an alert (the `Notifier` port and its adapters).

`LogNotifier` is always on; `SlackNotifier` (httpx, the runtime's `client` extra) and
`EmailNotifier` (aiosmtplib) are imported from their modules on demand.
"""

from .log import LogNotifier
from .port import Notifier, NotifierError, scrub

__all__ = ["LogNotifier", "Notifier", "NotifierError", "scrub"]
