"""One job's stored state, shared by both adapters, and how it becomes the WorkItem callers see.

The submitted WorkItem is kept as protobuf bytes exactly as enqueued; the queue-owned fields
(state, attempts, lease, error, result, timestamps) live beside it and are laid over a decoded
copy on the way out. Bytes in and bytes out means the in-memory adapter cannot hand a caller an
object another caller can mutate, and both adapters meet undecodable bytes the same way.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from google.protobuf import timestamp_pb2
from google.protobuf.message import DecodeError

from qmtl.common.v1 import error_pb2
from qmtl.work.v1 import work_item_pb2, work_state_pb2

from .errors import UNDECODABLE_PAYLOAD
from .validation import check_batch, check_idempotency_key, max_attempts_for

READY = work_state_pb2.WORK_STATE_READY
LEASED = work_state_pb2.WORK_STATE_LEASED
DELAYED = work_state_pb2.WORK_STATE_DELAYED
COMPLETED = work_state_pb2.WORK_STATE_COMPLETED
DEAD = work_state_pb2.WORK_STATE_DEAD

_QueueOwnedField = Literal[
    "state",
    "attempts",
    "lease_owner",
    "lease_deadline",
    "available_at",
    "error",
    "result",
    "created_at",
    "updated_at",
    "finished_at",
]
# The fields the queue owns; whatever a producer put there is dropped at enqueue.
QUEUE_OWNED_FIELDS: tuple[_QueueOwnedField, ...] = (
    "state",
    "attempts",
    "lease_owner",
    "lease_deadline",
    "available_at",
    "error",
    "result",
    "created_at",
    "updated_at",
    "finished_at",
)


class UndecodableItem(Exception):
    """The stored bytes are not a WorkItem; the adapter dead-letters the job."""


# Overwritten by the queue (id, idempotency_key, max_attempts) or owned by it: cleared from
# the bytes a job is kept and fingerprinted as, then the queue's own values are appended.
_REPLACED: tuple[_QueueOwnedField | Literal["id", "idempotency_key", "max_attempts"], ...] = (
    *QUEUE_OWNED_FIELDS,
    "id",
    "idempotency_key",
    "max_attempts",
)
_REPLACED_NAMES = frozenset(_REPLACED)


@dataclass(frozen=True, slots=True)
class PreparedItem:
    """A WorkItem ready to enqueue: its stored bytes without the job id, and their fingerprint."""

    body: bytes
    """The caller's item with `_REPLACED` cleared, deterministically serialized, followed by
    the effective max_attempts (field 7)."""
    fingerprint: str
    """SHA-256 of `body`, hex: what an idempotency key remembers to tell a repeat of the
    same request (equal) from a different request under a reused key (a conflict)."""

    def stored_bytes(self, job_id: str, idempotency_key: str) -> bytes:
        # Concatenated messages parse as one merged message and the later value of a field
        # wins, so appending sets the id and key without copying or re-encoding the item.
        tail = work_item_pb2.WorkItem(id=job_id, idempotency_key=idempotency_key)
        return self.body + tail.SerializeToString()


def prepare_item(item: work_item_pb2.WorkItem, max_attempts: int) -> PreparedItem:
    """What the queue keeps of `item`. Deterministic serialization (map entries sorted) makes
    equal items give equal bytes, so the fingerprint compares content, not object identity."""
    if any(field.name in _REPLACED_NAMES for field, _ in item.ListFields()):
        cleaned = work_item_pb2.WorkItem()
        cleaned.CopyFrom(item)
        for name in _REPLACED:
            cleaned.ClearField(name)
        item = cleaned
    body = (
        item.SerializeToString(deterministic=True)
        + work_item_pb2.WorkItem(max_attempts=max_attempts).SerializeToString()
    )
    return PreparedItem(body, hashlib.sha256(body).hexdigest())


@dataclass(frozen=True, slots=True)
class Entry:
    """One enqueue_many entry, checked and prepared, before any state changes."""

    key: str
    item: PreparedItem
    max_attempts: int


def prepare_entries(
    entries: Sequence[tuple[work_item_pb2.WorkItem, str]], default_max_attempts: int
) -> list[Entry]:
    """Checks a whole enqueue_many batch first, so a bad entry anywhere refuses all of it."""
    check_batch("enqueue_many", len(entries))
    prepared = []
    for item, key in entries:
        check_idempotency_key(key)
        max_attempts = max_attempts_for(item, default_max_attempts)
        prepared.append(Entry(key, prepare_item(item, max_attempts), max_attempts))
    return prepared


def decode_item(raw: bytes) -> work_item_pb2.WorkItem:
    try:
        return work_item_pb2.WorkItem.FromString(raw)
    except DecodeError as exc:
        raise UndecodableItem(str(exc)) from exc


def undecodable_error(job_id: str, reason: str) -> error_pb2.ErrorDetail:
    return error_pb2.ErrorDetail(
        code=UNDECODABLE_PAYLOAD,
        message=f"job {job_id}: stored bytes are not a qmtl.work.v1.WorkItem ({reason})",
        retryable=False,
    )


def owner_of(token: str) -> str:
    """The worker a lease token belongs to: tokens are '<worker_id>:<random>.<n>'."""
    return token.rpartition(":")[0]


@dataclass(slots=True)
class JobRecord:
    """A job's queue-side state; the in-memory adapter mutates it, Redis keeps it in a hash.

    `token` is the latest lease's token and `ended` how that lease ended ('complete', 'fail',
    'release', 'reap'; empty while it holds): together they tell a repeated call from a
    late one once the job is no longer LEASED.
    """

    job_id: str
    item: bytes
    state: int
    seq: int
    max_attempts: int
    created_ms: int
    updated_ms: int
    attempts: int = 0
    token: str = ""
    ended: str = ""
    deadline_ms: int | None = None
    available_at_ms: int | None = None
    error: bytes = b""
    result: bytes = b""
    finished_ms: int | None = None

    def to_work_item(self) -> work_item_pb2.WorkItem:
        """The queue's view of the job. Undecodable stored bytes still yield the queue fields,
        and out-of-range numbers (left by an older release, or a damaged store) are clamped to
        what the WorkItem can hold rather than making the job unreadable."""
        try:
            item = decode_item(self.item)
        except UndecodableItem:
            item = work_item_pb2.WorkItem()
        item.id = self.job_id
        item.max_attempts = _int32(self.max_attempts)
        item.state = work_state_pb2.WorkState.ValueType(_int32(self.state))
        item.attempts = _int32(self.attempts)
        set_time(item.created_at, self.created_ms)
        set_time(item.updated_at, self.updated_ms)
        if self.state == LEASED:
            item.lease_owner = owner_of(self.token)
            if self.deadline_ms is not None:
                set_time(item.lease_deadline, self.deadline_ms)
        if self.available_at_ms is not None and self.state == DELAYED:
            set_time(item.available_at, self.available_at_ms)
        if self.error:
            try:
                item.error.ParseFromString(self.error)
            except DecodeError:
                item.ClearField("error")
        if self.result:
            item.result = self.result
        if self.finished_ms is not None:
            set_time(item.finished_at, self.finished_ms)
        return item


# google.protobuf.Timestamp's range: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z.
_MIN_TIMESTAMP_MS = -62_135_596_800_000
_MAX_TIMESTAMP_MS = 253_402_300_799_999
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1


def set_time(timestamp: timestamp_pb2.Timestamp, ms: int) -> None:
    timestamp.FromMilliseconds(min(max(ms, _MIN_TIMESTAMP_MS), _MAX_TIMESTAMP_MS))


def _int32(value: int) -> int:
    return min(max(value, _INT32_MIN), _INT32_MAX)


def leased_view(
    item: work_item_pb2.WorkItem,
    *,
    attempts: int,
    owner: str,
    deadline_ms: int,
    created_ms: int,
    now_ms: int,
) -> work_item_pb2.WorkItem:
    """Lays the fields a fresh lease changes over a decoded item (the hot path of lease)."""
    item.state = LEASED
    item.attempts = attempts
    item.lease_owner = owner
    item.lease_deadline.FromMilliseconds(deadline_ms)
    item.created_at.FromMilliseconds(created_ms)
    item.updated_at.FromMilliseconds(now_ms)
    return item
