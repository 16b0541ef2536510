"""One job's stored state, shared by both adapters, and how it becomes the WorkItem callers see.

The submitted WorkItem is kept as protobuf bytes exactly as enqueued; the queue-owned fields
(state, attempts, lease, error, result, timestamps) live beside it and are laid over a decoded
copy on the way out. Bytes in and bytes out means the in-memory adapter cannot hand a caller an
object another caller can mutate, and both adapters meet undecodable bytes the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from google.protobuf.message import DecodeError

from qmtl.common.v1 import error_pb2
from qmtl.work.v1 import work_item_pb2, work_state_pb2

from .errors import UNDECODABLE_PAYLOAD

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


_QUEUE_OWNED = frozenset(QUEUE_OWNED_FIELDS)


class UndecodableItem(Exception):
    """The stored bytes are not a WorkItem; the adapter dead-letters the job."""


def stored_item_bytes(
    item: work_item_pb2.WorkItem, job_id: str, idempotency_key: str, max_attempts: int
) -> bytes:
    """The bytes kept for a new job: the caller's item with id, key and attempt limit fixed."""
    fixed = work_item_pb2.WorkItem(
        id=job_id, idempotency_key=idempotency_key, max_attempts=max_attempts
    ).SerializeToString()
    if not any(field.name in _QUEUE_OWNED for field, _ in item.ListFields()):
        # Concatenated messages parse as one merged message and the later value of a field
        # wins, so appending `fixed` sets the three fields without copying the item.
        return item.SerializeToString() + fixed
    stored = work_item_pb2.WorkItem()
    stored.CopyFrom(item)
    for name in QUEUE_OWNED_FIELDS:
        stored.ClearField(name)
    return stored.SerializeToString() + fixed


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
        """The queue's view of the job. Undecodable stored bytes still yield the queue fields."""
        try:
            item = decode_item(self.item)
        except UndecodableItem:
            item = work_item_pb2.WorkItem()
        item.id = self.job_id
        item.max_attempts = self.max_attempts
        item.state = work_state_pb2.WorkState.ValueType(self.state)
        item.attempts = self.attempts
        item.created_at.FromMilliseconds(self.created_ms)
        item.updated_at.FromMilliseconds(self.updated_ms)
        if self.state == LEASED:
            item.lease_owner = owner_of(self.token)
            if self.deadline_ms is not None:
                item.lease_deadline.FromMilliseconds(self.deadline_ms)
        if self.available_at_ms is not None and self.state == DELAYED:
            item.available_at.FromMilliseconds(self.available_at_ms)
        if self.error:
            item.error.ParseFromString(self.error)
        if self.result:
            item.result = self.result
        if self.finished_ms is not None:
            item.finished_at.FromMilliseconds(self.finished_ms)
        return item


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
