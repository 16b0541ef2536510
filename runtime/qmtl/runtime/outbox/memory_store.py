"""MemoryOutbox: the embedded outbox, for in-memory stores and tests.

A memory store holding state of its own calls `append_now` under the same lock as its state
change, so the change and its events are one step; the relay then reads and acks them like
any OutboxStore. Nothing survives the process, so it protects against a failed publish, not
against a crash (docs/operations/outbox.md).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence

from qmtl.events.v1 import event_pb2
from qmtl.runtime.graphstore.outbox import DEFAULT_OUTBOX_PAGE, OutboxEntry

from .validation import append_argv, check_ack_ids, check_page


class MemoryOutbox:
    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._entries: dict[str, OutboxEntry] = {}  # id -> entry, in append order

    def append_now(self, topic: str, events: Sequence[event_pb2.Event]) -> int:
        """Adds each event not already pending; all or none (every event is checked first).
        Returns how many were added. Synchronous, so a caller's lock covers it."""
        now = self._clock()
        added = 0
        for entry_id, entry_topic, payload in append_argv(topic, events):
            # An id already pending keeps its first entry, as in every other outbox.
            if entry_id not in self._entries:
                self._entries[entry_id] = OutboxEntry(entry_id, entry_topic, payload, now)
                added += 1
        return added

    async def append(self, topic: str, events: Sequence[event_pb2.Event]) -> int:
        return self.append_now(topic, events)

    async def outbox_pending(self, limit: int = DEFAULT_OUTBOX_PAGE) -> list[OutboxEntry]:
        check_page(limit)
        return list(itertools.islice(self._entries.values(), limit))

    async def outbox_ack(self, ids: Sequence[str]) -> int:
        check_ack_ids(ids)
        return sum(self._entries.pop(i, None) is not None for i in set(ids))

    async def outbox_size(self) -> int:
        return len(self._entries)
