"""JSON bodies must have the shape of their message, at every depth (docs/operations/http.md).

protobuf's json_format merges a message from any JSON value it can iterate: a top-level `[]`
or `""`, or `{"dag": []}` for a message field, decodes as an empty message, which a REQUIRED
check then takes for a message that was sent. After json_format has parsed a body, `check`
walks the same JSON alongside the descriptor and refuses any message, at any depth (singular,
repeated element or map value), that was not a JSON object.

Message kinds need this walk, and enums: json_format reads `true` as 1 and `1.5` as 1 for an
enum field, so the walk takes only a name or a whole number there. json_format already refuses
a repeated field that is not an array, a map that is not an object, any other scalar of the
wrong type, and a wrong shape for the well-known types with a JSON form of their own (listed in
_OWN_JSON_FORM). `null` is
left to json_format, which applies proto3 JSON's rule (the field keeps its default).

The walk also holds Timestamp and Duration strings to their grammar (wellknown_range):
json_format reads them with int()/float()/strptime, which take offsets such as `+99:00`,
exponents and digit separators that the proto3 JSON mapping does not allow.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor, json_format

from qmtl.runtime import wellknown_range

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

# The text form's grammar, per well-known type that has one checked here.
_TEXT_GRAMMAR = {
    "google.protobuf.Timestamp": wellknown_range.timestamp_text_problem,
    "google.protobuf.Duration": wellknown_range.duration_text_problem,
}

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
        grammar = _TEXT_GRAMMAR.get(desc.full_name)
        if grammar is not None and isinstance(value, str):
            problem = grammar(value)
            if problem is not None:
                raise json_format.ParseError(f"{where}: {value!r} is {problem}")
        return
    if not isinstance(value, dict):
        raise json_format.ParseError(
            f"{where} must be a JSON object ({desc.full_name}), got {_kind(value)}"
        )
    fields = _fields(desc)
    named: set[str] = set()
    for key, item in value.items():
        field = fields.get(key)
        if field is not None:
            # json_format takes both spellings of one field and lets the later win (a null
            # then clears the other): one field, one spelling (docs/api/HTTP.md).
            if field.name in named:
                raise json_format.ParseError(
                    f"{where}: field {field.name} is given under both its JSON and proto names"
                )
            named.add(field.name)
        if field is None or item is None:
            continue  # unknown names and nulls: json_format's rules already applied
        at = f"{where}.{key}" if where != "the body" else key
        if field.message_type is not None:
            _check_field(field, item, at)
        elif field.enum_type is not None:
            _check_enum(field.enum_type, item, at, repeated=field.is_repeated)


def _enum_problem(value: Any) -> str | None:
    # proto3 JSON spells an enum as its name or its number; json_format also takes `true` as 1
    # and truncates `1.5` to 1, which no document allows (declared_enums checks the numbers).
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return None
    return _kind(value)


def _check_enum(enum: Any, item: Any, where: str, *, repeated: bool) -> None:
    elements = enumerate(item) if repeated and isinstance(item, list) else [(None, item)]
    for position, element in elements:
        problem = None if element is None else _enum_problem(element)
        if problem is not None:
            at = where if position is None else f"{where}[{position}]"
            raise json_format.ParseError(
                f"{at} must be an enum name or number ({enum.full_name}), got {problem}"
            )


def _check_field(field: descriptor.FieldDescriptor, item: Any, where: str) -> None:
    target = field.message_type
    if target.GetOptions().map_entry:
        value_field = target.fields_by_name["value"]
        if isinstance(item, dict):
            for map_key, entry in item.items():
                if entry is None:
                    continue
                if value_field.message_type is not None:
                    check(entry, value_field.message_type, f"{where}[{map_key!r}]")
                elif value_field.enum_type is not None:
                    _check_enum(
                        value_field.enum_type, entry, f"{where}[{map_key!r}]", repeated=False
                    )
    elif field.is_repeated:
        if isinstance(item, list):
            for position, element in enumerate(item):
                check(element, target, f"{where}[{position}]")
    else:
        check(item, target, where)
