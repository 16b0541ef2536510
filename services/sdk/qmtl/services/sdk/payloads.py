"""What a compute function returns, as bytes on a topic (`qmtl.data.v1.Record.payload`).

A plain value (None, bool, int, float, str, and dicts with string keys / lists / tuples of
them) travels as a `google.protobuf.Value` (payload_type "google.protobuf.Value"); any
protobuf message travels as itself (payload_type its full name, e.g. "qmtl.data.v1.Record").

Decoding gives back JSON data for a Value, with every number a float (a Value holds doubles:
`5` comes back as `5.0`, which still compares equal), the message for a type whose module is
imported in this process, and the raw bytes for any other type: a consumer that does not know a
payload's type can still pass it on.

Refused with a PayloadError (nothing a double cannot hold exactly is sent silently altered):
NaN and infinities, ints beyond +-2**53, non-string dict keys, other Python types.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from google.protobuf import descriptor_pool, json_format, message_factory, struct_pb2
from google.protobuf.message import DecodeError, Message

VALUE_TYPE = struct_pb2.Value.DESCRIPTOR.full_name  # "google.protobuf.Value"
# The largest run of integers a double holds exactly.
MAX_EXACT_INT = 2**53


class PayloadError(ValueError):
    """A value that cannot be a payload, or bytes that are not the payload they claim to be."""


def _to_value(value: Any, target: struct_pb2.Value, path: str) -> None:
    if value is None:
        target.null_value = struct_pb2.NULL_VALUE
    elif isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        if abs(value) > MAX_EXACT_INT:
            raise PayloadError(f"{path}: int {value} is beyond +-2**53, which a double holds")
        target.number_value = value
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise PayloadError(f"{path}: {value} is not a finite number")
        target.number_value = value
    elif isinstance(value, str):
        target.string_value = value
    elif isinstance(value, Mapping):
        # SetInParent: an empty dict or list still has to say which of the two it is.
        target.struct_value.SetInParent()
        fields = target.struct_value.fields
        for key, item in value.items():
            if not isinstance(key, str):
                raise PayloadError(f"{path}: key {key!r} is not a string")
            _to_value(item, fields[key], f"{path}.{key}")
    elif isinstance(value, list | tuple):
        target.list_value.SetInParent()
        values = target.list_value.values
        for index, item in enumerate(value):
            _to_value(item, values.add(), f"{path}[{index}]")
    else:
        raise PayloadError(
            f"{path}: {type(value).__name__} is not a payload (return a number, string, bool, "
            "dict, list or protobuf message)"
        )


def encode_payload(value: Any) -> tuple[str, bytes]:
    """(payload_type, payload bytes) of what a compute function returned."""
    if isinstance(value, Message):
        return value.DESCRIPTOR.full_name, value.SerializeToString(deterministic=True)
    target = struct_pb2.Value()
    _to_value(value, target, "value")
    return VALUE_TYPE, target.SerializeToString(deterministic=True)


def _message_class(payload_type: str) -> type[Message] | None:
    try:
        pool = descriptor_pool.Default()  # type: ignore[no-untyped-call]
        descriptor = pool.FindMessageTypeByName(payload_type)
    except KeyError:
        return None
    return message_factory.GetMessageClass(descriptor)


def decode_payload(payload_type: str, payload: bytes) -> Any:
    """The value `encode_payload` was given (see the module doc for numbers and unknown types)."""
    if payload_type == VALUE_TYPE:
        value = struct_pb2.Value()
        try:
            value.ParseFromString(payload)
            return json_format.MessageToDict(value)
        except (DecodeError, ValueError) as exc:
            raise PayloadError(f"not a google.protobuf.Value: {exc}") from None
    cls = _message_class(payload_type)
    if cls is None:
        return bytes(payload)
    message = cls()
    try:
        message.ParseFromString(payload)
    except DecodeError as exc:
        raise PayloadError(f"not a {payload_type}: {exc}") from None
    return message
