"""Keys of the records on node output topics (`qmtl.data.v1.Record`; domain.md §2.6).

partition key  `{node_id}:{interval}:{bucket}` (+ `#ck={compute_key}` when set): the queue-map
               key and the Kafka partition key, so every record of one node, interval and
               bucket lands on one partition, in order
message key    `{partition_key}:{input_window_hash}`
dedupe key     `(node_id, bucket, input_window_hash[, compute_key])`

`bucket` is the Unix seconds of `Record.bucket_ts`, 0 when unset. The keys are split back by
readers (`rsplit(":", 2)` before the `#`), so a value that would make that ambiguous is refused
with a `RecordKeyError` naming the field rather than producing a key that parses wrongly.
"""

from __future__ import annotations

from typing import NamedTuple

from qmtl.data.v1 import record_pb2
from qmtl.runtime.errors import ErrorCode, QmtlError

COMPUTE_KEY_MARK = "#ck="


class RecordKeyError(QmtlError):
    """A Record whose keys cannot be built; `details["field"]` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(
            ErrorCode.ERROR_CODE_VALIDATION,
            f"{field}: {message}",
            details={"field": field},
        )
        self.field = field


class DedupeKey(NamedTuple):
    """What makes two records the same fact; `compute_key` is "" for the default context."""

    node_id: str
    bucket: int
    input_window_hash: str
    compute_key: str


def bucket_seconds(record: record_pb2.Record) -> int:
    """`bucket_ts` as whole Unix seconds, 0 when unset.

    Buckets are whole seconds aligned to the interval (itself in seconds); a fraction or a
    misaligned start means the producer bucketed in other units (e.g. milliseconds), and two
    producers would then key the same bucket differently.
    """
    if not record.HasField("bucket_ts"):
        return 0
    ts = record.bucket_ts
    if ts.nanos != 0:
        raise RecordKeyError("bucket_ts", f"must be a whole second, has {ts.nanos} ns")
    if ts.seconds < 0:
        raise RecordKeyError("bucket_ts", f"must not be before 1970, is {ts.seconds} s")
    if record.interval > 0 and ts.seconds % record.interval != 0:
        raise RecordKeyError(
            "bucket_ts",
            f"{ts.seconds} s is not a multiple of the interval {record.interval} s",
        )
    return int(ts.seconds)


def _check_ids(record: record_pb2.Record) -> None:
    if not record.node_id:
        raise RecordKeyError("node_id", "is required")
    if "#" in record.node_id:
        raise RecordKeyError("node_id", "must not contain '#'")
    if record.interval < 0:
        raise RecordKeyError("interval", f"must be >= 0, is {record.interval}")
    if "#" in record.compute_key:
        raise RecordKeyError("compute_key", "must not contain '#'")


def partition_key(record: record_pb2.Record) -> str:
    """`{node_id}:{interval}:{bucket}`, plus `#ck={compute_key}` when the compute key is set."""
    _check_ids(record)
    key = f"{record.node_id}:{record.interval}:{bucket_seconds(record)}"
    return f"{key}{COMPUTE_KEY_MARK}{record.compute_key}" if record.compute_key else key


def message_key(record: record_pb2.Record) -> str:
    """The Kafka message key: `{partition_key}:{input_window_hash}`."""
    if ":" in record.input_window_hash or "#" in record.input_window_hash:
        # The hash is the last `:` segment; a ':' inside it would be read as part of the key.
        raise RecordKeyError("input_window_hash", "must not contain ':' or '#'")
    return f"{partition_key(record)}:{record.input_window_hash}"


def dedupe_key(record: record_pb2.Record) -> DedupeKey:
    """The identity a consumer drops repeats by (delivery is at least once)."""
    _check_ids(record)
    return DedupeKey(
        record.node_id, bucket_seconds(record), record.input_window_hash, record.compute_key
    )


def node_id_from_partition_key(key: str) -> str:
    """The node ID in a partition key, as Gateway strips it (`rsplit(":", 2)` before the `#`).

    Only for partition keys: a message key without a compute key ends in its window hash, so
    the same split would keep the interval as part of the node ID.
    """
    parts = key.split("#", 1)[0].rsplit(":", 2)
    if len(parts) != 3 or not parts[0] or not (parts[1].isdigit() and parts[2].isdigit()):
        raise RecordKeyError(
            "key", f"{key!r} is not `{{node_id}}:{{interval}}:{{bucket}}[#ck=...]`"
        )
    return parts[0]
