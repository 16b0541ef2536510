"""Small helpers for the contract tests."""

from __future__ import annotations

from qmtl.work.v1 import work_item_pb2, work_type_pb2


def make_item(payload: bytes = b"payload", **fields: object) -> work_item_pb2.WorkItem:
    item = work_item_pb2.WorkItem(
        type=work_type_pb2.WORK_TYPE_OTHER, payload_type="qmtl.test.Payload", payload=payload
    )
    for name, value in fields.items():
        setattr(item, name, value)
    return item
