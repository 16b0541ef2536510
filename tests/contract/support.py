"""Small helpers for the contract tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from qmtl.work.v1 import work_item_pb2, work_type_pb2


def make_item(payload: bytes = b"payload", **fields: object) -> work_item_pb2.WorkItem:
    item = work_item_pb2.WorkItem(
        type=work_type_pb2.WORK_TYPE_OTHER, payload_type="qmtl.test.Payload", payload=payload
    )
    for name, value in fields.items():
        setattr(item, name, value)
    return item


async def eventually(
    condition: Callable[[], Awaitable[bool]], *, within: float = 10.0, what: str = "condition"
) -> None:
    """Polls `condition` until it holds; fails the test if it does not `within` seconds."""
    deadline = time.monotonic() + within
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {within}s waiting for {what}")
        await asyncio.sleep(0.01)
