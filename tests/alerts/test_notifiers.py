"""SlackNotifier and EmailNotifier against real local receivers; their errors hold no secret."""

from __future__ import annotations

import pytest

from qmtl.runtime.alerts.notifiers import NotifierError
from qmtl.runtime.alerts.notifiers.slack import SlackNotifier
from qmtl.runtime.alerts.notifiers.smtp import EmailNotifier
from tests.alerts.alert_support import alert, resolved
from tests.alerts.receivers import WEBHOOK_PATH, free_port, slack_receiver, smtp_server

SMTP_PASSWORD = "smtp-pass-s3cret-987"


async def test_slack_gets_one_block_kit_post_per_alert() -> None:
    with slack_receiver() as slack:
        notifier = SlackNotifier(slack.url)
        try:
            await notifier.send(alert(key="BackendDown:gateway:gw-1:dag_manager"))
            await notifier.send(resolved("BackendDown:gateway:gw-1:dag_manager"))
        finally:
            await notifier.aclose()
        firing, resolve = slack.received()
    assert slack.paths == [WEBHOOK_PATH, WEBHOOK_PATH]
    assert firing["text"].startswith("[FIRING] BackendDown (critical) on gateway gw-1")
    header, text, fields, context = firing["blocks"]
    assert header == {
        "type": "header",
        "text": {"type": "plain_text", "text": "FIRING: BackendDown"},
    }
    assert text["type"] == "section"
    assert "DEGRADED for more than 3 s" in text["text"]["text"]
    shown = {f["text"].split("\n")[0]: f["text"].split("\n")[1] for f in fields["fields"]}
    assert shown == {
        "*State*": "FIRING",
        "*Level*": "critical",
        "*Service*": "gateway",
        "*Instance*": "gw-1",
        "*Target*": "dag_manager",
        "*Dedupe key*": "BackendDown:gateway:gw-1:dag_manager",
    }
    assert context["type"] == "context"
    assert "docs/operations/alerts.md#backenddown" in context["elements"][0]["text"]
    assert resolve["blocks"][0]["text"]["text"] == "RESOLVED: BackendDown"
    assert resolve["blocks"][1]["text"]["text"].startswith(":white_check_mark:")


async def test_a_slack_error_names_the_status_not_the_webhook_url() -> None:
    with slack_receiver() as slack:
        slack.statuses = [500, 404]
        notifier = SlackNotifier(slack.url)
        try:
            with pytest.raises(NotifierError) as server_error:
                await notifier.send(alert())
            with pytest.raises(NotifierError) as not_found:
                await notifier.send(alert())
        finally:
            await notifier.aclose()
    assert server_error.value.message == "slack webhook answered HTTP 500"
    assert server_error.value.retryable
    assert not not_found.value.retryable
    unreachable = SlackNotifier(f"http://127.0.0.1:{free_port()}{WEBHOOK_PATH}")
    try:
        with pytest.raises(NotifierError) as refused:
            await unreachable.send(alert())
    finally:
        await unreachable.aclose()
    assert refused.value.message == "slack webhook: ConnectError"
    assert refused.value.__cause__ is None
    assert refused.value.__suppress_context__
    assert "webhook-secret" not in repr(unreachable)


async def test_an_email_is_sent_per_alert() -> None:
    with smtp_server() as box:
        notifier = EmailNotifier(
            host=box.host,
            port=box.port,
            sender="qmtl@example.com",
            recipients=["ops@example.com", "oncall@example.com"],
        )
        await notifier.send(alert(key="BackendDown:gateway:gw-1:dag_manager"))
        [mail] = box.received()
    assert box.envelopes == [("qmtl@example.com", ["ops@example.com", "oncall@example.com"])]
    assert mail["Subject"] == "qmtl [FIRING] BackendDown (critical) on gateway gw-1"
    assert mail["X-QMTL-Dedupe-Key"] == "BackendDown:gateway:gw-1:dag_manager"
    body = mail.get_payload(decode=True).decode()
    assert "backend dag_manager DEGRADED for more than 3 s" in body
    assert "runbook:    docs/operations/alerts.md#backenddown" in body


async def test_an_email_logs_in_and_a_refused_login_does_not_repeat_the_password() -> None:
    with smtp_server(user="alerts", password=SMTP_PASSWORD) as box:
        good = EmailNotifier(
            host=box.host, port=box.port, sender="q@example.com", recipients=["o@example.com"],
            username="alerts", password=SMTP_PASSWORD,
        )  # fmt: skip
        await good.send(alert())
        assert len(box.received()) == 1
        bad = EmailNotifier(
            host=box.host, port=box.port, sender="q@example.com", recipients=["o@example.com"],
            username="alerts", password=SMTP_PASSWORD + "-wrong",
        )  # fmt: skip
        with pytest.raises(NotifierError) as refused:
            await bad.send(alert())
    assert refused.value.message == f"smtp 127.0.0.1:{box.port} answered 535"
    assert not refused.value.retryable
    assert SMTP_PASSWORD not in repr(bad)
    closed = EmailNotifier(
        host="127.0.0.1", port=free_port(), sender="q@example.com", recipients=["o@example.com"]
    )
    with pytest.raises(NotifierError) as unreachable:
        await closed.send(alert())
    assert unreachable.value.retryable
    assert unreachable.value.message.startswith(f"smtp 127.0.0.1:{closed._port}: ")
