"""The DAG Manager's event envelopes."""

from __future__ import annotations

import pytest

from qmtl.events.v1 import queue_events_pb2
from qmtl.services.dag_manager.events import UnknownEventPayload, make_event


async def test_envelope_carries_type_subject_key_and_payload() -> None:
    payload = queue_events_pb2.QueueUpdated(tags=["btc"], interval=60, version=3, etag="e")
    event = make_event(
        "queue_updated",
        payload,
        subject="tags/btc/60",
        idempotency_key="queue_updated:btc:60:any:3",
        clock=lambda: 1_700_000_000.25,
    )
    assert event.type == "qmtl.dag.queue_updated"
    assert event.subject == "tags/btc/60"
    assert event.idempotency_key == "queue_updated:btc:60:any:3"
    assert event.time.seconds == 1_700_000_000
    assert event.time.nanos == 250_000_000
    assert event.WhichOneof("payload") == "queue_updated"
    assert event.queue_updated == payload
    assert len(event.id) == 36


def test_a_payload_the_dag_manager_does_not_publish_is_refused() -> None:
    with pytest.raises(UnknownEventPayload):
        make_event(
            "strategy_state_changed",
            queue_events_pb2.QueueUpdated(),
            subject="s",
            idempotency_key="k",
        )
