"""Checks on what callers hand the queue, shared by both adapters so both refuse alike."""

from __future__ import annotations

from qmtl.work.v1 import work_item_pb2

from .errors import InvalidJobError

MAX_IDEMPOTENCY_KEY_LENGTH = 1024


def check_idempotency_key(key: str) -> None:
    if not key:
        raise InvalidJobError("an idempotency key is required to enqueue")
    if len(key) > MAX_IDEMPOTENCY_KEY_LENGTH:
        raise InvalidJobError(
            f"idempotency key is {len(key)} characters; at most {MAX_IDEMPOTENCY_KEY_LENGTH}"
        )


def max_attempts_for(item: work_item_pb2.WorkItem, default: int) -> int:
    if item.max_attempts < 0:
        raise InvalidJobError(f"max_attempts must not be negative, got {item.max_attempts}")
    return item.max_attempts or default


def check_lease_request(worker_id: str, lease_ttl: float, count: int = 1) -> None:
    if not worker_id:
        raise InvalidJobError("a worker id is required to lease")
    if lease_ttl < 0.001:  # deadlines are kept in whole milliseconds
        raise InvalidJobError(f"lease_ttl must be at least 1 ms, got {lease_ttl}")
    if count < 1:
        raise InvalidJobError(f"lease count must be at least 1, got {count}")
