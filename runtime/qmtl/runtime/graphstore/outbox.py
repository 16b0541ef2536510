"""The transactional outbox's values: what a state change writes with itself, what the relay reads.

A GraphStore call that changes state and announces it takes `OutboxMessage`s and writes them in
the SAME transaction as the change (`record_answer(..., announce=)`, `delete_queues(...,
announce=)`), so a crash can never leave the change without its announcement (or the reverse).
The relay (qmtl.runtime.outbox) reads `outbox_pending`, publishes, then `outbox_ack`s. The store
never decodes a payload: it is the serialized `qmtl.events.v1.Event`, whose id is `id`, fixed
when the message is written so a republish after a crash carries the same id (consumers dedupe
on it). docs/operations/outbox.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .errors import GraphBatchTooLargeError, InvalidGraphInputError
from .model import MAX_BATCH

# Bytes of one outbox payload: Kafka's default max.message.bytes is 1 MiB, and a payload the
# broker would refuse must be refused here, where the caller can still see it.
MAX_OUTBOX_PAYLOAD_BYTES = 1024 * 1024
# Entries `outbox_pending` returns when no limit is given: one relay publish batch.
DEFAULT_OUTBOX_PAGE = 100


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """One event to publish on `topic`, written with the state change that raised it."""

    id: str  # the Event.id inside `payload`
    topic: str  # the event-bus topic (qmtl.runtime.eventbus.topics)
    payload: bytes  # the serialized Event


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """A message waiting in the outbox; `created_at` is the store's clock when it was written."""

    id: str
    topic: str
    payload: bytes
    created_at: float


# record_answer's announcement: called with the new version, only when the answer changed,
# inside the transaction; None announces nothing (an any-interval query, say).
AnswerAnnouncement = Callable[[int], "OutboxMessage | None"]
# delete_queues' announcements: one per topic; written only for the topics actually deleted.
DeleteAnnouncements = Mapping[str, OutboxMessage]


def check_message(message: OutboxMessage, where: str) -> None:
    if not message.id:
        raise InvalidGraphInputError("must not be empty", field=f"{where}.id")
    if not message.topic:
        raise InvalidGraphInputError("must not be empty", field=f"{where}.topic")
    if len(message.payload) > MAX_OUTBOX_PAYLOAD_BYTES:
        raise GraphBatchTooLargeError(
            f"{len(message.payload)} bytes, the limit is {MAX_OUTBOX_PAYLOAD_BYTES}",
            field=f"{where}.payload",
        )


def check_announcements(announce: DeleteAnnouncements | None) -> None:
    if announce is None:
        return
    if len(announce) > MAX_BATCH:
        raise GraphBatchTooLargeError(
            f"{len(announce)} entries in one call, the limit is {MAX_BATCH}", field="announce"
        )
    for topic, message in announce.items():
        check_message(message, f"announce[{topic}]")


def check_page(limit: int) -> None:
    if not 1 <= limit <= MAX_BATCH:
        raise InvalidGraphInputError(f"must be 1..{MAX_BATCH}, got {limit}", field="limit")
