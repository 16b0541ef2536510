"""Consumer-side dedupe by `Event.id`: the bus delivers at least once, a handler's effect must
happen once.

`Deduper` remembers the last `capacity` ids this process handled, which covers what a
rebalance or a retried publish redelivers to a live consumer. It forgets on restart: an effect
that must happen once across restarts records the id durably in the same write as the effect
(e.g. Redis `SET <prefix>:seen:<id> NX` in the script that applies it, or a unique key in the
same database transaction). docs/operations/kafka.md, "Dedupe".
"""

from __future__ import annotations

from collections import OrderedDict

from .errors import EventBusError
from .model import Delivery, Handler

# 100,000 ids of ~36 characters: ~15 MB, several minutes of the busiest topic.
DEFAULT_DEDUPE_CAPACITY = 100_000


class Deduper:
    """An LRU set of event ids. Not shared between tasks that handle the same id at once: one
    subscription handles one event at a time, which is what it is made for."""

    def __init__(self, capacity: int = DEFAULT_DEDUPE_CAPACITY) -> None:
        if capacity < 1:
            raise EventBusError(
                f"dedupe capacity must be at least 1, got {capacity}",
                operation="subscribe",
                retryable=False,
                code="E_VALIDATION",
                field="capacity",
            )
        self.capacity = capacity
        self._seen: OrderedDict[str, None] = OrderedDict()

    def seen(self, event_id: str) -> bool:
        if event_id in self._seen:
            self._seen.move_to_end(event_id)
            return True
        return False

    def mark(self, event_id: str) -> None:
        """Records `event_id` once its effect happened (never before: an effect that failed
        must run again on redelivery)."""
        self._seen[event_id] = None
        self._seen.move_to_end(event_id)
        while len(self._seen) > self.capacity:
            self._seen.popitem(last=False)

    def __len__(self) -> int:
        return len(self._seen)


def deduplicated(handler: Handler, deduper: Deduper) -> Handler:
    """`handler`, skipping events whose id `deduper` has seen and marking each after it
    returned."""

    async def once(delivery: Delivery) -> None:
        event_id = delivery.event.id
        if deduper.seen(event_id):
            return
        await handler(delivery)
        deduper.mark(event_id)

    return once
