"""Hypothesis strategies driven by message descriptors: any message of the schemas, and JSON
texts for it that a client might send (canonical, re-spelt, or broken in one place).

`messages(cls)` fills every kind of field: all scalar types at their edges (int64 bounds,
NaN/Infinity/-0.0, empty and non-ASCII strings and bytes), enums (known numbers, and unknown
ones for open enums), nested and repeated messages, maps with every key type, oneofs, proto3
`optional`, and the well-known types (Timestamp and Duration in and out of the JSON range,
Struct/Value/ListValue with non-finite numbers, FieldMask, wrappers, Empty, Any).

`json_variants(cls, msg)` starts from json_format's JSON of `msg` and rewrites it the ways
proto3 JSON allows (proto field names, 64-bit integers as numbers, 32-bit ones as strings,
enums by number, bytes in the URL-safe alphabet without padding, floats as strings) and the
ways it does not (an unknown field, a null, a value of the wrong type, a duplicate key, two
spellings of one field), so that both codecs meet the same inputs.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from google.protobuf import descriptor, json_format, message
from hypothesis import strategies as st

FD = descriptor.FieldDescriptor
MAX_DEPTH = 3

_INT_RANGES = {
    FD.TYPE_INT32: (-(2**31), 2**31 - 1),
    FD.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FD.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FD.TYPE_UINT32: (0, 2**32 - 1),
    FD.TYPE_FIXED32: (0, 2**32 - 1),
    FD.TYPE_INT64: (-(2**63), 2**63 - 1),
    FD.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FD.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FD.TYPE_UINT64: (0, 2**64 - 1),
    FD.TYPE_FIXED64: (0, 2**64 - 1),
}
_TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=8)
_JSON_LEAF = st.none() | st.booleans() | _TEXT | st.floats(allow_nan=False, allow_infinity=False)
_JSON = st.recursive(
    _JSON_LEAF,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
    max_leaves=6,
)


def _int(kind: int) -> st.SearchStrategy[int]:
    low, high = _INT_RANGES[kind]
    return st.sampled_from([low, high, 0, -1 if low < 0 else 1]) | st.integers(low, high)


def _scalar(fd: Any) -> st.SearchStrategy[Any]:
    kind = fd.type
    if kind in _INT_RANGES:
        return _int(kind)
    if kind == FD.TYPE_DOUBLE:
        return st.floats() | st.sampled_from([-0.0, float("inf"), float("-inf"), float("nan")])
    if kind == FD.TYPE_FLOAT:
        return st.floats(width=32) | st.sampled_from([-0.0, float("inf"), float("nan")])
    if kind == FD.TYPE_BOOL:
        return st.booleans()
    if kind == FD.TYPE_STRING:
        return _TEXT
    if kind == FD.TYPE_BYTES:
        return st.binary(max_size=10)
    if kind == FD.TYPE_ENUM:
        numbers = [value.number for value in fd.enum_type.values]
        known = st.sampled_from(numbers)
        return known if fd.enum_type.is_closed else known | st.integers(-5, 1000)
    raise AssertionError(f"not a scalar: {fd.full_name}")


def _fill_well_known(draw: Any, msg: Any, depth: int) -> bool:
    name = msg.DESCRIPTOR.full_name
    if name == "google.protobuf.Timestamp":
        msg.seconds = draw(st.integers(-62_135_596_800 - 5, 253_402_300_799 + 5))
        msg.nanos = draw(st.sampled_from([0, 1, 500_000_000, 999_999_999]) | st.integers(0, 10**9))
    elif name == "google.protobuf.Duration":
        msg.seconds = draw(st.integers(-315_576_000_001, 315_576_000_001))
        msg.nanos = draw(st.integers(-(10**9) + 1, 10**9 - 1))
    elif name == "google.protobuf.Struct":
        msg.update(draw(st.dictionaries(_TEXT, _JSON, max_size=3)))
        if draw(st.booleans()):
            msg.fields["n"].number_value = draw(st.floats())
    elif name == "google.protobuf.Value":
        item = draw(_JSON)
        if isinstance(item, dict):
            msg.struct_value.update(item)
        elif isinstance(item, list):
            msg.list_value.extend(item)
        elif item is None:
            msg.null_value = 0
        elif isinstance(item, bool):
            msg.bool_value = item
        elif isinstance(item, str):
            msg.string_value = item
        else:
            msg.number_value = item
    elif name == "google.protobuf.ListValue":
        msg.extend(draw(st.lists(_JSON, max_size=3)))
    elif name == "google.protobuf.FieldMask":
        paths = st.from_regex(r"[a-z][a-z0-9]{0,4}(_[a-z][a-z0-9]{0,3})?", fullmatch=True)
        msg.paths.extend(draw(st.lists(paths, max_size=3)))
    elif name == "google.protobuf.Any":
        if draw(st.booleans()):
            from google.protobuf import duration_pb2

            msg.Pack(duration_pb2.Duration(seconds=draw(st.integers(0, 100))))
    elif name == "google.protobuf.Empty":
        pass
    elif msg.DESCRIPTOR.file.name == "google/protobuf/wrappers.proto":
        msg.value = draw(_scalar(msg.DESCRIPTOR.fields_by_name["value"]))
    else:
        return False
    return True


@st.composite
def _message(draw: Any, cls: type[message.Message], depth: int = 0) -> message.Message:
    msg = cls()
    _fill(draw, msg, depth)
    return msg


def _fill(draw: Any, msg: Any, depth: int) -> None:
    if _fill_well_known(draw, msg, depth):
        return
    desc = msg.DESCRIPTOR
    chosen_oneofs = {
        oneof.name: draw(st.sampled_from([None, *oneof.fields])) for oneof in desc.oneofs
    }
    for fd in desc.fields:
        oneof = fd.containing_oneof
        if oneof is not None and chosen_oneofs[oneof.name] is not fd:
            continue
        if oneof is None and not draw(st.integers(0, 3)):
            continue  # leave some fields unset
        deep = depth >= MAX_DEPTH
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            if deep:
                continue
            key_fd = fd.message_type.fields_by_name["key"]
            value_fd = fd.message_type.fields_by_name["value"]
            target = getattr(msg, fd.name)
            for key in draw(st.lists(_scalar(key_fd), max_size=3)):
                if value_fd.message_type is not None:
                    _fill(draw, target[key], depth + 1)
                else:
                    target[key] = draw(_scalar(value_fd))
        elif fd.is_repeated:
            if fd.message_type is not None:
                if deep:
                    continue
                for _ in range(draw(st.integers(0, 2))):
                    _fill(draw, getattr(msg, fd.name).add(), depth + 1)
            else:
                getattr(msg, fd.name).extend(draw(st.lists(_scalar(fd), max_size=3)))
        elif fd.message_type is not None:
            if deep:
                continue
            sub = getattr(msg, fd.name)
            sub.SetInParent()
            _fill(draw, sub, depth + 1)
        else:
            setattr(msg, fd.name, draw(_scalar(fd)))


def messages(cls: type[message.Message]) -> st.SearchStrategy[message.Message]:
    return _message(cls)


# -- JSON texts -----------------------------------------------------------------------------


def _respell(draw: Any, value: Any, desc: Any, depth: int = 0) -> Any:
    """`value` (json_format's JSON of a `desc` message) with allowed re-spellings drawn."""
    if not isinstance(value, dict) or desc.full_name.startswith("google.protobuf.") or depth > 6:
        return value
    by_json = {fd.json_name: fd for fd in desc.fields}
    out: dict[str, Any] = {}
    for key, item in value.items():
        fd = by_json.get(key)
        if fd is None:
            out[key] = item
            continue
        name = fd.name if draw(st.integers(0, 5)) == 0 else key
        out[name] = _respell_field(draw, fd, item, depth)
    return out


def _respell_field(draw: Any, fd: Any, item: Any, depth: int) -> Any:
    if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
        value_fd = fd.message_type.fields_by_name["value"]
        return {k: _respell_value(draw, value_fd, v, depth) for k, v in item.items()}
    if fd.is_repeated:
        return [_respell_value(draw, fd, element, depth) for element in item]
    return _respell_value(draw, fd, item, depth)


def _respell_value(draw: Any, fd: Any, item: Any, depth: int) -> Any:
    if fd.message_type is not None:
        return _respell(draw, item, fd.message_type, depth + 1)
    choice = draw(st.integers(0, 3))
    if choice:
        return item
    kind = fd.type
    if kind in _INT_RANGES:
        return int(item) if isinstance(item, str) else str(item)
    if kind == FD.TYPE_ENUM and isinstance(item, str):
        return fd.enum_type.values_by_name[item].number
    if kind == FD.TYPE_BYTES:
        raw = base64.b64decode(item)
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")
    if kind in (FD.TYPE_DOUBLE, FD.TYPE_FLOAT) and isinstance(item, float):
        return repr(item)
    return item


_BREAKS = ("unknown", "null", "wrong type", "duplicate", "both names", "enum name", "top level")


def _break(draw: Any, value: Any, desc: Any) -> tuple[Any, str | None]:
    """One drawn breakage of `value`: the JSON and, for a duplicate key, the key to repeat."""
    how = draw(st.sampled_from(_BREAKS))
    if not isinstance(value, dict):
        return value, None
    broken = dict(value)
    fields = list(desc.fields)
    if how == "unknown":
        broken["notAField"] = draw(_JSON)
    elif how == "top level":
        return draw(st.sampled_from([[], "", 0, None, True])), None
    elif not fields:
        return broken, None
    else:
        fd = draw(st.sampled_from(fields))
        if how == "null":
            broken[fd.json_name] = None
        elif how == "wrong type":
            broken[fd.json_name] = draw(st.sampled_from([[], {}, "x", 1.5, True, "1e3", 7]))
        elif how == "duplicate" and broken:
            return broken, draw(st.sampled_from(sorted(broken)))
        elif how == "both names" and fd.json_name != fd.name:
            broken[fd.json_name] = broken.get(fd.json_name, "")
            broken[fd.name] = broken[fd.json_name]
        elif how == "enum name" and fd.enum_type is not None:
            broken[fd.json_name] = "NOT_A_VALUE"
    return broken, None


@st.composite
def json_variants(draw: Any, msg: message.Message) -> bytes:
    desc = msg.DESCRIPTOR
    try:
        canonical = json_format.MessageToDict(msg)
    except (json_format.SerializeToJsonError, ValueError):
        canonical = {}
    value = _respell(draw, canonical, desc)
    duplicate = None
    if draw(st.integers(0, 2)) == 0:
        value, duplicate = _break(draw, value, desc)
    text = json.dumps(value, ensure_ascii=draw(st.booleans()))
    if duplicate is not None:
        # A repeated key at the top level: `{"k": <first>, ...rest}` written twice over.
        first = json.dumps({duplicate: value[duplicate]})[1:-1]
        text = "{" + first + "," + text[1:]
    return text.encode()
