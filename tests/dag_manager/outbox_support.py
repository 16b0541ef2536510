"""The DAG Manager's outbox in unit tests: what the relay published, read right after the call.

`RelayedEvents(store)` is the core's OutboxNotify: each announcement drains the store's outbox
through a real OutboxRelay into `RecordingBus`, so `events` is what the relay published, in
publish order. A bus failure is swallowed as the production relay's loop does (the entries
stay pending; `drain()` again to retry).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from qmtl.events.v1 import event_pb2
from qmtl.runtime.outbox import OutboxRelay, OutboxStore


class BusDown(Exception):
    """A publish refused by RecordingBus (`failures` left)."""


class RecordingBus:
    """An EventPublisher keeping (topic, event) in publish order; fails `failures` times first."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.published: list[tuple[str, event_pb2.Event]] = []

    async def publish(self, topic: str, events: Sequence[event_pb2.Event]) -> None:
        if self.failures:
            self.failures -= 1
            raise BusDown("event bus down")
        self.published.extend((topic, event) for event in events)

    @property
    def events(self) -> list[event_pb2.Event]:
        return [event for _, event in self.published]


class RelayedEvents:
    def __init__(self, store: OutboxStore, bus: RecordingBus | None = None) -> None:
        self.bus = bus if bus is not None else RecordingBus()
        self.relay = OutboxRelay(store, self.bus)

    @property
    def events(self) -> list[event_pb2.Event]:
        return self.bus.events

    async def announced(self) -> None:
        # Pending in the outbox, as with the production relay's loop.
        with contextlib.suppress(BusDown):
            await self.relay.drain()

    async def drain(self) -> int:
        return await self.relay.drain()
