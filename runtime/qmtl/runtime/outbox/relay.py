"""OutboxRelay: publishes what state changes wrote into the outbox, then marks it sent.

The relay reads the oldest pending entries (`outbox_pending`), publishes them through the
event bus in that order (consecutive entries of one topic in one `publish`), and acks exactly
the entries whose publish the broker acknowledged. A crash anywhere in between leaves the
entries pending, so the next relay (this process after a restart, or another instance)
publishes them again with the SAME Event.id: delivery is at least once and consumers dedupe
by id. `drain()` repeats until the outbox is empty and returns the count, which the boot
routine reports as ServiceRestarted.replayed_events; `start()` keeps a background loop that
drains when `notify()`ed and every `interval_s` regardless. docs/operations/outbox.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Protocol

from google.protobuf.message import DecodeError

from qmtl.events.v1 import event_pb2
from qmtl.runtime import metrics
from qmtl.runtime.eventbus.errors import InvalidEventError
from qmtl.runtime.eventbus.model import check_publishable
from qmtl.runtime.graphstore.model import MAX_BATCH
from qmtl.runtime.graphstore.outbox import DEFAULT_OUTBOX_PAGE, OutboxEntry

from .errors import OutboxConfigError

_log = logging.getLogger(__name__)

# Seconds between two drains when nobody notifies: bounds how long an entry a crashed
# instance left behind waits for another instance's relay.
DEFAULT_RELAY_INTERVAL_S = 5.0
# Backoff after a failed drain (bus or store down): doubled per failure up to the cap.
RELAY_BACKOFF_BASE_S = 0.5
RELAY_BACKOFF_CAP_S = 30.0


class OutboxStore(Protocol):
    """What the relay reads and acks: any GraphStore, a RedisOutbox, a MemoryOutbox."""

    async def outbox_pending(self, limit: int = DEFAULT_OUTBOX_PAGE) -> list[OutboxEntry]: ...

    async def outbox_ack(self, ids: Sequence[str]) -> int: ...


class EventPublisher(Protocol):
    """The publishing half of qmtl.runtime.eventbus.EventBus."""

    async def publish(self, topic: str, events: Sequence[event_pb2.Event]) -> None: ...


def backoff_delay(failures: int) -> float:
    """Seconds to wait after `failures` (>= 1) drains in a row failed."""
    return float(min(RELAY_BACKOFF_CAP_S, RELAY_BACKOFF_BASE_S * 2 ** (failures - 1)))


class OutboxRelay:
    def __init__(
        self,
        store: OutboxStore,
        bus: EventPublisher,
        *,
        page: int = DEFAULT_OUTBOX_PAGE,
        interval_s: float = DEFAULT_RELAY_INTERVAL_S,
    ) -> None:
        if not 1 <= page <= MAX_BATCH:
            raise OutboxConfigError(f"must be 1..{MAX_BATCH}, got {page}", field="page")
        if not interval_s > 0:
            raise OutboxConfigError(f"must be > 0 seconds, got {interval_s}", field="interval_s")
        self._store = store
        self._bus = bus
        self._page = page
        self._interval_s = interval_s
        self._lock = asyncio.Lock()  # one drain at a time: the loop and a boot drain
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.relayed = 0  # entries published and acked by this relay, in all
        self.dropped = 0  # entries the bus would refuse for good, acked unsent (`_decode`)
        self.failures = 0  # drains failed in a row (the background loop's backoff)

    async def drain(self) -> int:
        """Publishes and acks pending entries until none is left; returns how many.

        Raises what the bus or the store raised (EventBusError; GraphStoreError or
        OutboxError); entries published before the failure and acked stay counted in
        `relayed`, the rest stay pending for the next drain."""
        async with self._lock:
            sent = 0
            while entries := await self._store.outbox_pending(self._page):
                for topic, run in _runs(entries):
                    events = [e for e in (self._decode(entry) for entry in run) if e is not None]
                    if events:
                        await self._bus.publish(topic, events)
                    # Only after the broker acknowledged: a crash before this line republishes.
                    await self._store.outbox_ack([entry.id for entry in run])
                    sent += len(events)
                    self.relayed += len(events)
                    metrics.OUTBOX_RELAYED.inc(len(events))
            return sent

    def notify(self) -> None:
        """Wakes the background loop to drain now (a state change just wrote an entry)."""
        self._wake.set()

    async def announced(self) -> None:
        """The DAG Manager's hook after a write that announced something (OutboxNotify)."""
        self.notify()

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop(), name="outbox-relay")

    async def stop(self) -> None:
        """Stops the loop; an entry in flight stays pending unless its ack went through."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.drain()
                self.failures = 0
                timeout = self._interval_s
            except Exception:  # the bus or the store is down: keep the entries, retry later
                self.failures += 1
                metrics.OUTBOX_RELAY_FAILURES.inc()
                timeout = backoff_delay(self.failures)
                _log.warning("outbox relay: drain failed, retry in %.1fs", timeout, exc_info=True)
                await asyncio.sleep(timeout)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    def _decode(self, entry: OutboxEntry) -> event_pb2.Event | None:
        # Writers store a serialized, publishable Event, so this refuses only a corrupted or
        # hand-written entry; it is logged and acked (dropped) rather than failing every drain
        # and blocking every entry behind it forever (the bus would refuse it each time).
        event = event_pb2.Event()
        try:
            event.ParseFromString(entry.payload)
            check_publishable(entry.topic, [event])
            reason = "" if event.id == entry.id else f"its Event.id is {event.id!r}"
        except DecodeError as exc:
            reason = f"not an Event: {exc}"
        except InvalidEventError as exc:
            reason = exc.message
        if reason:
            self.dropped += 1
            _log.error("outbox relay: entry %s dropped, %s", entry.id, reason)
            return None
        return event


def _runs(entries: Sequence[OutboxEntry]) -> list[tuple[str, list[OutboxEntry]]]:
    """Consecutive entries of one topic, in order: one publish each keeps the global order."""
    runs: list[tuple[str, list[OutboxEntry]]] = []
    for entry in entries:
        if runs and runs[-1][0] == entry.topic:
            runs[-1][1].append(entry)
        else:
            runs.append((entry.topic, [entry]))
    return runs
