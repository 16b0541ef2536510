"""AlertDispatcher over the in-memory bus: dedupe, rate limit, retries, a failing or stuck
notifier that blocks nothing, bounded queues, and no secret in any log line."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from qmtl.runtime.alerts import Alert, AlertDispatcher, AlertGate, RetryPolicy
from qmtl.runtime.alerts.notifiers import NotifierError
from qmtl.runtime.alerts.settings import AlertSettings
from qmtl.runtime.eventbus import OPS_EVENTS, Delivery, InMemoryEventBus
from tests.alerts.alert_support import event
from tests.alerts.receivers import WEBHOOK_PATH, free_port, slack_receiver, smtp_server
from tests.polling import eventually

FAST = RetryPolicy(attempts=3, initial_s=0.01, multiplier=2, max_s=0.05)


class Recording:
    def __init__(self, name: str = "recording", *, fail_first: int = 0) -> None:
        self._name = name
        self.fail_first = fail_first
        self.calls = 0
        self.sent: list[Alert] = []

    @property
    def name(self) -> str:
        return self._name

    async def send(self, alert: Alert) -> None:
        self.calls += 1
        if self.calls <= self.fail_first:
            raise NotifierError(f"{self._name} down ({self.calls})")
        self.sent.append(alert)

    async def aclose(self) -> None:
        return None


class Stuck(Recording):
    """Never returns from a send: a channel whose receiver hangs."""

    def __init__(self) -> None:
        super().__init__("stuck")
        self.release = asyncio.Event()

    async def send(self, alert: Alert) -> None:
        self.calls += 1
        await self.release.wait()


def delivery(e: object) -> Delivery:
    return Delivery(event=e, topic=OPS_EVENTS, partition=0, offset=0)  # type: ignore[arg-type]


async def test_alerts_on_the_bus_reach_every_notifier_once() -> None:
    bus = InMemoryEventBus()
    a, b = Recording("a"), Recording("b")
    dispatcher = AlertDispatcher([a, b], retry=FAST)
    await dispatcher.subscribe(bus)
    try:
        firing = event(key="k1")
        await bus.publish(OPS_EVENTS, [firing, firing])  # delivered twice: notified once
        await bus.publish(OPS_EVENTS, [event(key="k1")])  # same condition again: suppressed
        await bus.publish(OPS_EVENTS, [event(key="k1", state=2)])  # its resolve
        await eventually(lambda: _done(a, b, 2), what="both notifiers")
    finally:
        await dispatcher.aclose()
    assert [x.state_name for x in a.sent] == ["FIRING", "RESOLVED"]
    assert [x.event_id for x in a.sent] == [x.event_id for x in b.sent]
    assert a.sent[0].event_id == firing.id
    assert (dispatcher.received, dispatcher.gate.suppressed) == (3, 1)


def _done(a: Recording, b: Recording, n: int):  # type: ignore[no-untyped-def]
    async def check() -> bool:
        return len(a.sent) == n and len(b.sent) == n

    return check()


async def test_a_send_is_retried_with_backoff_until_it_succeeds() -> None:
    flaky = Recording("flaky", fail_first=2)
    dispatcher = AlertDispatcher([flaky], retry=FAST)
    dispatcher.start()
    try:
        await dispatcher.handle(delivery(event(key="r")))

        async def sent() -> bool:
            return len(flaky.sent) == 1

        await eventually(sent, what="the third attempt")
    finally:
        await dispatcher.aclose()
    [channel] = dispatcher.channels
    assert (flaky.calls, channel.sent, channel.failed) == (3, 1, 0)


async def test_a_failing_and_a_stuck_notifier_block_neither_the_others_nor_the_consumer() -> None:
    broken = Recording("broken", fail_first=10**6)
    stuck = Stuck()
    good = Recording("good")
    dispatcher = AlertDispatcher([broken, stuck, good], retry=FAST, queue_size=3)
    dispatcher.start()
    broken_channel, stuck_channel, good_channel = dispatcher.channels
    try:
        for n in range(10):
            started = time.monotonic()
            await dispatcher.handle(delivery(event(key=f"k{n}")))
            assert time.monotonic() - started < 0.1  # the handler only queues

            async def good_has_it(n: int = n) -> bool:
                return len(good.sent) == n + 1

            await eventually(good_has_it, what=f"alert {n} on the good notifier")

        async def broken_settled() -> bool:
            return broken_channel.failed + broken_channel.dropped == 10

        await eventually(broken_settled, what="the broken notifier to give up on each")
        assert broken_channel.failed >= 1
        assert broken_channel.sent == 0
        assert broken.calls == 3 * broken_channel.failed  # every attempt of the retry policy
        # One alert in the stuck send, three queued, the six oldest others dropped.
        assert stuck.calls == 1
        assert (stuck_channel.pending, stuck_channel.dropped) == (3, 6)
        assert (good_channel.sent, good_channel.dropped) == (10, 0)
    finally:
        await dispatcher.aclose()


async def test_stale_alerts_and_other_events_are_not_notified() -> None:
    notifier = Recording()
    dispatcher = AlertDispatcher([notifier], max_age_s=60)
    dispatcher.start()
    try:
        await dispatcher.handle(delivery(event(key="old", at=time.time() - 3600)))
        other = event(key="x")
        other.ClearField("alert_raised")
        await dispatcher.handle(delivery(other))
        await dispatcher.handle(delivery(event(key="new")))

        async def one() -> bool:
            return len(notifier.sent) == 1

        await eventually(one, what="the fresh alert")
    finally:
        await dispatcher.aclose()
    assert notifier.sent[0].dedupe_key == "new"
    assert dispatcher.stale == 1


async def test_the_window_held_back_firing_is_sent_by_the_ticker() -> None:
    notifier = Recording()
    clock = [0.0]
    gate = AlertGate(window_s=100, clock=lambda: clock[0])
    dispatcher = AlertDispatcher([notifier], gate=gate, tick_s=0.01)
    dispatcher.start()
    try:
        for state in (1, 2, 1):
            await dispatcher.handle(delivery(event(key="flap", state=state)))
        clock[0] = 101.0

        async def three() -> bool:
            return len(notifier.sent) == 3

        await eventually(three, what="the held-back FIRING")
    finally:
        await dispatcher.aclose()
    assert [a.state_name for a in notifier.sent] == ["FIRING", "RESOLVED", "FIRING"]


SLACK_SECRET = "webhook-secret-token-123"
SMTP_PASSWORD = "smtp-pass-s3cret-987"


async def test_no_secret_reaches_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    assert SLACK_SECRET in WEBHOOK_PATH
    with slack_receiver() as slack, smtp_server(user="alerts", password="the-right-one") as box:
        slack.statuses = [500, 500, 500]
        settings = AlertSettings(
            slack_webhook_url=slack.url,
            smtp_host=box.host,
            smtp_port=box.port,
            smtp_user="alerts",
            smtp_password=SMTP_PASSWORD,  # refused: 535
            email_from="q@example.com",
            email_to=("o@example.com",),
            retry=FAST,
        )
        unreachable = AlertSettings(
            slack_webhook_url=f"http://127.0.0.1:{free_port()}{WEBHOOK_PATH}", retry=FAST
        )
        assert SLACK_SECRET not in repr(settings)
        assert SMTP_PASSWORD not in repr(settings)
        for s in (settings, unreachable):
            dispatcher = AlertDispatcher(s.notifiers(), retry=FAST)
            dispatcher.start()
            try:
                await dispatcher.handle(delivery(event(key="secret-test")))

                async def settled(d: AlertDispatcher = dispatcher) -> bool:
                    return all(c.sent + c.failed == 1 for c in d.channels)

                await eventually(settled, what="every channel to settle")
            finally:
                await dispatcher.aclose()
            failed = {c.name: c.failed for c in dispatcher.channels}
            assert failed == ({"log": 0, "slack": 1, "email": 1} if s is settings
                              else {"log": 0, "slack": 1})  # fmt: skip
    for expected in ("giving up", "answered HTTP 500", "answered 535", "ConnectError"):
        assert expected in caplog.text
    assert SLACK_SECRET not in caplog.text
    assert SMTP_PASSWORD not in caplog.text
