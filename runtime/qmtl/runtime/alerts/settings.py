"""What `qmtl alerts` is configured with (flags with QMTL_ALERT_* defaults), and the notifiers
those settings make: the log always, Slack when a webhook URL is set, e-mail when an SMTP host
is set (then a sender and a recipient are required)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .dispatcher import DEFAULT_MAX_AGE_S, DEFAULT_QUEUE_SIZE, GROUP, RetryPolicy
from .model import RUNBOOK_DOC
from .notifiers import LogNotifier, Notifier
from .ratelimit import DEFAULT_WINDOW_S


class AlertSettingsError(ValueError):
    """A setting `qmtl alerts` refuses (exit 2); never quotes a secret."""


@dataclass(frozen=True, slots=True)
class AlertSettings:
    slack_webhook_url: str = field(default="", repr=False)
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_user: str = ""
    smtp_password: str = field(default="", repr=False)
    email_from: str = ""
    email_to: tuple[str, ...] = ()
    window_s: float = DEFAULT_WINDOW_S
    max_age_s: float = DEFAULT_MAX_AGE_S
    queue_size: int = DEFAULT_QUEUE_SIZE
    group: str = GROUP
    runbook_base: str = RUNBOOK_DOC
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.slack_webhook_url, self.smtp_password) if s)

    def check(self) -> None:
        if self.slack_webhook_url and not self.slack_webhook_url.startswith(
            ("https://", "http://")
        ):
            raise AlertSettingsError("the Slack webhook URL must be an http(s) URL")
        if self.smtp_host and not (self.email_from and self.email_to):
            raise AlertSettingsError(
                "e-mail alerts need QMTL_ALERT_EMAIL_FROM and QMTL_ALERT_EMAIL_TO with the "
                "SMTP host"
            )
        if not self.smtp_host and (self.email_to or self.smtp_password):
            raise AlertSettingsError("e-mail recipients or an SMTP password without an SMTP host")
        if not 0 < self.smtp_port < 65536:
            raise AlertSettingsError(f"SMTP port out of range: {self.smtp_port}")
        if self.window_s < 0 or self.max_age_s <= 0 or self.queue_size < 1:
            raise AlertSettingsError("window >= 0, max age > 0 and queue size >= 1 required")

    def notifiers(self) -> list[Notifier]:
        """The notifiers these settings enable (the drivers are imported only when used)."""
        self.check()
        notifiers: list[Notifier] = [LogNotifier()]
        if self.slack_webhook_url:
            from .notifiers.slack import SlackNotifier

            notifiers.append(SlackNotifier(self.slack_webhook_url, runbook_base=self.runbook_base))
        if self.smtp_host:
            from .notifiers.smtp import EmailNotifier

            notifiers.append(
                EmailNotifier(
                    host=self.smtp_host,
                    port=self.smtp_port,
                    sender=self.email_from,
                    recipients=self.email_to,
                    username=self.smtp_user,
                    password=self.smtp_password,
                    runbook_base=self.runbook_base,
                )
            )
        return notifiers
