"""Content negotiation and the two encodings, as docs/api/HTTP.md states them."""

from __future__ import annotations

import json

import pytest
from google.protobuf import json_format

from qmtl.common.v1 import match_mode_pb2
from qmtl.dag.v1.queue_pb2 import QueueMap
from qmtl.gateway.v1.queue_messages_pb2 import GetQueuesByTagRequest
from qmtl.runtime.codec import (
    Encoding,
    body_encoding,
    decode,
    encode,
    negotiate,
    negotiate_for_error,
)
from qmtl.runtime.errors import QmtlError

P, J = Encoding.PROTOBUF, Encoding.JSON


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        (None, P),
        ("", P),
        ("*/*", P),
        ("application/x-protobuf", P),
        ("application/json", J),
        ("application/json; charset=utf-8", J),
        ("APPLICATION/JSON", J),
        ("application/*", P),
        ("application/json, */*", J),
        ("application/json;q=0.4, application/x-protobuf;q=0.6", P),
        ("application/x-protobuf;q=0.2, application/json;q=0.9", J),
        ("application/x-protobuf;q=0, */*", J),
        ("text/html, application/xhtml+xml, */*;q=0.8", P),
        ("application/json;q=oops, application/x-protobuf;q=0.1", P),
    ],
)
def test_accept_picks_the_encoding_with_the_highest_weight(
    accept: str | None, expected: Encoding
) -> None:
    assert negotiate(accept) is expected


@pytest.mark.parametrize(
    "accept", ["text/html", "application/xml", "application/json;q=0, application/x-protobuf;q=0"]
)
def test_accept_allowing_neither_is_406(accept: str) -> None:
    with pytest.raises(QmtlError) as raised:
        negotiate(accept)

    assert (raised.value.http_status, raised.value.wire_code) == (406, "E_NOT_ACCEPTABLE")
    assert negotiate_for_error(accept) is J


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("application/x-protobuf", P),
        ("application/json", J),
        ("application/json; charset=UTF-8", J),
        ("Application/X-Protobuf", P),
    ],
)
def test_content_type_names_the_body_encoding(content_type: str, expected: Encoding) -> None:
    assert body_encoding(content_type) is expected


@pytest.mark.parametrize(
    "content_type", [None, "", "text/plain", "application/json; charset=latin-1", "*/*"]
)
def test_other_content_types_are_415(content_type: str | None) -> None:
    with pytest.raises(QmtlError) as raised:
        body_encoding(content_type)

    assert (raised.value.http_status, raised.value.wire_code) == (415, "E_UNSUPPORTED_MEDIA_TYPE")


@pytest.mark.parametrize("content_type", [None, ""])
def test_a_missing_content_type_is_named_in_words_not_as_python_none(
    content_type: str | None,
) -> None:
    with pytest.raises(QmtlError) as raised:
        body_encoding(content_type)

    assert "None" not in raised.value.message
    assert "no Content-Type" in raised.value.message
    assert raised.value.details == {"content_type": ""}


def test_a_foreign_content_type_is_quoted_in_the_415() -> None:
    with pytest.raises(QmtlError) as raised:
        body_encoding("text/plain")

    assert raised.value.message.startswith("Content-Type 'text/plain' is neither")


def sample() -> GetQueuesByTagRequest:
    return GetQueuesByTagRequest(
        tags=["BTC", "price"], interval=2**60, match_mode=match_mode_pb2.MATCH_MODE_ALL
    )


def test_json_is_the_proto3_mapping() -> None:
    text = encode(sample(), J)

    assert json.loads(text) == {
        "tags": ["BTC", "price"],
        "interval": str(2**60),
        "matchMode": "MATCH_MODE_ALL",
    }


@pytest.mark.parametrize("encoding", [P, J])
def test_encode_then_decode_is_identity(encoding: Encoding) -> None:
    assert decode(GetQueuesByTagRequest, encode(sample(), encoding), encoding) == sample()


def test_binary_is_the_plain_wire_encoding_and_maps_decode_in_any_order() -> None:
    # The wire promises a decodable encoding, not stable bytes: map entry order is left to
    # protobuf (stable bytes are the deterministic serialization of the callers that hash or
    # sign them). Whatever order the entries went out in, the message comes back equal.
    queues = QueueMap()
    for index in range(40):
        queues.queues[f"blake3:{index:064x}"].queue = f"topic-{index}"
        queues.tag_queries[f"tq-{index}"].queues.add(queue=f"topic-{index}")

    data = encode(queues, P)

    assert data == queues.SerializeToString()
    assert decode(QueueMap, data, P) == queues
    assert encode(sample(), P) == sample().SerializeToString()


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        (b"\xff\xff\xff", P),
        (b"{", J),
        (b'{"interval": "sixty"}', J),
        (b'{"unknownField": 1}', J),
        (b"\xff", J),
    ],
)
def test_body_that_does_not_decode_is_400(data: bytes, encoding: Encoding) -> None:
    with pytest.raises(QmtlError) as raised:
        decode(GetQueuesByTagRequest, data, encoding)

    assert (raised.value.http_status, raised.value.wire_code) == (400, "E_MALFORMED_BODY")
    assert "qmtl.gateway.v1.GetQueuesByTagRequest" in raised.value.message


def test_clients_may_ignore_fields_a_newer_server_added() -> None:
    data = b'{"tags": ["a"], "addedLater": true}'

    decoded = decode(GetQueuesByTagRequest, data, J, ignore_unknown=True)

    assert decoded == json_format.Parse('{"tags": ["a"]}', GetQueuesByTagRequest())


@pytest.mark.parametrize(
    ("match_mode", "problem"),
    [(True, "a boolean"), (1.5, "a number"), (1.0, "a number"), ({}, "an object")],
)
def test_an_enum_given_anything_but_a_name_or_whole_number_is_400(
    match_mode: object, problem: str
) -> None:
    # json_format reads `true` as 1 and truncates 1.5 to 1; the documents allow neither.
    body = json.dumps({"tags": ["t"], "matchMode": match_mode}).encode()
    with pytest.raises(QmtlError) as caught:
        decode(GetQueuesByTagRequest, body, J)
    assert (caught.value.http_status, caught.value.wire_code) == (400, "E_MALFORMED_BODY")
    if problem != "an object":  # json_format itself refuses an object for an enum
        assert (
            f"matchMode must be an enum name or number (qmtl.common.v1.MatchMode), got {problem}"
            in str(caught.value)
        )


@pytest.mark.parametrize("match_mode", ["MATCH_MODE_ALL", 2])
def test_an_enum_by_name_or_number_decodes(match_mode: object) -> None:
    body = json.dumps({"tags": ["t"], "matchMode": match_mode}).encode()
    assert decode(GetQueuesByTagRequest, body, J).match_mode == match_mode_pb2.MATCH_MODE_ALL
