"""The generated proto3 JSON codec's runtime half: the registry and the well-known-type helpers.

`make generate` writes, next to each `<file>_pb2.py`, a `<file>_json.py` (qmtl_codegen.json_codec)
whose per-message functions turn a message into the JSON object json_format would print, and
fill a message from a parsed JSON object. Importing that module registers them here under the
message's full name; `lookup` imports it on first use, so the runtime codec (qmtl.runtime.codec)
finds them for every message whose file has one and keeps json_format for the others.

Decoding has a fast path and a reference path. The generated `from_obj` functions accept only
input whose meaning is plain (the type a field expects, a field by its JSON name, a known enum
name, a canonical Timestamp, ...) and raise `Fallback` on anything else: a null, a value of
another JSON type, a proto field name, an unknown field or enum name, two members of a oneof.
On `Fallback` (or any error) the caller decodes the same bytes with the reference parser
(json_format and the runtime's shape and range checks), which accepts or rejects exactly as
before; so both paths accept the same inputs and build the same messages, and only the
reference path's error texts are ever seen.

A key repeated in one object, which json_format refuses and orjson folds (the last one wins),
is caught without a tokenizer, from orjson's compact print of what it parsed. A body equal to
that print has no repeated key (the print has none), which settles the common case with one
comparison. Otherwise colons are counted: JSON has colons outside strings only after keys, so
the body's colons are its keys plus the colons inside its strings, while the print has one
colon per kept key plus the same string colons. They differ exactly when a key was folded,
unless a string spells a colon as `\u003a`, which sends the body to the reference.
"""

from __future__ import annotations

import base64
import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from google.protobuf import empty_pb2, json_format, message
from google.protobuf.internal import api_implementation, type_checkers

from qmtl.runtime import wellknown_range

# to_obj(msg, emit_defaults) -> the JSON value; from_obj(obj, msg, ignore_unknown, depth) fills
# msg or raises Fallback. Messages are upb messages, typed Any as protobuf's
# stubs do not describe the generated classes' fields.
ToObj = Callable[[Any, bool], Any]
FromObj = Callable[[Any, Any, bool, int], None]

# json_format's own limit: a message nested deeper than this is refused (the reference path
# says so; the fast path only notices and falls back).
MAX_DEPTH = 100


def _has_field(msg: Any, name: str) -> bool:
    return bool(msg.HasField(name))


def _which_oneof(msg: Any, name: str) -> str | None:
    found: str | None = msg.WhichOneof(name)
    return found


# Generated modules test presence through these. Under upb (the implementation in use), they
# are its Message methods, unbound: every message class shares them, and a call through them
# costs less than `msg.HasField(...)` (no bound method built per call). The pure-Python
# implementation defines them per class, so there they stay plain calls.
has_field: Callable[[Any, str], bool] = _has_field
which_oneof: Callable[[Any, str], str | None] = _which_oneof
if api_implementation.Type() == "upb":
    has_field = empty_pb2.Empty.HasField
    which_oneof = empty_pb2.Empty.WhichOneof

FLOAT_MAX: float = type_checkers._FLOAT_MAX  # type: ignore[attr-defined]
FLOAT_MIN: float = type_checkers._FLOAT_MIN  # type: ignore[attr-defined]


class Fallback(Exception):
    """The fast path met input whose meaning it leaves to the reference parser."""


@dataclass(frozen=True, slots=True)
class MessageCodec:
    """The generated functions of one message type."""

    to_obj: ToObj
    from_obj: FromObj


_codecs: dict[str, MessageCodec] = {}
_files_tried: set[str] = set()


def register(full_name: str, to_obj: ToObj, from_obj: FromObj) -> None:
    """Called by generated modules at import, once per message type."""
    _codecs[full_name] = MessageCodec(to_obj, from_obj)


def _module_of(proto_file: str) -> str:
    # qmtl/dag/v1/dag.proto -> qmtl.dag.v1.dag_json, as qmtl_codegen.json_codec names it.
    return proto_file.removesuffix(".proto").replace("/", ".") + "_json"


def lookup(desc: Any) -> MessageCodec | None:
    """The generated codec of the message type `desc` (a Descriptor), importing its module once."""
    found = _codecs.get(desc.full_name)
    if found is not None:
        return found
    file_name = desc.file.name
    if file_name in _files_tried:
        return None
    _files_tried.add(file_name)
    name = _module_of(file_name)
    try:
        importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise  # the module exists but something it imports does not: a real problem
        return None
    return _codecs.get(desc.full_name)


def encode(codec: MessageCodec, msg: message.Message, *, emit_defaults: bool = False) -> bytes:
    """`msg` as compact UTF-8 proto3 JSON; json_format's SerializeToJsonError where it has one."""
    return orjson.dumps(codec.to_obj(msg, emit_defaults))


def try_decode(
    codec: MessageCodec, data: bytes, msg: message.Message, ignore_unknown: bool
) -> bool:
    """Fills `msg` from JSON `data` on the fast path; False (and `msg` cleared) to fall back.

    A message filled here holds only values the proto3 JSON mapping can write back (finite
    Value numbers, Timestamps and Durations in range), so it needs no wellknown_range walk.
    """
    try:
        loaded = orjson.loads(data)
        if _keys_unique(data, loaded):
            codec.from_obj(loaded, msg, ignore_unknown, 1)
            return True
    except Exception:  # whatever the fast path trips on, the reference parser judges
        pass
    msg.Clear()
    return False


def _keys_unique(data: bytes, loaded: Any) -> bool:
    """Whether no object of `data` repeats a key (orjson folded none into `loaded`)."""
    printed = orjson.dumps(loaded)
    if printed == data:
        # orjson's print has unique keys, so a body identical to it has too: the usual case
        # (this codec's and most clients' compact output), decided by one comparison.
        return True
    if b"\\u003a" in data or b"\\u003A" in data:
        return False  # a colon spelt as an escape: the count below would not see it
    return data.count(b":") == printed.count(b":")


# --- encoding helpers: json_format's printing of the types with a JSON form of their own ----


def nonfinite(value: float) -> str:
    """The string proto3 JSON writes for a float or double that is NaN or infinite."""
    if value != value:
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def float32(value: float) -> Any:
    """A float field as json_format prints it: the shortest decimal that reads back the same."""
    if value - value != 0.0:
        return nonfinite(value)
    return type_checkers.ToShortestFloat(value)  # type: ignore[attr-defined]


def is_set_float(value: float) -> bool:
    """Whether an implicit-presence float holds a value other than +0.0 (-0.0 is printed)."""
    return value != 0.0 or math.copysign(1.0, value) < 0.0


def b64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def text_form(msg: Any, emit_defaults: bool) -> str:
    """Timestamp, Duration and FieldMask: the string json_format prints (their ToJsonString)."""
    return str(msg.ToJsonString())


def value(msg: Any, emit_defaults: bool = False) -> Any:
    """google.protobuf.Value as json_format prints it (NaN and infinities refused as it does)."""
    which = which_oneof(msg, "kind")
    if which == "string_value":
        return msg.string_value
    if which == "number_value":
        number = msg.number_value
        if number - number != 0.0:
            raise json_format.SerializeToJsonError(
                f"Failed to serialize Value.number_value {number}: proto3 JSON has no such number"
            )
        return number
    if which is None or which == "null_value":
        return None
    if which == "bool_value":
        return msg.bool_value
    if which == "struct_value":
        return struct(msg.struct_value)
    return list_value(msg.list_value)


def struct(msg: Any, emit_defaults: bool = False) -> dict[str, Any]:
    fields = msg.fields
    return {key: value(fields[key]) for key in fields}


def list_value(msg: Any, emit_defaults: bool = False) -> list[Any]:
    return [value(item) for item in msg.values]


def well_known(msg: Any, emit_defaults: bool) -> Any:
    """Any other well-known type (Any, Duration, FieldMask, Empty, wrappers): json_format's form."""
    return json_format.MessageToDict(msg, always_print_fields_with_no_presence=emit_defaults)


# --- decoding helpers: the fast path of each JSON form; Fallback for anything else ----------


def integer(item: Any) -> int:
    """An integer field's value from a JSON number or (64-bit form) string, as json_format reads."""
    if type(item) is int:
        return item
    if type(item) is str:
        if item.isdigit():
            return int(item)
        result: int = json_format._ConvertInteger(item)  # type: ignore[attr-defined]
        return result
    raise Fallback


def double(item: Any) -> float:
    if type(item) is float:
        if item - item != 0.0:
            raise Fallback
        return item
    if type(item) is int:
        return float(item)
    if item == "NaN":
        return math.nan
    if item == "Infinity":
        return math.inf
    if item == "-Infinity":
        return -math.inf
    raise Fallback


def single(item: Any) -> float:
    number = double(item)
    if number - number == 0.0 and not FLOAT_MIN <= number <= FLOAT_MAX:
        raise Fallback
    return number


def boolean(item: Any) -> bool:
    if type(item) is bool:
        return item
    raise Fallback


def string(item: Any) -> str:
    if type(item) is str:
        return item
    raise Fallback


def bytes_(item: Any) -> bytes:
    if type(item) is not str:
        raise Fallback
    encoded = item.encode("utf-8")
    # json_format's reading: the URL-safe alphabet (the standard one passes through), padding
    # optional.
    return base64.urlsafe_b64decode(encoded + b"=" * (4 - len(encoded) % 4))


def enum(item: Any, names: dict[str, int], numbers: frozenset[int]) -> int:
    if type(item) is str:
        number = names.get(item)
        if number is None:
            raise Fallback  # unknown names, numbers as strings: json_format's rules
        return number
    if type(item) is int and item in numbers:
        return item
    raise Fallback


def bool_key(key: str) -> bool:
    if key == "true":
        return True
    if key == "false":
        return False
    raise Fallback


def int_key(key: str) -> int:
    return integer(key)


def check_ignored(
    item: dict[str, Any], json_names: frozenset[str], proto_names: frozenset[str]
) -> None:
    """With ignore_unknown: a proto field name, or a key shaped like an extension (which
    json_format refuses even then), is the reference parser's."""
    if not proto_names.isdisjoint(item):
        raise Fallback
    for key in item:
        if key[:1] == "[" and key not in json_names:
            raise Fallback


def other_keys(
    item: dict[str, Any],
    ignore_unknown: bool,
    json_names: frozenset[str],
    proto_names: frozenset[str],
) -> None:
    """A message object with a key that is no field's JSON name, or a null value: the fast path
    goes on only for unknown keys it may ignore (and never for a null, whose meaning depends on
    the field)."""
    if not ignore_unknown or None in item.values():
        raise Fallback
    check_ignored(item, json_names, proto_names)


def timestamp_in(item: Any, msg: Any, ignore_unknown: bool, depth: int) -> None:
    if type(item) is not str or wellknown_range.timestamp_text_problem(item) is not None:
        raise Fallback
    msg.FromJsonString(item)
    if not (
        wellknown_range.TIMESTAMP_MIN_SECONDS
        <= msg.seconds
        <= wellknown_range.TIMESTAMP_MAX_SECONDS
        and 0 <= msg.nanos < wellknown_range.NANOS_PER_SECOND
    ):
        raise Fallback


def duration_in(item: Any, msg: Any, ignore_unknown: bool, depth: int) -> None:
    if type(item) is not str or wellknown_range.duration_text_problem(item) is not None:
        raise Fallback
    msg.FromJsonString(item)
    seconds, nanos = msg.seconds, msg.nanos
    limit = wellknown_range.DURATION_MAX_SECONDS
    if not (
        -limit <= seconds <= limit
        and -wellknown_range.NANOS_PER_SECOND < nanos < wellknown_range.NANOS_PER_SECOND
        and not (seconds < 0 < nanos or nanos < 0 < seconds)
    ):
        raise Fallback


def struct_in(item: Any, msg: Any, ignore_unknown: bool = False, depth: int = 0) -> None:
    if type(item) is not dict:
        raise Fallback
    msg.Clear()  # json_format marks an empty Struct as set
    fields = msg.fields
    for key, entry in item.items():
        value_in(entry, fields[key])


def list_value_in(item: Any, msg: Any, ignore_unknown: bool = False, depth: int = 0) -> None:
    if type(item) is not list:
        raise Fallback
    msg.ClearField("values")
    add = msg.values.add
    for entry in item:
        value_in(entry, add())


def value_in(item: Any, msg: Any, ignore_unknown: bool = False, depth: int = 0) -> None:
    # orjson reads no NaN or infinity, so every number here is one JSON can write back.
    kind = type(item)
    if kind is str:
        msg.string_value = item
    elif kind is float or kind is int:
        msg.number_value = item
    elif kind is bool:
        msg.bool_value = item
    elif item is None:
        msg.null_value = 0
    elif kind is dict:
        struct_in(item, msg.struct_value)
    elif kind is list:
        list_value_in(item, msg.list_value)
    else:
        raise Fallback


def empty_in(item: Any, msg: Any, ignore_unknown: bool, depth: int) -> None:
    if type(item) is not dict or item:
        raise Fallback
    msg.SetInParent()


def field_mask_in(item: Any, msg: Any, ignore_unknown: bool, depth: int) -> None:
    if type(item) is not str:
        raise Fallback
    msg.FromJsonString(item)


def wrapper_in(item: Any, msg: Any, ignore_unknown: bool, depth: int) -> None:
    if item is None or type(item) in (dict, list):
        raise Fallback
    field = msg.DESCRIPTOR.fields_by_name["value"]
    msg.value = json_format._ConvertScalarFieldValue(item, field, "value")  # type: ignore[attr-defined]


def fallback_in(item: Any, msg: Any, ignore_unknown: bool, depth: int) -> None:
    """Any: its @type decides the rest; left to json_format whole."""
    raise Fallback


__all__ = [
    "FLOAT_MAX",
    "FLOAT_MIN",
    "MAX_DEPTH",
    "Fallback",
    "FromObj",
    "MessageCodec",
    "ToObj",
    "b64",
    "bool_key",
    "boolean",
    "bytes_",
    "check_ignored",
    "double",
    "duration_in",
    "empty_in",
    "encode",
    "enum",
    "fallback_in",
    "field_mask_in",
    "float32",
    "has_field",
    "int_key",
    "integer",
    "is_set_float",
    "list_value",
    "list_value_in",
    "lookup",
    "nonfinite",
    "other_keys",
    "register",
    "single",
    "string",
    "struct",
    "struct_in",
    "text_form",
    "timestamp_in",
    "try_decode",
    "value",
    "value_in",
    "well_known",
    "which_oneof",
    "wrapper_in",
]
