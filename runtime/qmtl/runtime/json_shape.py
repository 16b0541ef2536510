"""JSON bodies must have the shape of their message, at every depth (docs/operations/http.md).

protobuf's json_format merges a message from any JSON value it can iterate: a top-level `[]`
or `""`, or `{"dag": []}` for a message field, decodes as an empty message, which a REQUIRED
check then takes for a message that was sent. After json_format has parsed a body, `check`
walks the same JSON alongside the descriptor and refuses any message, at any depth (singular,
repeated element or map value), that was not a JSON object.

Only the message kinds need this walk: json_format already refuses a repeated field that is
not an array, a map that is not an object, a scalar of the wrong type, and a wrong shape for
the well-known types with a JSON form of their own (listed in _OWN_JSON_FORM). `null` is
left to json_format, which applies proto3 JSON's rule (the field keeps its default).
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor, json_format

# Well-known types json_format reads from something other than an object, and checks itself.
# Their contents are not walked: a Struct or Value holds arbitrary JSON, and an Any holds
# whatever its @type names (no request of ours carries one).
_OWN_JSON_FORM = frozenset(
    "google.protobuf." + name
    for name in (
        "Any",
        "Timestamp",
        "Duration",
        "FieldMask",
        "Struct",
        "Value",
        "ListValue",
        "DoubleValue",
        "FloatValue",
        "Int64Value",
        "UInt64Value",
        "Int32Value",
        "UInt32Value",
        "BoolValue",
        "StringValue",
        "BytesValue",
    )
)

_FieldIndex = dict[str, descriptor.FieldDescriptor]
_indexes: dict[str, _FieldIndex] = {}


def _fields(desc: Any) -> _FieldIndex:
    # json_format accepts a field by its JSON name or its proto name; so does this walk.
    index = _indexes.get(desc.full_name)
    if index is None:
        index = {}
        for field in desc.fields:
            index[field.name] = field
            index[field.json_name] = field
        _indexes[desc.full_name] = index
    return index


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


def check(value: Any, desc: Any, where: str = "the body") -> None:
    """Raises json_format.ParseError where a message of `desc`'s tree is not a JSON object.

    `desc` is a message Descriptor (the upb one at run time, which the stubs type apart).

    Call it on JSON that json_format already parsed into `desc`: that bounds the depth and
    has refused every other kind mismatch.
    """
    if desc.full_name in _OWN_JSON_FORM:
        return
    if not isinstance(value, dict):
        raise json_format.ParseError(
            f"{where} must be a JSON object ({desc.full_name}), got {_kind(value)}"
        )
    fields = _fields(desc)
    for key, item in value.items():
        field = fields.get(key)
        if field is None or item is None or field.message_type is None:
            continue  # unknown names, nulls and scalars: json_format's rules already applied
        _check_field(field, item, f"{where}.{key}" if where != "the body" else key)


def _check_field(field: descriptor.FieldDescriptor, item: Any, where: str) -> None:
    target = field.message_type
    if target.GetOptions().map_entry:
        value_type = target.fields_by_name["value"].message_type
        if value_type is not None and isinstance(item, dict):
            for map_key, entry in item.items():
                if entry is not None:
                    check(entry, value_type, f"{where}[{map_key!r}]")
    elif field.is_repeated:
        if isinstance(item, list):
            for position, element in enumerate(item):
                check(element, target, f"{where}[{position}]")
    else:
        check(item, target, where)
