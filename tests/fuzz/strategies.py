"""Hypothesis strategies that know the shape of what they break.

Random bytes rarely get past a parser's first check, so each strategy here builds input that
is nearly right for one request message or route: proto3 JSON objects with the message's own
field names and values at the edges of each type, protobuf wire bytes with the message's own
field numbers and wire types, query strings with the route's parameter names, Accept values
from the media-range grammar. Each level mixes in values of the wrong kind.
"""

from __future__ import annotations

import base64
import json
import string
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import quote

from google.protobuf import descriptor, message
from hypothesis import strategies as st

from qmtl.runtime.http import params
from qmtl.runtime.http.server import Binding

FD = descriptor.FieldDescriptor
MAX_DEPTH = 3

# -- values at the edges ----------------------------------------------------------------------

_EDGE_INTS = [0, 1, -1, 2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**32 - 1, 2**32]
_EDGE_INTS += [2**53, 2**53 + 1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64 - 1, 2**64]
_EDGE_INTS += [10**30, -(10**30)]
edge_ints = st.sampled_from(_EDGE_INTS) | st.integers()
edge_floats = st.sampled_from([0.0, -0.0, 1.5, 1e308, -1e308, 3.5e38, 1e-320]) | st.floats()
_TIMESTAMPS = [
    "1970-01-01T00:00:00Z",
    "0001-01-01T00:00:00Z",
    "0000-12-31T23:59:59Z",
    "9999-12-31T23:59:59.999999999Z",
    "9999-12-31T23:59:59-01:00",
    "0001-01-01T00:00:00+01:00",
    "2026-02-30T00:00:00Z",
    "2026-01-01T24:00:00Z",
    "2026-01-01T00:00:60Z",
    "2026-01-01T00:00:00.0000000001Z",
    "2026-01-01T00:00:00+99:99",
    "2026-01-01 00:00:00Z",
    "2026-01-01T00:00:00",
    "2026-01-02T03:00:00.3e8558Z",
]
_DURATIONS = ["0s", "1.5s", "-1s", "315576000000s", "315576000001s", "-315576000001s"]
_DURATIONS += ["1.0000000001s", "1e3s", "s", "1", "+1s", "NaNs", "0.-1s", "--1s", "0.3e999s"]
_NUMBER_TEXTS = ["1", "-1", "1.0", "1e3", "1E400", "-0", "0x10", "1_0", " 1", "NaN"]
_NUMBER_TEXTS += ["Infinity", "-Infinity", "infinity", "9223372036854775808", "1e-400", ""]

edge_text = st.text(max_size=20) | st.sampled_from(
    [
        "",
        ".",
        "..",
        "a/b",
        "%2F",
        "\x00",
        "\ud7ff\ue000",
        "é",
        "🙂",
        "true",
        "null",
        *_TIMESTAMPS,
        *_DURATIONS,
        *_NUMBER_TEXTS,
    ]
)

json_scalars = (
    st.none() | st.booleans() | edge_ints | edge_floats | edge_text | st.sampled_from(_TIMESTAMPS)
)
any_json: st.SearchStrategy[Any] = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(edge_text, inner, max_size=4),
    max_leaves=12,
)


# -- proto3 JSON for a message --------------------------------------------------------------

_INTEGER_KINDS = {
    FD.TYPE_INT32,
    FD.TYPE_INT64,
    FD.TYPE_UINT32,
    FD.TYPE_UINT64,
    FD.TYPE_SINT32,
    FD.TYPE_SINT64,
    FD.TYPE_FIXED32,
    FD.TYPE_FIXED64,
    FD.TYPE_SFIXED32,
    FD.TYPE_SFIXED64,
}


def _json_scalar(field: descriptor.FieldDescriptor) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind in _INTEGER_KINDS:
        return edge_ints | edge_ints.map(str) | st.sampled_from(_NUMBER_TEXTS) | edge_floats
    if kind in (FD.TYPE_DOUBLE, FD.TYPE_FLOAT):
        return edge_floats | st.sampled_from(_NUMBER_TEXTS) | edge_ints
    if kind == FD.TYPE_BOOL:
        return st.booleans() | st.sampled_from(["true", "false", 0, 1, "1"])
    if kind == FD.TYPE_ENUM:
        enum_type = field.enum_type
        names = [value.name for value in enum_type.values]
        numbers = [value.number for value in enum_type.values]
        return st.sampled_from(names) | st.sampled_from(numbers) | edge_ints | edge_text
    if kind == FD.TYPE_BYTES:
        return st.binary(max_size=12).map(_base64) | edge_text
    return edge_text  # TYPE_STRING


def _base64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _json_message_value(message_type: descriptor.Descriptor, depth: int) -> st.SearchStrategy[Any]:
    name = message_type.full_name
    if name == "google.protobuf.Timestamp":
        return st.sampled_from(_TIMESTAMPS) | edge_text
    if name == "google.protobuf.Duration":
        return st.sampled_from(_DURATIONS) | edge_text
    if name == "google.protobuf.FieldMask":
        return edge_text | st.sampled_from(["a,b", "fooBar", "foo_bar", "a..b"])
    if name in ("google.protobuf.Struct", "google.protobuf.Value", "google.protobuf.ListValue"):
        return any_json
    if name.startswith("google.protobuf.") and name.endswith("Value"):
        return _json_scalar(message_type.fields_by_name["value"])
    if depth >= MAX_DEPTH:
        return st.just({})
    return json_object(message_type, depth + 1)


def _json_field(field: descriptor.FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        key = field.message_type.fields_by_name["key"]
        value = field.message_type.fields_by_name["value"]
        keys = edge_text | _json_scalar(key).map(str)
        return st.dictionaries(keys, _json_single(value, depth), max_size=3)
    single = _json_single(field, depth)
    if field.is_repeated:
        return st.lists(single, max_size=3)
    return single


def _json_single(field: descriptor.FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.message_type is not None:
        return _json_message_value(field.message_type, depth)
    return _json_scalar(field)


def _deferred_field(field: descriptor.FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    # Deferred: a message may contain itself, so its strategy is built only when drawn.
    return st.deferred(lambda: _json_field(field, depth))


def json_object(
    message_type: descriptor.Descriptor, depth: int = 0
) -> st.SearchStrategy[dict[str, Any]]:
    """Objects for `message_type`: its fields by JSON or proto name, some wrong, some unknown."""
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for field in message_type.fields:
        typed = _deferred_field(field, depth)
        # Mostly right-kinded values; sometimes anything at all, e.g. `[]` for a message.
        value = st.one_of(typed, typed, typed, any_json)
        optional[field.json_name] = value
        if field.name != field.json_name:
            optional[field.name] = value
    base = st.fixed_dictionaries({}, optional=optional)
    unknown = st.dictionaries(edge_text, any_json, max_size=1)
    return st.tuples(base, unknown, st.integers(0, 9)).map(
        lambda parts: {**parts[0], **parts[1]} if parts[2] == 0 else parts[0]
    )


def descriptor_of(cls: type[message.Message]) -> descriptor.Descriptor:
    """`cls.DESCRIPTOR`, typed as the pure-Python descriptor whose API upb's shares."""
    return cast(descriptor.Descriptor, cls.DESCRIPTOR)


def json_body(message_type: descriptor.Descriptor) -> st.SearchStrategy[bytes]:
    """A JSON body for `message_type` (NaN and Infinity as Python writes them), or any JSON."""
    document = st.one_of(json_object(message_type), json_object(message_type), any_json)
    return document.map(lambda value: json.dumps(value).encode())


# -- protobuf wire bytes for a message --------------------------------------------------------

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
_WIRE = {
    FD.TYPE_DOUBLE: _I64,
    FD.TYPE_FLOAT: _I32,
    FD.TYPE_FIXED64: _I64,
    FD.TYPE_SFIXED64: _I64,
    FD.TYPE_FIXED32: _I32,
    FD.TYPE_SFIXED32: _I32,
    FD.TYPE_STRING: _LEN,
    FD.TYPE_BYTES: _LEN,
    FD.TYPE_MESSAGE: _LEN,
}


def varint(value: int) -> bytes:
    """The base-128 varint of `value`; a negative one as its 64-bit two's complement."""
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _record(number: int, wire: int, payload: bytes) -> bytes:
    if wire == _LEN:
        payload = varint(len(payload)) + payload
    return varint(number << 3 | wire) + payload


def _wire_payload(field: descriptor.FieldDescriptor, depth: int) -> st.SearchStrategy[bytes]:
    wire = _WIRE.get(field.type, _VARINT)
    if wire == _VARINT:
        return edge_ints.map(varint)
    if wire == _I64:
        return st.binary(min_size=8, max_size=8)
    if wire == _I32:
        return st.binary(min_size=4, max_size=4)
    if field.type == FD.TYPE_STRING:
        return edge_text.map(lambda text: text.encode("utf-8", "surrogatepass")) | st.binary(
            max_size=8
        )
    if field.type == FD.TYPE_MESSAGE and depth < MAX_DEPTH:
        return wire_message(field.message_type, depth + 1) | st.binary(max_size=8)
    return st.binary(max_size=12)


def _wire_field(field: descriptor.FieldDescriptor, depth: int) -> st.SearchStrategy[bytes]:
    wire = _WIRE.get(field.type, _VARINT)
    single = st.deferred(lambda: _wire_payload(field, depth)).map(
        lambda payload: _record(field.number, wire, payload)
    )
    if field.is_repeated and wire != _LEN:
        # Packed form: one length-delimited record of several bare values.
        packed = st.lists(_wire_payload(field, depth), max_size=4).map(
            lambda items: _record(field.number, _LEN, b"".join(items))
        )
        return single | packed
    return single


_stray_record = st.builds(
    _record,
    st.integers(1, 2**29 - 1) | st.integers(0, 20),
    st.sampled_from([_VARINT, _I64, _LEN, _I32, 3, 4, 6, 7]),
    st.binary(max_size=8),
)


def wire_message(message_type: descriptor.Descriptor, depth: int = 0) -> st.SearchStrategy[bytes]:
    """Wire records of `message_type`'s fields (edge values, nested messages), plus strays."""
    records = [_wire_field(field, depth) for field in message_type.fields]
    record = st.one_of(*records, _stray_record) if records else _stray_record
    return st.lists(record, max_size=6).map(b"".join)


def wire_body(message_type: descriptor.Descriptor) -> st.SearchStrategy[bytes]:
    """Wire bytes for `message_type`, sometimes cut short or with a byte flipped."""
    whole = wire_message(message_type)
    cut = st.tuples(whole, st.integers(0, 64)).map(lambda pair: pair[0][: pair[1]])
    flipped = st.tuples(whole, st.integers(0, 64), st.integers(1, 255)).map(_flip)
    return st.one_of(whole, whole, cut, flipped, st.binary(max_size=32))


def _flip(parts: tuple[bytes, int, int]) -> bytes:
    data, index, mask = parts
    if not data:
        return data
    index %= len(data)
    return data[:index] + bytes([data[index] ^ mask]) + data[index + 1 :]


# -- query strings ----------------------------------------------------------------------------

_PARSER_VALUES: dict[Callable[[str], Any], st.SearchStrategy[str]] = {
    params.parse_int32: edge_ints.map(str),
    params.parse_int64: edge_ints.map(str),
    params.parse_uint32: edge_ints.map(str),
    params.parse_uint64: edge_ints.map(str),
    params.parse_double: edge_floats.map(repr) | st.sampled_from(_NUMBER_TEXTS),
    params.parse_float: edge_floats.map(repr) | st.sampled_from(_NUMBER_TEXTS),
    params.parse_bool: st.sampled_from(["true", "false", "True", "1", ""]),
    params.parse_timestamp: st.sampled_from(_TIMESTAMPS),
    params.parse_duration: st.sampled_from(_DURATIONS),
}
query_value = edge_text | edge_ints.map(str) | st.sampled_from(_NUMBER_TEXTS + _TIMESTAMPS)


def _escaped(text: str) -> st.SearchStrategy[bytes]:
    """`text` as it may appear in a query string: escaped, form-escaped, raw, or half-escaped."""
    raw = text.encode("utf-8", "surrogatepass")
    return st.sampled_from(
        [
            quote(raw, safe="").encode(),
            quote(raw, safe=":/,").replace("%20", "+").encode(),
            raw,
            raw.replace(b"%", b"%2"),
        ]
    )


def _pair(binding: Binding[Any]) -> st.SearchStrategy[bytes]:
    names: list[str] = [name for param in binding.query.params for name in param.names]
    name = st.sampled_from(names) | edge_text if names else edge_text
    known = [
        st.tuples(st.sampled_from(param.names), _PARSER_VALUES.get(param.parse, query_value))
        for param in binding.query.params
    ]
    pair = (
        st.one_of(*known, st.tuples(name, query_value)) if known else st.tuples(name, query_value)
    )
    return pair.flatmap(
        lambda nv: st.tuples(_escaped(nv[0]), _escaped(nv[1]), st.sampled_from([b"=", b"", b"=="]))
    ).map(lambda parts: parts[0] + parts[2] + parts[1])


def query_string(binding: Binding[Any]) -> st.SearchStrategy[bytes]:
    """Raw query strings for `binding`'s route: its own names, repeated, unknown, mangled."""
    separators = st.sampled_from([b"&", b"&&", b";", b"&=&"])
    joined = st.tuples(st.lists(_pair(binding), max_size=5), separators).map(
        lambda parts: parts[1].join(parts[0])
    )
    return joined | st.binary(max_size=24)


# -- media types ------------------------------------------------------------------------------

_MEDIA = [
    "application/json",
    "application/x-protobuf",
    "application/*",
    "*/*",
    "text/html",
    "APPLICATION/JSON",
    "application/json+x",
    "application/jsonx",
    "application",
    "*",
    "/",
    "",
]
_PARAMS = ["q=0", "q=1", "q=0.5", "q=-1", "q=2", "q=nan", "q=inf", "q=1e999", "q=", "q"]
_PARAMS += ["Q=0", "charset=utf-8", 'charset="UTF-8"', "charset=latin-1", "level=1", "=", ";"]
_media_range = st.tuples(
    st.sampled_from(_MEDIA) | st.text(string.printable, max_size=12),
    st.lists(st.sampled_from(_PARAMS) | st.text(max_size=6), max_size=3),
    st.sampled_from(["", " ", "\t"]),
).map(lambda parts: parts[2].join([parts[0], *(f";{p}" for p in parts[1])]))

media_header = st.one_of(
    st.lists(_media_range, min_size=1, max_size=4).map(",".join),
    st.lists(_media_range, min_size=1, max_size=4).map(", ".join),
    st.binary(max_size=24).map(lambda data: data.decode("latin-1")),
)
