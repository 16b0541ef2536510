"""The DAG Manager's side of the transactional outbox (docs/operations/outbox.md).

The core never publishes: a state change that raises an event hands the event's
`OutboxMessage` to the GraphStore call that makes the change, so both commit together, and then
tells its `OutboxNotify` (the relay) that something is waiting. What a starting
service relays before serving is qmtl.runtime.restart's business (docs/operations/boot.md).
"""

from __future__ import annotations

from typing import Protocol

from qmtl.events.v1 import event_pb2
from qmtl.runtime.eventbus.topics import topic_for_event_type
from qmtl.runtime.graphstore import OutboxMessage

SERVICE_NAME = "dag-manager"


class OutboxNotify(Protocol):
    """Told after a GraphStore call wrote outbox entries; `OutboxRelay` is one (it wakes its
    loop). It must not raise for a bus outage: the entries are already safe in the store."""

    async def announced(self) -> None: ...


class NoRelay:
    """For a core without a relay (the entries wait for the next one, e.g. at boot)."""

    async def announced(self) -> None:
        return None


def outbox_message(event: event_pb2.Event) -> OutboxMessage:
    """`event` as an outbox entry on the topic its type belongs to (qmtl.runtime.eventbus)."""
    return OutboxMessage(
        id=event.id, topic=topic_for_event_type(event.type), payload=event.SerializeToString()
    )
