"""Path and query parameters become request fields by the rules of docs/api/HTTP.md."""

from __future__ import annotations

import math
from typing import Any

import pytest
from google.protobuf import json_format

from qmtl.dagmanager.v1.node_messages_pb2 import ListNodesRequest
from qmtl.gateway.v1.event_messages_pb2 import ListEventsRequest
from qmtl.runtime.errors import QmtlError
from qmtl.runtime.http import params as p


@pytest.mark.parametrize(
    ("parser", "text", "value"),
    [
        (p.parse_int32, "-2147483648", -(2**31)),
        (p.parse_int64, "9223372036854775807", 2**63 - 1),
        (p.parse_uint64, "18446744073709551615", 2**64 - 1),
        (p.parse_uint32, "0", 0),
        (p.parse_double, "1.5e3", 1500.0),
        (p.parse_double, "-0.25", -0.25),
        (p.parse_double, "Infinity", math.inf),
        (p.parse_float, "3.4e38", 3.4e38),
        (p.parse_bool, "true", True),
        (p.parse_bool, "false", False),
        (p.parse_string, "", ""),
        (p.parse_bytes, "AP9h", b"\x00\xffa"),
        (p.parse_bytes, "APv__g", b"\x00\xfb\xff\xfe"),
        (p.parse_bytes, "APv//g==", b"\x00\xfb\xff\xfe"),
        (p.enum_parser("qmtl.common.v1.MatchMode"), "MATCH_MODE_ALL", 2),
        (p.enum_parser("qmtl.common.v1.MatchMode"), "1", 1),
    ],
)
def test_parsers_read_the_json_mapping_forms(parser: p.Parser, text: str, value: Any) -> None:
    assert parser(text) == value


@pytest.mark.parametrize(
    ("parser", "text"),
    [
        (p.parse_int32, "2147483648"),
        (p.parse_int64, "1.0"),
        (p.parse_int64, " 1"),
        (p.parse_int64, "1_000"),
        (p.parse_int64, ""),
        (p.parse_uint64, "-1"),
        (p.parse_double, "1_0"),
        (p.parse_double, "infinity"),
        (p.parse_double, "1e999"),
        (p.parse_float, "1e39"),
        (p.parse_bool, "True"),
        (p.parse_bool, "1"),
        (p.parse_bytes, "not base64!"),
        (p.parse_timestamp, "yesterday"),
        (p.parse_duration, "90"),
        (p.enum_parser("qmtl.common.v1.MatchMode"), "MATCH_MODE_MAYBE"),
        (p.enum_parser("qmtl.common.v1.MatchMode"), "99"),
    ],
)
def test_parsers_refuse_what_the_mapping_does_not_allow(parser: p.Parser, text: str) -> None:
    with pytest.raises(p.InvalidValue) as raised:
        parser(text)
    assert str(raised.value)  # the message the 400 quotes


def test_timestamp_and_duration_parse_to_their_messages() -> None:
    assert p.parse_timestamp("2026-01-02T03:04:05.5Z").ToJsonString() == "2026-01-02T03:04:05.500Z"
    assert p.parse_duration("1.5s").ToTimedelta().total_seconds() == 1.5


@pytest.mark.parametrize(
    ("query", "pairs"),
    [
        (b"", []),
        (b"a=1&b=2", [("a", "1"), ("b", "2")]),
        (b"a=&b", [("a", ""), ("b", "")]),
        (b"a=1&&b=2&", [("a", "1"), ("b", "2")]),
        (b"q=x+y%2Bz", [("q", "x y+z")]),
        (b"n%C3%A9=caf%C3%A9", [("né", "café")]),
        (b"id=blake3:ab", [("id", "blake3:ab")]),
        (b"a=b=c", [("a", "b=c")]),
    ],
)
def test_query_string_splits_like_form_decoding(query: bytes, pairs: list[tuple[str, str]]) -> None:
    assert p.split_query(query) == pairs


@pytest.mark.parametrize("query", [b"a=%FF", b"a=\xff", b"&".join([b"a=1"] * 1001)])
def test_query_string_that_cannot_be_read_is_400(query: bytes) -> None:
    with pytest.raises(QmtlError) as raised:
        p.split_query(query)
    assert (raised.value.http_status, raised.value.wire_code) == (400, "E_INVALID_ARGUMENT")


LIST_NODES = p.QueryParams(
    (
        p.Param(("page.pageSize", "page.page_size"), ("page", "page_size"), p.parse_int32),
        p.Param(("tags",), ("tags",), p.parse_string, p.Slot.REPEATED),
        p.Param(("interval",), ("interval",), p.parse_int64),
        p.Param(
            ("matchMode", "match_mode"),
            ("match_mode",),
            p.enum_parser("qmtl.common.v1.MatchMode"),
        ),
    )
)


def parsed(query: bytes) -> dict[str, Any]:
    request = ListNodesRequest()
    LIST_NODES.parse_into(request, query)
    return json_format.MessageToDict(request)


def test_query_fills_nested_and_repeated_fields() -> None:
    assert parsed(b"page.pageSize=5&tags=a&tags=b&interval=60&match_mode=MATCH_MODE_ALL") == {
        "page": {"pageSize": 5},
        "tags": ["a", "b"],
        "interval": "60",
        "matchMode": "MATCH_MODE_ALL",
    }


def test_interval_zero_reads_as_no_interval() -> None:
    # `interval` is a plain int64 everywhere (0 = none), so `interval=0` is no filter at all.
    request = ListNodesRequest()
    LIST_NODES.parse_into(request, b"interval=0")
    assert LIST_NODES.by_name["interval"].read(request) == (False, 0)
    assert "interval" not in json_format.MessageToDict(request)


@pytest.mark.parametrize(
    ("query", "parameter", "reason"),
    [
        (b"pageSize=5", "pageSize", "unknown parameter"),
        (b"interval=1&interval=2", "interval", "more than once"),
        (b"page.pageSize=1&page.page_size=2", "page.page_size", "more than once"),
        (b"interval=soon", "interval", "not a decimal integer"),
    ],
)
def test_bad_parameter_is_400_naming_it(query: bytes, parameter: str, reason: str) -> None:
    with pytest.raises(QmtlError, match=reason) as raised:
        parsed(query)
    assert (raised.value.http_status, raised.value.details) == (400, {"parameter": parameter})


def test_message_leaves_are_copied_in() -> None:
    params = p.QueryParams((p.Param(("since",), ("since",), p.parse_timestamp, p.Slot.MESSAGE),))
    request = ListEventsRequest()

    params.parse_into(request, b"since=2026-01-02T03:04:05Z")

    assert request.since.ToJsonString() == "2026-01-02T03:04:05Z"


def test_required_field_missing_is_422_naming_its_json_name() -> None:
    required = [p.Required("node_type", "nodeType")]
    p.check_required(ListNodesRequest(node_type="x"), required)

    with pytest.raises(QmtlError) as raised:
        p.check_required(ListNodesRequest(), required)
    assert (raised.value.http_status, raised.value.details) == (422, {"field": "nodeType"})


def test_path_values_fill_fields_and_must_agree_with_a_body() -> None:
    node_type = p.Param(("nodeType", "node_type"), ("node_type",), p.parse_string)
    request = ListNodesRequest()
    p.parse_path_into(request, [node_type], {"node_type": "a:b"}, body=False)
    assert request.node_type == "a:b"

    p.parse_path_into(request, [node_type], {"node_type": "a:b"}, body=True)
    with pytest.raises(QmtlError, match="disagrees with the path") as raised:
        p.parse_path_into(request, [node_type], {"node_type": "c"}, body=True)
    assert raised.value.http_status == 400


def test_nested_required_field_is_looked_up_through_its_parents() -> None:
    required = [p.Required("page.page_size", "page.pageSize")]
    present = ListNodesRequest()
    present.page.page_size = 5
    p.check_required(present, required)

    for missing in (ListNodesRequest(), ListNodesRequest(page={"page_token": "t"})):
        with pytest.raises(QmtlError) as raised:
            p.check_required(missing, required)
        assert raised.value.details == {"field": "page.pageSize"}
