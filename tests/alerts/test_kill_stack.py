"""The issue's kill test on the real servers: `qmtl dagmanager`, `qmtl gateway` and
`qmtl alerts` (--backend real) running; SIGKILL the DAG Manager and a Slack POST and an e-mail
arrive within 30 s (the Gateway's `dag_manager` backend unhealthy past a 3 s grace); restart it
and the resolve arrives, with the DAG Manager's ServiceCrashed alert."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tests.alerts.receivers import Mailbox, SlackReceiver, slack_receiver, smtp_server
from tests.integration.services_support import Cluster, Namespace
from tests.polling import eventually
from tests.serve.service_process import ServiceProcess

DELIVERY_S = 30.0


def posts_matching(slack: SlackReceiver, *words: str) -> list[dict[str, Any]]:
    return [p for p in slack.received() if all(w in p["text"] for w in words)]


def mails_matching(box: Mailbox, *words: str) -> list[Any]:
    return [m for m in box.received() if all(w in str(m["Subject"]) for w in words)]


async def arrives(
    slack: SlackReceiver, box: Mailbox, *words: str, watch: list[ServiceProcess]
) -> float:
    """Seconds until a Slack post and a mail naming `words` have both arrived."""
    started = time.monotonic()

    def both() -> Callable[[], Any]:
        async def check() -> bool:
            return bool(posts_matching(slack, *words) and mails_matching(box, *words))

        return check

    await eventually(both(), what=f"Slack and e-mail for {words}", within=DELIVERY_S, watch=watch)
    return time.monotonic() - started


async def test_killing_the_dag_manager_notifies_slack_and_email_then_the_resolve() -> None:
    namespace = Namespace()
    cluster = Cluster(namespace)
    with slack_receiver() as slack, smtp_server() as box:
        alerts = ServiceProcess(
            "alerts",
            "--backend", "real",
            "--group", f"qmtl-alerts-test-{namespace.unique}",
            "--slack-webhook-url", slack.url,
            "--smtp-host", box.host,
            "--smtp-port", str(box.port),
            "--email-from", "qmtl@example.com",
            "--email-to", "ops@example.com",
            "--max-age", "300",
        )  # fmt: skip
        try:
            dm = await cluster.dagmanager("dm")
            gw = await cluster.gateway("gw", [dm], "--alert-down-grace", "3")
            await alerts.start()
            await alerts.wait_ready(within=60)
            gw_instance, dm_instance = f"test-{namespace.unique}-gw", f"test-{namespace.unique}-dm"
            running = [gw, alerts]

            await cluster.kill(dm)
            took = await arrives(slack, box, "[FIRING] BackendDown", gw_instance, watch=running)
            assert took < DELIVERY_S
            [post] = posts_matching(slack, "[FIRING] BackendDown", gw_instance)
            assert "backend dag_manager" in post["text"]
            fields = "\n".join(f["text"] for f in post["blocks"][2]["fields"])
            assert f"BackendDown:gateway:{gw_instance}:dag_manager" in fields
            [mail] = mails_matching(box, "[FIRING] BackendDown", gw_instance)
            assert mail["X-QMTL-Dedupe-Key"] == f"BackendDown:gateway:{gw_instance}:dag_manager"

            dm = await cluster.restart(dm)
            assert dm.crash_detected
            running.append(dm)
            await arrives(slack, box, "[RESOLVED] BackendDown", gw_instance, watch=running)
            await arrives(slack, box, "[FIRING] ServiceCrashed", dm_instance, watch=running)
            # Once each: the dispatcher's dedupe and rate limit held.
            assert len(posts_matching(slack, "BackendDown", gw_instance)) == 2
            assert len(mails_matching(box, "BackendDown", gw_instance)) == 2
            assert await alerts.stop() == 0  # SIGTERM: a clean stop
        except BaseException:
            print(cluster.logs())
            print(f"---- qmtl alerts\n{alerts.logs()[-6000:]}")
            raise
        finally:
            await alerts.close()
            await cluster.aclose()
