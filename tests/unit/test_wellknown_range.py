"""Bodies the proto3 JSON mapping cannot write back are 400s (issue 8 follow-up, fuzz suite).

codec.decode used to accept binary Timestamps/Durations outside their documented range and
NaN/Infinity in a google.protobuf.Value (binary, or JSON's `NaN` literal and `1e999`); a
handler that read one (ToDatetime) or served it as JSON raised: a 500. docs/operations/http.md
("Well-known types") states the rules.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    duration_pb2,
    json_format,
    message,
    message_factory,
    struct_pb2,
    timestamp_pb2,
    wrappers_pb2,
)

from qmtl.dag.v1.dag_pb2 import Dag
from qmtl.dag.v1.node_pb2 import Node
from qmtl.dagmanager.v1.diff_messages_pb2 import DiffRequest
from qmtl.gateway.v1.event_messages_pb2 import ListEventsRequest
from qmtl.gateway.v1.queue_messages_pb2 import GetQueuesByTagRequest
from qmtl.gateway.v1.strategy_messages_pb2 import SubmitStrategyRequest
from qmtl.runtime import codec, wellknown_range
from qmtl.runtime.errors import QmtlError

P, J = codec.Encoding.PROTOBUF, codec.Encoding.JSON
MIN_S, MAX_S = wellknown_range.TIMESTAMP_MIN_SECONDS, wellknown_range.TIMESTAMP_MAX_SECONDS
DUR_S = wellknown_range.DURATION_MAX_SECONDS


def refused(cls: type[message.Message], data: bytes, encoding: codec.Encoding) -> str:
    """The message of the 400 E_MALFORMED_BODY that decoding `data` must raise."""
    with pytest.raises(QmtlError) as raised:
        codec.decode(cls, data, encoding)
    assert (raised.value.http_status, raised.value.wire_code) == (400, "E_MALFORMED_BODY")
    assert cls.DESCRIPTOR.full_name in raised.value.message
    return raised.value.message


def writable_both_ways(msg: message.Message) -> None:
    for encoding in codec.Encoding:
        assert codec.decode(type(msg), codec.encode(msg, encoding), encoding) == msg


def struct(value: dict[str, Any]) -> struct_pb2.Struct:
    built = struct_pb2.Struct()
    built.update(value)
    return built


# -- binary bodies -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "nanos", "reason"),
    [
        (MIN_S - 1, 0, "outside 0001-01-01..9999-12-31"),
        (MAX_S + 1, 0, "outside 0001-01-01..9999-12-31"),
        (2**62, 0, "outside 0001-01-01..9999-12-31"),
        (0, -1, "nanos -1 is outside [0, 999999999]"),
        (0, 10**9, "nanos 1000000000 is outside [0, 999999999]"),
    ],
)
def test_binary_timestamp_out_of_range_is_400_naming_the_field(
    seconds: int, nanos: int, reason: str
) -> None:
    request = ListEventsRequest(since=timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos))

    text = refused(ListEventsRequest, request.SerializeToString(), P)

    assert "since: Timestamp" in text
    assert reason in text


@pytest.mark.parametrize(
    ("seconds", "nanos", "reason"),
    [
        (DUR_S + 1, 0, "beyond +-315576000000"),
        (-DUR_S - 1, 0, "beyond +-315576000000"),
        (0, 10**9, "outside [-999999999, 999999999]"),
        (0, -(10**9), "outside [-999999999, 999999999]"),
        (1, -1, "differ in sign"),
        (-1, 1, "differ in sign"),
    ],
)
def test_binary_duration_out_of_range_is_400_naming_the_field(
    seconds: int, nanos: int, reason: str
) -> None:
    request = SubmitStrategyRequest(
        wait_timeout=duration_pb2.Duration(seconds=seconds, nanos=nanos)
    )

    text = refused(SubmitStrategyRequest, request.SerializeToString(), P)

    assert "waitTimeout: Duration" in text
    assert reason in text


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_binary_struct_number_that_is_not_finite_is_400_at_any_depth(number: float) -> None:
    top = SubmitStrategyRequest(meta=struct({"a": number}))
    nested = SubmitStrategyRequest(meta=struct({"a": [1, {"b": number}]}))
    in_a_node = DiffRequest(
        dag=Dag(nodes=[Node(), Node(metadata=struct({"k": {"deep": [number]}}))])
    )

    assert "meta['a']: " in refused(SubmitStrategyRequest, top.SerializeToString(), P)
    assert "meta['a'][1]['b']: " in refused(SubmitStrategyRequest, nested.SerializeToString(), P)
    assert "dag.nodes[1].metadata['k']['deep'][0]: " in refused(
        DiffRequest, in_a_node.SerializeToString(), P
    )


def test_the_edges_of_every_range_are_accepted_and_round_trip() -> None:
    for seconds, nanos in [(MIN_S, 0), (MAX_S, 999_999_999), (0, 0)]:
        writable_both_ways(
            ListEventsRequest(since=timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos))
        )
    for seconds, nanos in [(DUR_S, 999_999_999), (-DUR_S, -999_999_999), (0, -1), (0, 1)]:
        writable_both_ways(
            SubmitStrategyRequest(wait_timeout=duration_pb2.Duration(seconds=seconds, nanos=nanos))
        )
    writable_both_ways(
        SubmitStrategyRequest(meta=struct({"a": 1.7976931348623157e308, "b": [None, True, "x"]}))
    )


# -- JSON bodies -------------------------------------------------------------------------------


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_json_non_standard_literals_are_400_wherever_they_are(literal: str) -> None:
    in_meta = f'{{"meta": {{"a": {literal}}}}}'.encode()
    in_a_list = f'{{"meta": {{"a": [1, {literal}]}}}}'.encode()
    in_an_int = f'{{"interval": {literal}}}'.encode()

    assert f"{literal} is not JSON" in refused(SubmitStrategyRequest, in_meta, J)
    assert f"{literal} is not JSON" in refused(SubmitStrategyRequest, in_a_list, J)
    assert f"{literal} is not JSON" in refused(GetQueuesByTagRequest, in_an_int, J)


@pytest.mark.parametrize("number", ["1e999", "-1e999", "1.5E+400"])
def test_json_numbers_beyond_a_double_are_400(number: str) -> None:
    body = f'{{"meta": {{"a": {{"b": [{number}]}}}}}}'.encode()

    assert "beyond the range of a double" in refused(SubmitStrategyRequest, body, J)


def test_json_integer_too_large_for_a_struct_number_is_400() -> None:
    body = b'{"meta": {"a": 1' + b"0" * 400 + b"}}"

    refused(SubmitStrategyRequest, body, J)


@pytest.mark.parametrize(
    ("cls", "text", "expected"),
    [
        (wrappers_pb2.DoubleValue, '"NaN"', math.nan),
        (wrappers_pb2.DoubleValue, '"Infinity"', math.inf),
        (wrappers_pb2.FloatValue, '"-Infinity"', -math.inf),
        (wrappers_pb2.DoubleValue, "1.7976931348623157e308", 1.7976931348623157e308),
    ],
)
def test_json_float_and_double_fields_keep_their_proto3_strings(
    cls: type[wrappers_pb2.DoubleValue], text: str, expected: float
) -> None:
    decoded = codec.decode(cls, text.encode(), J)

    assert decoded.value == expected or (math.isnan(expected) and math.isnan(decoded.value))
    assert json.loads(codec.encode(decoded, J)) == json.loads(text)


@pytest.mark.parametrize(
    ("since", "protobuf_reads_it"),
    [
        # Each of these json_format alone read as a time, shifted by the offset it gave.
        ("2026-01-02T03:00:00+99:00", True),
        ("2026-01-02T03:00:00+24:00", True),
        ("2026-01-02T03:00:00-99:99", True),
        ("2026-01-02T03:00:00+9:00", True),
        ("2026-01-02T03:00:00.Z", True),
        ("2026-1-02T03:00:00Z", True),
        # These it refuses itself (the exponent with an OverflowError, made a 400 here).
        ("2026-01-02T03:00:00-23:60", False),
        ("2026-01-02T03:00:00.3e8558Z", False),
        ("2026-01-02T03:00:00.1234567890Z", False),
        ("2026-01-02t03:00:00Z", False),
        ("2026-01-02T03:00:00z", False),
    ],
)
def test_json_timestamp_text_outside_rfc_3339_is_400(since: str, protobuf_reads_it: bool) -> None:
    body = json.dumps({"since": since}).encode()

    text = refused(ListEventsRequest, body, J)

    if protobuf_reads_it:
        assert f"since: {since!r} is not an RFC 3339 timestamp" in text


@pytest.mark.parametrize("timeout", ["1_0s", " 1s", "1e3s", "+1s", "0.0000000001s", ".5s", "1.s"])
def test_json_duration_text_outside_the_mapping_is_400(timeout: str) -> None:
    body = json.dumps({"waitTimeout": timeout}).encode()

    assert "waitTimeout" in refused(SubmitStrategyRequest, body, J)


@pytest.mark.parametrize(
    ("since", "seconds"),
    [
        ("2026-01-02T03:00:00+23:59", 1767322800 - 23 * 3600 - 59 * 60),
        ("2026-01-02T03:00:00-00:30", 1767322800 + 1800),
        ("2026-01-02T03:00:00.123456789Z", 1767322800),
        ("0001-01-01T00:00:00Z", MIN_S),
        ("9999-12-31T23:59:59.999999999Z", MAX_S),
    ],
)
def test_json_timestamp_text_of_rfc_3339_is_read(since: str, seconds: int) -> None:
    decoded = codec.decode(ListEventsRequest, json.dumps({"since": since}).encode(), J)

    assert decoded.since.seconds == seconds


def test_json_timestamps_and_durations_out_of_range_stay_400() -> None:
    refused(ListEventsRequest, b'{"since": "0000-12-31T23:59:59Z"}', J)
    refused(ListEventsRequest, b'{"since": "0001-01-01T00:00:00+01:00"}', J)
    refused(SubmitStrategyRequest, b'{"waitTimeout": "315576000001s"}', J)


# -- any nesting: a test-only message with maps, repeated fields and recursion ---------------


def _probe_class() -> type[message.Message]:
    # protobuf's DescriptorPool methods carry no annotations, hence the ignores.
    pool = descriptor_pool.DescriptorPool()
    for dependency in (timestamp_pb2, duration_pb2, struct_pb2):
        pool.AddSerializedFile(dependency.DESCRIPTOR.serialized_pb)  # type: ignore[no-untyped-call]
    file = descriptor_pb2.FileDescriptorProto(
        name="probe/wellknown.proto",
        package="probe",
        syntax="proto3",
        dependency=["google/protobuf/timestamp.proto", "google/protobuf/struct.proto"],
    )
    probe = file.message_type.add(name="Probe")
    field = descriptor_pb2.FieldDescriptorProto
    probe.field.add(
        name="at", number=1, type=field.TYPE_MESSAGE, type_name=".google.protobuf.Timestamp"
    )
    probe.field.add(
        name="children",
        number=2,
        type=field.TYPE_MESSAGE,
        type_name=".probe.Probe",
        label=field.LABEL_REPEATED,
    )
    probe.field.add(
        name="by_name",
        number=3,
        type=field.TYPE_MESSAGE,
        type_name=".probe.Probe.ByNameEntry",
        label=field.LABEL_REPEATED,
    )
    probe.field.add(
        name="values",
        number=4,
        type=field.TYPE_MESSAGE,
        type_name=".google.protobuf.Value",
        label=field.LABEL_REPEATED,
    )
    entry = probe.nested_type.add(name="ByNameEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=field.TYPE_STRING)
    entry.field.add(name="value", number=2, type=field.TYPE_MESSAGE, type_name=".probe.Probe")
    pool.Add(file)  # type: ignore[no-untyped-call]
    found = pool.FindMessageTypeByName("probe.Probe")  # type: ignore[no-untyped-call]
    return message_factory.GetMessageClass(found)


Probe = _probe_class()


def test_out_of_range_values_are_found_in_maps_repeated_fields_and_recursion() -> None:
    in_a_map: Any = Probe()
    in_a_map.by_name["x"].children.add().at.seconds = MAX_S + 1
    in_a_list: Any = Probe()
    in_a_list.children.add()
    in_a_list.children.add().values.add(number_value=math.nan)
    fine: Any = Probe()
    fine.by_name["x"].children.add().at.seconds = MAX_S

    assert wellknown_range.unwritable(in_a_map) is not None
    assert "byName['x'].children[0].at: Timestamp" in str(wellknown_range.unwritable(in_a_map))
    assert "children[1].values[0]: nan" in str(wellknown_range.unwritable(in_a_list))
    assert wellknown_range.unwritable(fine) is None
    assert "byName['x']" in refused(Probe, in_a_map.SerializeToString(), P)
    json_format.MessageToJson(fine)  # what the check promises: it writes


def test_types_that_cannot_hold_a_checked_value_are_not_walked() -> None:
    # What keeps decoding most requests as fast as before: nothing to walk.
    assert wellknown_range._plan(GetQueuesByTagRequest.DESCRIPTOR) == ()
    assert wellknown_range._plan(ListEventsRequest.DESCRIPTOR) != ()
