"""Payloads: what a compute function returns, to bytes and back (payloads.py)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from google.protobuf import struct_pb2, timestamp_pb2

from qmtl.data.v1 import record_pb2
from qmtl.services.sdk import PayloadError, decode_payload, encode_payload
from qmtl.services.sdk.payloads import VALUE_TYPE


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        False,
        0,
        -7,
        2**53,
        1.5,
        -0.25,
        "",
        "héllo",
        {},
        [],
        {"a": 1, "b": [1, "x", None, {"c": False}], "d": {}},
        [[], [[1.0]], {"k": []}],
    ],
)
def test_plain_values_round_trip_as_a_protobuf_value(value: Any) -> None:
    payload_type, payload = encode_payload(value)
    assert payload_type == VALUE_TYPE == "google.protobuf.Value"
    assert isinstance(payload, bytes)
    decoded = decode_payload(payload_type, payload)
    assert decoded == value
    assert type(decoded) is (float if type(value) is int else type(value))


def test_numbers_come_back_as_floats_and_tuples_as_lists() -> None:
    assert decode_payload(*encode_payload(5)) == 5.0
    assert isinstance(decode_payload(*encode_payload(5)), float)
    assert decode_payload(*encode_payload((1, "a"))) == [1.0, "a"]


def test_the_bytes_are_the_values_whatever_the_key_order() -> None:
    assert encode_payload({"b": 1, "a": 2}) == encode_payload({"a": 2, "b": 1})


def test_the_bytes_are_a_google_protobuf_value() -> None:
    _, payload = encode_payload({"close": 101.5})
    value = struct_pb2.Value.FromString(payload)
    assert value.struct_value.fields["close"].number_value == 101.5


def test_a_message_travels_as_itself_under_its_full_name() -> None:
    record = record_pb2.Record(node_id="blake3:ab", interval=60, payload=b"\x01")
    payload_type, payload = encode_payload(record)
    assert payload_type == "qmtl.data.v1.Record"
    assert payload == record.SerializeToString(deterministic=True)
    decoded = decode_payload(payload_type, payload)
    assert isinstance(decoded, record_pb2.Record)
    assert decoded == record


def test_a_well_known_message_is_decoded_too() -> None:
    stamp = timestamp_pb2.Timestamp(seconds=1_700_000_040)
    assert decode_payload(*encode_payload(stamp)) == stamp


def test_an_unknown_type_decodes_to_its_raw_bytes() -> None:
    assert decode_payload("acme.v1.Secret", b"\x08\x01") == b"\x08\x01"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (math.nan, r"value: nan is not a finite number"),
        ({"x": [math.inf]}, r"value\.x\[0\]: inf is not a finite number"),
        (2**53 + 1, r"value: int 9007199254740993 is beyond \+-2\*\*53"),
        (-(2**60), r"beyond \+-2\*\*53"),
        ({1: "a"}, r"value: key 1 is not a string"),
        ({"a": {"b": object()}}, r"value\.a\.b: object is not a payload"),
        (b"raw", r"value: bytes is not a payload"),
        ({"s": {1, 2}}, r"value\.s: set is not a payload"),
    ],
)
def test_what_a_value_cannot_hold_exactly_is_refused(value: Any, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        encode_payload(value)


def test_a_payload_error_is_a_value_error() -> None:
    assert issubclass(PayloadError, ValueError)


@pytest.mark.parametrize("payload_type", [VALUE_TYPE, "qmtl.data.v1.Record"])
def test_bytes_that_are_not_the_named_type_are_refused(payload_type: str) -> None:
    with pytest.raises(PayloadError, match=f"not a {payload_type}"):
        decode_payload(payload_type, b"\xff\xff\xff")
