"""The in-memory RecordBus: the embedded default (`--backend memory`), on the same machinery
as the in-memory EventBus.

Node topics on Kafka have one partition (topicadmin's profile for node types), so the
in-memory default is one partition too: a node's records are read in the order produced.
"""

from __future__ import annotations

from collections.abc import Sequence

from qmtl.data.v1 import record_pb2
from qmtl.runtime.eventbus.memory import InMemoryBus
from qmtl.runtime.eventbus.model import UndecodableRecord

from .codec import RECORD_CODEC, RecordDelivery

DEFAULT_RECORD_PARTITIONS = 1


class InMemoryRecordBus(InMemoryBus[record_pb2.Record, RecordDelivery]):
    def __init__(self, *, partitions: int = DEFAULT_RECORD_PARTITIONS) -> None:
        super().__init__(RECORD_CODEC, partitions=partitions)

    async def produce(self, topic: str, records: Sequence[record_pb2.Record]) -> None:
        await self.send_messages(topic, records)

    async def read(self, topic: str) -> list[RecordDelivery]:
        self._check_open("subscribe", topic)
        found: list[RecordDelivery] = []
        for partition, log in enumerate(self._logs.get(topic, [])):
            for offset, wire in enumerate(list(log)):
                try:
                    record = RECORD_CODEC.decode(wire.value, wire.headers)
                except UndecodableRecord:
                    continue
                found.append(RecordDelivery(record, topic, partition, offset))
        return found
