"""The event bus: the EventBus port, the wire, dedupe helpers and the in-memory adapter; the
machinery is written once against a `Codec` and shared with the RecordBus
(qmtl.runtime.recordbus).

The aiokafka adapter is `qmtl.runtime.eventbus.kafka.KafkaEventBus` (imported on demand: the
slim runtime wheel ships without a Kafka driver). See docs/operations/kafka.md.
"""

from .codec import Codec
from .dedupe import DEFAULT_DEDUPE_CAPACITY, Deduper, deduplicated
from .errors import EventBusError, InvalidEventError
from .memory import InMemoryEventBus
from .model import (
    CONTENT_TYPE,
    EVENT_CODEC,
    HEADER_CONTENT_TYPE,
    HEADER_DLQ_GROUP,
    HEADER_DLQ_OFFSET,
    HEADER_DLQ_PARTITION,
    HEADER_DLQ_REASON,
    HEADER_DLQ_TOPIC,
    HEADER_EVENT_ID,
    HEADER_MESSAGE_TYPE,
    MESSAGE_TYPE,
    Delivery,
    Handler,
    UndecodableRecord,
    WireRecord,
    decode,
    encode,
)
from .port import EventBus, Subscription
from .topics import (
    DAG_EVENTS,
    EVENT_TOPICS,
    OPS_EVENTS,
    STRATEGY_EVENTS,
    dead_letter_topic,
    event_topic_specs,
    topic_for_event_type,
)

__all__ = [
    "CONTENT_TYPE",
    "DAG_EVENTS",
    "DEFAULT_DEDUPE_CAPACITY",
    "EVENT_CODEC",
    "EVENT_TOPICS",
    "HEADER_CONTENT_TYPE",
    "HEADER_DLQ_GROUP",
    "HEADER_DLQ_OFFSET",
    "HEADER_DLQ_PARTITION",
    "HEADER_DLQ_REASON",
    "HEADER_DLQ_TOPIC",
    "HEADER_EVENT_ID",
    "HEADER_MESSAGE_TYPE",
    "MESSAGE_TYPE",
    "OPS_EVENTS",
    "STRATEGY_EVENTS",
    "Codec",
    "Deduper",
    "Delivery",
    "EventBus",
    "EventBusError",
    "Handler",
    "InMemoryEventBus",
    "InvalidEventError",
    "Subscription",
    "UndecodableRecord",
    "WireRecord",
    "dead_letter_topic",
    "decode",
    "deduplicated",
    "encode",
    "event_topic_specs",
    "topic_for_event_type",
]
