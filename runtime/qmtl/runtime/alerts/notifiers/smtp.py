"""EmailNotifier: one mail per alert over SMTP (aiosmtplib), STARTTLS when the server offers it.

The password is never logged and never in an error: a failure names the SMTP step and status
only, and passes through `scrub` as well.
"""

from __future__ import annotations

from collections.abc import Sequence
from email.message import EmailMessage

import aiosmtplib

from ..model import RUNBOOK_DOC, Alert
from .port import SECRETS, NotifierError, scrub

DEFAULT_TIMEOUT_S = 10.0


def render_mail(
    alert: Alert, *, sender: str, recipients: Sequence[str], runbook_base: str = RUNBOOK_DOC
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Subject"] = f"qmtl {alert.title()}"
    message["X-QMTL-Alert"] = alert.name
    message["X-QMTL-Alert-State"] = alert.state_name
    message["X-QMTL-Dedupe-Key"] = alert.dedupe_key
    lines = [
        alert.message,
        "",
        f"alert:      {alert.name}",
        f"state:      {alert.state_name}",
        f"level:      {alert.level_name}",
        f"service:    {alert.service or alert.source}",
        f"instance:   {alert.instance_id or '-'}",
        f"target:     {alert.target_id or '-'}",
        f"dedupe key: {alert.dedupe_key}",
        f"event id:   {alert.event_id}",
        f"runbook:    {alert.runbook_ref(runbook_base)}",
    ]
    lines += [f"{k}: {v}" for k, v in sorted(alert.attributes.items())]
    message.set_content("\n".join(lines) + "\n")
    return message


class EmailNotifier:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        recipients: Sequence[str],
        username: str = "",
        password: str = "",
        runbook_base: str = RUNBOOK_DOC,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        if not host or not sender or not recipients:
            raise ValueError("e-mail alerts need an SMTP host, a sender and a recipient")
        self._host, self._port = host, port
        self._sender, self._recipients = sender, list(recipients)
        self._username, self._password = username, password
        SECRETS.add(password)
        self._runbook_base = runbook_base
        self._timeout_s = timeout_s

    @property
    def name(self) -> str:
        return "email"

    def __repr__(self) -> str:
        return f"EmailNotifier(host={self._host!r}, port={self._port}, password=[redacted])"

    async def send(self, alert: Alert) -> None:
        mail = render_mail(
            alert, sender=self._sender, recipients=self._recipients, runbook_base=self._runbook_base
        )
        try:
            # start_tls=None: STARTTLS when the server offers it, plain otherwise.
            await aiosmtplib.send(
                mail,
                hostname=self._host,
                port=self._port,
                start_tls=None,
                username=self._username or None,
                password=self._password or None,
                timeout=self._timeout_s,
            )
        except aiosmtplib.SMTPResponseException as exc:
            raise NotifierError(
                scrub(f"smtp {self._host}:{self._port} answered {exc.code}", [self._password]),
                retryable=400 <= exc.code < 500,  # 4xx: try again later; 5xx: refused
            ) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise NotifierError(
                scrub(f"smtp {self._host}:{self._port}: {type(exc).__name__}", [self._password])
            ) from None

    async def aclose(self) -> None:
        SECRETS.remove(self._password)
