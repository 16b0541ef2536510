"""The DAG Manager's side of the transactional outbox (docs/operations/outbox.md).

The core never publishes: a state change that raises an event hands the event's
`OutboxMessage` to the GraphStore call that makes the change, so both commit together, and then
tells its `OutboxNotify` (the relay) that something is waiting. `boot_replay` is what a
starting DAG Manager runs before serving: it relays whatever an earlier run wrote but did not
publish, and announces the restart with that count.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Protocol

from google.protobuf.timestamp_pb2 import Timestamp

from qmtl.events.v1 import event_pb2, service_events_pb2
from qmtl.runtime.eventbus.topics import topic_for_event_type
from qmtl.runtime.graphstore import OutboxMessage
from qmtl.runtime.outbox import EventPublisher, OutboxRelay

from .events import DEFAULT_SOURCE, make_event

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


async def boot_replay(
    relay: OutboxRelay,
    bus: EventPublisher,
    *,
    instance_id: str | None = None,
    crash_detected: bool = False,
    started_at: float | None = None,
    source: str = DEFAULT_SOURCE,
    clock: Callable[[], float] = time.time,
) -> service_events_pb2.ServiceRestarted:
    """Relays every pending entry, then publishes ServiceRestarted with `replayed_events` =
    how many that was. Raises the bus's or the store's error if either is down (the caller
    retries the boot; nothing is lost meanwhile)."""
    replayed = await relay.drain()
    started = Timestamp()
    started.FromNanoseconds(int((clock() if started_at is None else started_at) * 1e9))
    restarted = service_events_pb2.ServiceRestarted(
        service=SERVICE_NAME,
        instance_id=instance_id or str(uuid.uuid4()),
        started_at=started,
        crash_detected=crash_detected,
        replayed_events=replayed,
    )
    event = make_event(
        "service_restarted",
        restarted,
        subject=f"services/{SERVICE_NAME}",
        idempotency_key=f"service_restarted:{restarted.instance_id}",
        source=source,
        clock=clock,
    )
    await bus.publish(topic_for_event_type(event.type), [event])
    return restarted
