"""The record bus: node output records (`qmtl.data.v1.Record`) on node topics.

The port (`RecordBus`), the wire (`RecordCodec`) and the in-memory adapter; the aiokafka
adapter is `qmtl.runtime.recordbus.kafka.KafkaRecordBus` (imported on demand, like the event
bus's). Both run on the event bus's machinery. docs/operations/data-plane.md.
"""

from .codec import RECORD_CODEC, RECORD_TYPE, RecordCodec, RecordDelivery
from .memory import DEFAULT_RECORD_PARTITIONS, InMemoryRecordBus
from .port import RecordBus, RecordHandler

__all__ = [
    "DEFAULT_RECORD_PARTITIONS",
    "RECORD_CODEC",
    "RECORD_TYPE",
    "InMemoryRecordBus",
    "RecordBus",
    "RecordCodec",
    "RecordDelivery",
    "RecordHandler",
]
