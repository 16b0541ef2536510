"""The event bus's pure parts: the wire codec's refusals, topic routing and specs, and the
Kafka settings' validation (no broker needed)."""

from __future__ import annotations

import pytest

from qmtl.events.v1 import alert_events_pb2, event_pb2
from qmtl.runtime.eventbus import (
    DAG_EVENTS,
    EVENT_TOPICS,
    OPS_EVENTS,
    STRATEGY_EVENTS,
    EventBusError,
    InvalidEventError,
    UndecodableRecord,
    dead_letter_topic,
    decode,
    encode,
    event_topic_specs,
    topic_for_event_type,
)
from qmtl.runtime.eventbus.kafka_settings import KafkaEventBusSettings
from qmtl.runtime.eventbus.topics import DEAD_LETTER_RETENTION_MS, EVENT_RETENTION_MS


def event() -> event_pb2.Event:
    return event_pb2.Event(
        id="e-1",
        type="qmtl.ops.alert_raised",
        subject="services/gateway",
        alert_raised=alert_events_pb2.AlertRaised(name="x"),
    )


def test_encode_then_decode_is_the_same_event_keyed_by_subject() -> None:
    record = encode(event())
    assert record.key == b"services/gateway"
    assert dict(record.headers)["qmtl-event-id"] == b"e-1"
    assert decode(record.value, record.headers) == event()


def test_decode_takes_bare_values_and_content_type_parameters_and_any_header_case() -> None:
    value = event().SerializeToString()
    assert decode(value, ()) == event()
    headers = [("Content-Type", b"application/x-protobuf; messageType=qmtl.events.v1.Event")]
    assert decode(value, headers) == event()


@pytest.mark.parametrize(
    ("value", "headers", "reason"),
    [
        (None, (), "tombstone"),
        (b"\xff\xff", (), "not a qmtl.events.v1.Event"),
        (b"", (), "without id or type"),
        (b"x", [("content-type", b"application/json")], "content-type"),
        (b"x", [("qmtl-message-type", b"qmtl.Other")], "message type"),
    ],
)
def test_decode_refuses_what_is_not_an_event_with_a_reason(
    value: bytes | None, headers: list[tuple[str, bytes]], reason: str
) -> None:
    with pytest.raises(UndecodableRecord) as caught:
        decode(value, headers)
    assert reason in caught.value.reason


def test_event_types_route_to_their_area_topic() -> None:
    assert topic_for_event_type("qmtl.dag.queue_updated") == DAG_EVENTS
    assert topic_for_event_type("qmtl.gateway.dag_changed") == STRATEGY_EVENTS
    assert topic_for_event_type("qmtl.ops.service_restarted") == OPS_EVENTS
    for bad in ("qmtl.unknown.x", "other.dag.x", ""):
        with pytest.raises(InvalidEventError) as caught:
            topic_for_event_type(bad)
        assert caught.value.field == "type"


def test_every_payload_type_of_the_schema_has_a_topic() -> None:
    # The oneof's comments name each payload's type: `type `qmtl.dag.node_status_changed``.
    oneof = event_pb2.Event.DESCRIPTOR.oneofs_by_name["payload"]
    assert len(oneof.fields) >= 7
    types = {
        "node_status_changed": "qmtl.dag.node_status_changed",
        "queue_updated": "qmtl.dag.queue_updated",
        "queue_lifecycle": "qmtl.dag.queue_lifecycle",
        "strategy_state_changed": "qmtl.gateway.strategy_state_changed",
        "dag_changed": "qmtl.gateway.dag_changed",
        "alert_raised": "qmtl.ops.alert_raised",
        "service_restarted": "qmtl.ops.service_restarted",
    }
    for field in oneof.fields:
        assert topic_for_event_type(types[field.name]) in EVENT_TOPICS


def test_event_topic_specs_pair_each_topic_with_its_dead_letter_topic() -> None:
    specs = {spec.name: spec for spec in event_topic_specs(replication=3)}
    assert set(specs) == {*EVENT_TOPICS, *(dead_letter_topic(t) for t in EVENT_TOPICS)}
    assert specs[DAG_EVENTS].retention_ms == EVENT_RETENTION_MS
    assert specs[dead_letter_topic(DAG_EVENTS)].retention_ms == DEAD_LETTER_RETENTION_MS
    assert all(s.partitions == 6 and s.replication_factor == 3 for s in specs.values())
    assert specs[OPS_EVENTS].config["retention.ms"] == str(EVENT_RETENTION_MS)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"attempts": 0}, "attempts"),
        ({"backoff_base_s": -1.0}, "backoff_base_s"),
        ({"heartbeat_interval_ms": 10_000, "session_timeout_ms": 10_000}, "heartbeat_interval_ms"),
    ],
)
def test_kafka_settings_refuse_impossible_values(change: dict[str, float], field: str) -> None:
    with pytest.raises(EventBusError) as caught:
        KafkaEventBusSettings(**change)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert not caught.value.retryable


def test_backoff_doubles_up_to_its_cap() -> None:
    settings = KafkaEventBusSettings(backoff_base_s=0.2, backoff_cap_s=1.0)
    assert [settings.backoff(n) for n in range(1, 5)] == [0.2, 0.4, 0.8, 1.0]


def test_bus_errors_map_to_the_catalogue() -> None:
    down = EventBusError("broker away", operation="publish", topics=["t"], attempts=5)
    assert down.to_qmtl_error().http_status == 503
    assert down.retryable
    assert down.details() == {"operation": "publish", "topics": ["t"], "attempts": 5}
    missing = EventBusError("no topic", operation="subscribe", retryable=False, code="E_NOT_FOUND")
    assert missing.to_qmtl_error().http_status == 404
    invalid = InvalidEventError("no id", field="events[0].id", topic="t")
    assert invalid.to_qmtl_error().http_status == 422
    assert invalid.details()["field"] == "events[0].id"
