"""qmtl.runtime.records: the partition, message and dedupe keys of `qmtl.data.v1.Record`
(domain.md §2.6), and the refusals that keep those keys parseable."""

from __future__ import annotations

import pytest
from google.protobuf import timestamp_pb2

from qmtl.common.v1 import error_code_pb2
from qmtl.data.v1 import record_pb2
from qmtl.runtime.records import (
    DedupeKey,
    RecordKeyError,
    dedupe_key,
    message_key,
    node_id_from_partition_key,
    partition_key,
)

NODE = "blake3:1d38921a224ea463133720b6f76f693fadc8a920128307ad72b9eeb5530279a3"


def record(**fields: object) -> record_pb2.Record:
    base: dict[str, object] = {
        "node_id": NODE,
        "interval": 60,
        "bucket_ts": timestamp_pb2.Timestamp(seconds=1_700_000_040),
        "input_window_hash": "ab12",
    }
    base.update(fields)
    return record_pb2.Record(**base)  # type: ignore[arg-type]


def test_partition_key_is_node_interval_bucket() -> None:
    assert partition_key(record()) == f"{NODE}:60:1700000040"


def test_partition_key_appends_compute_key_when_set() -> None:
    assert partition_key(record(compute_key="ck9")) == f"{NODE}:60:1700000040#ck=ck9"


def test_unset_interval_and_bucket_are_zero() -> None:
    bare = record_pb2.Record(node_id=NODE, input_window_hash="h")
    assert partition_key(bare) == f"{NODE}:0:0"
    assert dedupe_key(bare) == DedupeKey(NODE, 0, "h", "")


def test_message_key_appends_the_window_hash() -> None:
    assert message_key(record()) == f"{NODE}:60:1700000040:ab12"
    assert message_key(record(compute_key="ck9")) == f"{NODE}:60:1700000040#ck=ck9:ab12"


def test_dedupe_key_ignores_payload_and_keeps_compute_key() -> None:
    one = record(payload=b"a", payload_type="x.A")
    other = record(payload=b"b", payload_type="x.B")
    assert dedupe_key(one) == dedupe_key(other) == DedupeKey(NODE, 1_700_000_040, "ab12", "")
    assert dedupe_key(record(compute_key="w1")) != dedupe_key(record(compute_key="w2"))
    assert dedupe_key(record(input_window_hash="cd34")) != dedupe_key(record())


@pytest.mark.parametrize("compute_key", ["", "ck9"])
def test_node_id_round_trips_through_the_partition_key(compute_key: str) -> None:
    key = partition_key(record(compute_key=compute_key))
    assert node_id_from_partition_key(key) == NODE


@pytest.mark.parametrize("key", ["", "nodeonly", f"{NODE}:60", f"{NODE}:60:1700000040:ab12"])
def test_node_id_from_a_key_that_is_not_a_partition_key_is_refused(key: str) -> None:
    with pytest.raises(RecordKeyError) as caught:
        node_id_from_partition_key(key)
    assert caught.value.field == "key"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"node_id": ""}, "node_id"),
        ({"node_id": "a#b"}, "node_id"),
        ({"interval": -1}, "interval"),
        ({"compute_key": "a#b"}, "compute_key"),
        ({"bucket_ts": timestamp_pb2.Timestamp(seconds=1_700_000_040, nanos=5)}, "bucket_ts"),
        ({"bucket_ts": timestamp_pb2.Timestamp(seconds=-60)}, "bucket_ts"),
        # milliseconds where seconds were meant: not on a 60 s boundary
        ({"bucket_ts": timestamp_pb2.Timestamp(seconds=1_700_000_040_001)}, "bucket_ts"),
    ],
)
def test_unkeyable_records_are_refused_naming_the_field(
    fields: dict[str, object], field: str
) -> None:
    bad = record(**fields)
    for build in (partition_key, dedupe_key, message_key):
        with pytest.raises(RecordKeyError) as caught:
            build(bad)
        assert caught.value.field == field
        assert caught.value.details == {"field": field}
        assert caught.value.code == error_code_pb2.ERROR_CODE_VALIDATION


def test_bucket_alignment_is_not_required_without_an_interval() -> None:
    unbucketed = record(interval=0, bucket_ts=timestamp_pb2.Timestamp(seconds=7))
    assert partition_key(unbucketed) == f"{NODE}:0:7"


@pytest.mark.parametrize("window_hash", ["a:b", "a#b"])
def test_message_key_refuses_a_window_hash_that_would_split_wrongly(window_hash: str) -> None:
    with pytest.raises(RecordKeyError) as caught:
        message_key(record(input_window_hash=window_hash))
    assert caught.value.field == "input_window_hash"


def test_record_round_trips_in_binary_with_its_payload() -> None:
    original = record(compute_key="ck9", payload_type="qmtl.bench.v1.Bar", payload=b"\x00\xff")
    again = record_pb2.Record.FromString(original.SerializeToString())
    assert again == original
    assert message_key(again) == message_key(original)
