"""`qmtl alerts`: the alert dispatcher process (qmtl.runtime.alerts).

Consumes qmtl.events.ops in the group `qmtl-alerts` and notifies every AlertRaised to the log,
to Slack when a webhook URL is set and by e-mail when an SMTP host is set, rate-limited per
dedupe key. Run one or more per deployment (they share the group, so each alert goes out
once); the Gateway does not embed it (docs/operations/alerts.md, "Where the dispatcher runs").
Exit codes: 0 after SIGTERM/SIGINT; 1 a bus that cannot be reached; 2 a setting it refuses.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from qmtl.cli.registry import Command
from qmtl.cli.service_options import (
    Option,
    add_options,
    config_error,
    configure_logging,
    port,
    seconds,
)

if TYPE_CHECKING:
    from qmtl.runtime.alerts.settings import AlertSettings

DESCRIPTION = (
    "Run the alert dispatcher: notifies the platform's AlertRaised events (qmtl.events.ops) "
    "to the log, Slack (incoming webhook) and e-mail (SMTP), one FIRING and one RESOLVED per "
    "dedupe key per window."
)


def options() -> list[Option]:
    from qmtl.runtime.endpoints import ServiceEndpoints

    return [
        Option("--backend", "QMTL_ALERTS_BACKEND", "memory",
               "memory: an in-process bus (nothing to read: for trying the flags); real: Kafka",
               choices=("memory", "real")),
        Option("--kafka-bootstrap", "QMTL_KAFKA_BOOTSTRAP",
               ServiceEndpoints.from_env().kafka_bootstrap, "Kafka bootstrap servers (real)"),
        Option("--group", "QMTL_ALERT_GROUP", "qmtl-alerts", "consumer group on qmtl.events.ops"),
        Option("--slack-webhook-url", "QMTL_ALERT_SLACK_WEBHOOK_URL", "",
               "Slack incoming-webhook URL; unset: no Slack", secret=True),
        Option("--smtp-host", "QMTL_ALERT_SMTP_HOST", "", "SMTP server; unset: no e-mail"),
        Option("--smtp-port", "QMTL_ALERT_SMTP_PORT", "587", "SMTP port (STARTTLS when offered)",
               port),
        Option("--smtp-user", "QMTL_ALERT_SMTP_USER", "", "SMTP login user; unset: no login"),
        Option("--smtp-password", "QMTL_ALERT_SMTP_PASSWORD", "", "SMTP login password",
               secret=True),
        Option("--email-from", "QMTL_ALERT_EMAIL_FROM", "", "sender address of alert mails"),
        Option("--email-to", "QMTL_ALERT_EMAIL_TO", "", "comma-separated recipients"),
        Option("--window", "QMTL_ALERT_WINDOW_SECONDS", "300",
               "rate-limit window: at most one FIRING (and one RESOLVED) per dedupe key in it",
               seconds),
        Option("--max-age", "QMTL_ALERT_MAX_AGE_SECONDS", "3600",
               "alerts older than this are not notified (a new group reads the retained backlog)",
               seconds),
        Option("--runbook-base", "QMTL_ALERT_RUNBOOK_BASE", "docs/operations/alerts.md",
               "where runbook anchors point (a URL of the published docs)"),
        Option("--log-level", "QMTL_LOG_LEVEL", "INFO", "logging level",
               choices=("DEBUG", "INFO", "WARNING", "ERROR")),
    ]  # fmt: skip


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    add_options(parser, options())


def _run(args: argparse.Namespace) -> int:
    import asyncio

    from qmtl.runtime.alerts.settings import AlertSettings, AlertSettingsError

    configure_logging(args.log_level)
    settings = AlertSettings(
        slack_webhook_url=args.slack_webhook_url,
        smtp_host=args.smtp_host,
        smtp_port=args.smtp_port,
        smtp_user=args.smtp_user,
        smtp_password=args.smtp_password,
        email_from=args.email_from,
        email_to=tuple(a.strip() for a in args.email_to.split(",") if a.strip()),
        window_s=args.window,
        max_age_s=args.max_age,
        group=args.group,
        runbook_base=args.runbook_base,
    )
    try:
        settings.check()
    except AlertSettingsError as exc:
        return config_error("alerts", exc)
    return asyncio.run(_serve(args, settings))


async def _serve(args: argparse.Namespace, settings: AlertSettings) -> int:
    import asyncio
    import sys

    from qmtl.runtime.alerts.process import run_dispatcher, stop_on_signals
    from qmtl.runtime.eventbus import EventBus, EventBusError, InMemoryEventBus

    stop = asyncio.Event()
    stop_on_signals(stop)
    bus: EventBus
    if args.backend == "real":
        from qmtl.runtime.eventbus.kafka import KafkaEventBus

        try:
            bus = await KafkaEventBus.connect(args.kafka_bootstrap, client_id="qmtl-alerts")
        except EventBusError as exc:
            print(f"qmtl alerts: error: {exc}", file=sys.stderr)
            return 1
    else:
        bus = InMemoryEventBus()
    try:
        return await run_dispatcher(bus, settings, stop=stop)
    finally:
        await bus.aclose()


COMMAND = Command(
    name="alerts",
    help="run the alert dispatcher (qmtl.events.ops -> log, Slack, e-mail; --backend memory|real)",
    configure=_configure,
    run=_run,
)
