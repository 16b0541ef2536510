"""How a bus's messages become broker records and back: the one thing that differs between
the EventBus (`qmtl.events.v1.Event`) and the RecordBus (`qmtl.data.v1.Record`).

The Kafka and in-memory machinery (`kafka.KafkaBus`, `kafka_consumer.KafkaSubscription`,
`memory.InMemoryBus`) is written once against a `Codec`: producing, retrying, committing after
the handler, dead-lettering what does not decode. Each bus is that machinery plus its codec.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

from .model import WireRecord

M = TypeVar("M")
"""The message a bus carries."""
D = TypeVar("D")
"""What a handler receives: the message and where it was read from."""

_D_co = TypeVar("_D_co", covariant=True)

DeliveryHandler = Callable[[D], Awaitable[None]]


class Codec(Protocol[M, _D_co]):
    @property
    def message_name(self) -> str:
        """The message's full protobuf name, for errors and logs."""
        ...

    def check_publishable(self, topic: str, messages: Sequence[M]) -> None:
        """Raises (nothing sent) for messages a consumer could not key or dedupe."""
        ...

    def encode(self, message: M) -> WireRecord: ...

    def decode(self, value: bytes | None, headers: Sequence[tuple[str, bytes]]) -> M:
        """The message in a record, or `UndecodableRecord` (it is then dead-lettered)."""
        ...

    def delivery(self, message: M, topic: str, partition: int, offset: int) -> _D_co: ...
