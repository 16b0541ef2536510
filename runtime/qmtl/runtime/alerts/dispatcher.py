"""The alert dispatcher: AlertRaised events from qmtl.events.ops to every notifier.

It subscribes to qmtl.events.ops in the group `qmtl-alerts` (one group: several dispatcher
processes share the work, so each alert is notified once). For each AlertRaised it drops a
duplicate Event.id (at-least-once delivery), drops an alert older than `max_age_s` (a new group
starts at the earliest retained event: an old backlog is not paged), asks the `AlertGate`
(ratelimit.py) and hands what it admits to each notifier's own queue.

Each notifier has a bounded queue and one sender task: the consumer only appends, so a slow or
failing notifier never holds up the bus or the other notifiers. A full queue drops its oldest
alert and counts it (`dropped`). A send is retried with exponential backoff (`RetryPolicy`);
after the last attempt the alert is logged as undelivered on that channel and counted
(`failed`). Log lines name the channel and the error's own message, never a notifier's secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from qmtl.runtime.eventbus import OPS_EVENTS, Deduper, Delivery, EventBus, Subscription

from .model import Alert
from .notifiers.port import Notifier, NotifierError
from .ratelimit import AlertGate

_log = logging.getLogger("qmtl.alerts.dispatcher")

GROUP = "qmtl-alerts"
DEFAULT_QUEUE_SIZE = 1000
DEFAULT_MAX_AGE_S = 3600.0
# How often alerts held back by the rate-limit window are looked at.
DEFAULT_TICK_S = 1.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 5
    initial_s: float = 1.0
    multiplier: float = 2.0
    max_s: float = 30.0

    def delay(self, attempt: int) -> float:
        """Seconds before try `attempt + 1` (attempt counts from 1)."""
        return float(min(self.max_s, self.initial_s * self.multiplier ** (attempt - 1)))


class NotifierChannel:
    """One notifier, its bounded queue and its sender task."""

    def __init__(self, notifier: Notifier, *, retry: RetryPolicy, queue_size: int) -> None:
        self.notifier = notifier
        self.retry = retry
        self._queue: deque[Alert] = deque(maxlen=queue_size)
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.sent = 0
        self.failed = 0
        self.dropped = 0

    @property
    def name(self) -> str:
        return self.notifier.name

    @property
    def pending(self) -> int:
        return len(self._queue)

    def offer(self, alert: Alert) -> None:
        if len(self._queue) == self._queue.maxlen:
            dropped = self._queue[0]
            self.dropped += 1
            _log.warning(
                "alerts: %s queue full, dropped the oldest alert %s (%s); %d dropped so far",
                self.name,
                dropped.name,
                dropped.dedupe_key,
                self.dropped,
            )
        self._queue.append(alert)
        self._ready.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"alerts-{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.notifier.aclose()

    async def _run(self) -> None:
        while True:
            await self._ready.wait()
            while self._queue:
                await self._deliver(self._queue.popleft())
            self._ready.clear()

    async def _deliver(self, alert: Alert) -> None:
        for attempt in range(1, self.retry.attempts + 1):
            try:
                await self.notifier.send(alert)
            except NotifierError as exc:
                last = attempt >= self.retry.attempts or not exc.retryable
                _log.warning(
                    "alerts: %s could not send %s (%s), attempt %d/%d: %s%s",
                    self.name,
                    alert.name,
                    alert.dedupe_key,
                    attempt,
                    self.retry.attempts,
                    exc.message,
                    "; giving up" if last else "",
                )
                if last:
                    self.failed += 1
                    return
            except Exception as exc:  # a notifier bug must not end its sender task
                _log.error(
                    "alerts: %s crashed sending %s: %s", self.name, alert.name, type(exc).__name__
                )
                self.failed += 1
                return
            else:
                self.sent += 1
                return
            await asyncio.sleep(self.retry.delay(attempt))


class AlertDispatcher:
    def __init__(
        self,
        notifiers: Sequence[Notifier],
        *,
        gate: AlertGate | None = None,
        retry: RetryPolicy | None = None,
        queue_size: int = DEFAULT_QUEUE_SIZE,
        max_age_s: float = DEFAULT_MAX_AGE_S,
        tick_s: float = DEFAULT_TICK_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.gate = gate or AlertGate()
        retry = retry or RetryPolicy()
        self.channels = [NotifierChannel(n, retry=retry, queue_size=queue_size) for n in notifiers]
        self.max_age_s = max_age_s
        self._tick_s = tick_s
        self._clock = clock
        self._seen = Deduper()
        self._subscription: Subscription | None = None
        self._ticker: asyncio.Task[None] | None = None
        self.received = 0
        self.stale = 0

    def start(self) -> None:
        """Starts the notifier senders and the rate-limit ticker (subscribe() calls it)."""
        for channel in self.channels:
            channel.start()
        if self._ticker is None:
            self._ticker = asyncio.create_task(self._tick(), name="alerts-ticker")

    async def subscribe(self, bus: EventBus, *, group: str = GROUP) -> Subscription:
        self.start()
        self._subscription = await bus.subscribe([OPS_EVENTS], group, self.handle)
        return self._subscription

    async def handle(self, delivery: Delivery) -> None:
        """The bus handler: never waits on a notifier."""
        event = delivery.event
        if not event.HasField("alert_raised") or self._seen.seen(event.id):
            return
        self._seen.mark(event.id)  # handing to the queues cannot fail: marked at once
        alert = Alert.from_event(event)
        self.received += 1
        if alert.time and self._clock() - alert.time > self.max_age_s:
            self.stale += 1
            return
        if self.gate.admit(alert):
            self._fan_out(alert)

    def _fan_out(self, alert: Alert) -> None:
        for channel in self.channels:
            channel.offer(alert)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self._tick_s)
            for alert in self.gate.due():
                self._fan_out(alert)

    async def aclose(self) -> None:
        if self._subscription is not None:
            await self._subscription.stop()
            self._subscription = None
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        for channel in self.channels:
            await channel.stop()
