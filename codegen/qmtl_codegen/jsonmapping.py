"""The proto3 JSON mapping, written as JSON Schema (draft 2020-12) schema objects.

OpenAPI 3.1 schema objects are JSON Schema 2020-12, so the OpenAPI documents and the
per-message JSON Schemas share this one mapping; they differ only in where named types live
(`#/components/schemas/<name>` or `#/$defs/<name>`), which the caller passes as `ref`.

The schemas describe the canonical JSON that protobuf's printer emits and every parser reads:
field names are JSON names (camelCase, `json_name` honoured), 64-bit integers are decimal
strings, bytes are base64, enums are value names, and the well-known types take their special
forms. Every schema states what any valid message satisfies: a REQUIRED field without
presence is not its default (`minLength: 1` for a string, `minItems: 1` for a repeated field),
64-bit integers are within their range (a pattern, as JSON Schema bounds only numbers).

A `Style` adds what one audience needs on top of that canonical form:

- CANONICAL (the per-message JSON Schemas): objects stay open (no `additionalProperties:
  false`), since adding a field is a compatible change and a consumer holding an older schema
  must still accept a newer producer's messages; enums are their value names.
- SERVER (the OpenAPI documents, which describe one server as it answers): objects are closed,
  as the routers refuse a JSON field the message does not have, and list the proto field name
  of each field as an alias, which the proto3 JSON parsers read too; enums also take the
  numbers of their declared values, which the routers accept; a field that is not REQUIRED
  also takes `null` (proto3 JSON's spelling of its default). Other lenient forms of protobuf's
  JSON parser (numbers for 64-bit integers, digits in strings) stay undescribed so that
  producers write one form.
- PUBLIC_SERVER: SERVER without the fields marked `(qmtl.api.v1.internal_only)`, which public
  listeners clear before encoding.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor, descriptor_pb2

from qmtl_codegen import options
from qmtl_codegen.decimal_range import INT64_RANGE_PATTERN, UINT64_RANGE_PATTERN
from qmtl_codegen.descriptors import Schema
from qmtl_codegen.jsontext import dump as dump
from qmtl_codegen.wellknown_patterns import DURATION_PATTERN, TIMESTAMP_PATTERN

JsonObject = dict[str, Any]
# Turns a message or enum full name into the value of a `$ref` pointing at its definition.
RefWriter = Callable[[str], str]
NamedType = descriptor.Descriptor | descriptor.EnumDescriptor

FD = descriptor.FieldDescriptor
WELL_KNOWN = "google.protobuf."
# Map keys of 64-bit types stay unbounded digit strings; values carry the exact range.
INT64_PATTERN = r"^-?[0-9]+$"
UINT64_PATTERN = r"^[0-9]+$"
# Standard or URL-safe base64, padding optional: what protobuf's parsers accept.
BASE64_PATTERN = r"^[A-Za-z0-9+/_-]*={0,2}$"
# JSON numbers cannot hold these float values; protobuf writes them as strings.
FLOAT_SPECIALS = ["NaN", "Infinity", "-Infinity"]

_INT32 = {"minimum": -(2**31), "maximum": 2**31 - 1}
_UINT32 = {"minimum": 0, "maximum": 2**32 - 1}
# Map keys are always JSON strings; integer and bool keys are spelled in decimal / true|false.
_KEY_PATTERNS = {
    FD.TYPE_INT32: INT64_PATTERN,
    FD.TYPE_SINT32: INT64_PATTERN,
    FD.TYPE_SFIXED32: INT64_PATTERN,
    FD.TYPE_INT64: INT64_PATTERN,
    FD.TYPE_SINT64: INT64_PATTERN,
    FD.TYPE_SFIXED64: INT64_PATTERN,
    FD.TYPE_UINT32: UINT64_PATTERN,
    FD.TYPE_FIXED32: UINT64_PATTERN,
    FD.TYPE_UINT64: UINT64_PATTERN,
    FD.TYPE_FIXED64: UINT64_PATTERN,
    FD.TYPE_BOOL: "^(true|false)$",
}
# The wrappers of google/protobuf/wrappers.proto: JSON is the wrapped value, or null when unset.
WRAPPERS = frozenset(
    WELL_KNOWN + name
    for name in (
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
NULL_VALUE = WELL_KNOWN + "NullValue"


def json_name(fld: descriptor.FieldDescriptor) -> str:
    # The runtime derives the JSON name when a descriptor did not spell it out.
    name: str = fld.json_name  # type: ignore[attr-defined]
    return name


def is_map(fld: descriptor.FieldDescriptor) -> bool:
    entry = fld.message_type
    return bool(fld.is_repeated) and entry is not None and entry.GetOptions().map_entry


def is_inlined(desc: descriptor.Descriptor) -> bool:
    """Whether a message type maps to an inline schema instead of a named definition."""
    return well_known(desc) is not None


@functools.cache
def _proto3_optional(desc: descriptor.Descriptor) -> frozenset[str]:
    # The runtime descriptors do not expose proto3_optional; the descriptor proto does.
    proto = descriptor_pb2.DescriptorProto()
    desc.CopyToProto(proto)  # type: ignore[no-untyped-call]
    return frozenset(f.name for f in proto.field if f.proto3_optional)


def real_oneofs(desc: descriptor.Descriptor) -> list[descriptor.OneofDescriptor]:
    """The message's oneofs, without the one-field oneofs protoc makes for proto3 `optional`."""
    synthetic = _proto3_optional(desc)
    return [
        oneof
        for oneof in desc.oneofs
        if not (len(oneof.fields) == 1 and oneof.fields[0].name in synthetic)
    ]


def is_proto3_optional(fld: descriptor.FieldDescriptor) -> bool:
    return fld.containing_type is not None and fld.name in _proto3_optional(fld.containing_type)


def scalar(fld: descriptor.FieldDescriptor) -> JsonObject:
    """The schema of a scalar (non-message, non-enum) value."""
    kind = fld.type
    if kind in (FD.TYPE_DOUBLE, FD.TYPE_FLOAT):
        number = "double" if kind == FD.TYPE_DOUBLE else "float"
        return {
            "anyOf": [
                {"type": "number", "format": number},
                {"type": "string", "enum": list(FLOAT_SPECIALS)},
            ]
        }
    if kind in (FD.TYPE_INT64, FD.TYPE_SINT64, FD.TYPE_SFIXED64):
        return {"type": "string", "format": "int64", "pattern": INT64_RANGE_PATTERN}
    if kind in (FD.TYPE_UINT64, FD.TYPE_FIXED64):
        return {"type": "string", "format": "uint64", "pattern": UINT64_RANGE_PATTERN}
    if kind in (FD.TYPE_INT32, FD.TYPE_SINT32, FD.TYPE_SFIXED32):
        return {"type": "integer", "format": "int32", **_INT32}
    if kind in (FD.TYPE_UINT32, FD.TYPE_FIXED32):
        return {"type": "integer", "format": "uint32", **_UINT32}
    if kind == FD.TYPE_BOOL:
        return {"type": "boolean"}
    if kind == FD.TYPE_STRING:
        return {"type": "string"}
    if kind == FD.TYPE_BYTES:
        return {"type": "string", "contentEncoding": "base64", "pattern": BASE64_PATTERN}
    raise ValueError(f"{fld.full_name}: no JSON schema for field type {kind}")


def nullable(schema: JsonObject) -> JsonObject:
    """`schema` that also accepts null: `type: [x, "null"]`, or an extra anyOf branch."""
    if isinstance(schema.get("type"), str):
        return {**schema, "type": [schema["type"], "null"]}
    return {**schema, "anyOf": [*schema.get("anyOf", [schema]), {"type": "null"}]}


def wrapped_value(desc: descriptor.Descriptor) -> descriptor.FieldDescriptor:
    """The `value` field of a wrapper message."""
    found: descriptor.FieldDescriptor = desc.fields_by_name["value"]
    return found


def well_known(desc: descriptor.Descriptor) -> JsonObject | None:
    """The inline schema of a well-known type with a special JSON form; None for other types."""
    if not desc.full_name.startswith(WELL_KNOWN):
        return None
    if desc.full_name in WRAPPERS:
        return nullable(scalar(wrapped_value(desc)))
    name = desc.full_name.removeprefix(WELL_KNOWN)
    special: dict[str, JsonObject] = {
        "Timestamp": {"type": "string", "format": "date-time", "pattern": TIMESTAMP_PATTERN},
        "Duration": {"type": "string", "pattern": DURATION_PATTERN},
        "FieldMask": {"type": "string"},
        # Free-form JSON: Struct is any object, Value any JSON value, ListValue any array.
        "Struct": {"type": "object"},
        "Value": {},
        "ListValue": {"type": "array"},
        "Empty": {"type": "object", "maxProperties": 0},
        "Any": {
            "type": "object",
            "properties": {"@type": {"type": "string"}},
            "required": ["@type"],
        },
    }
    found = special.get(name)
    return dict(found) if found is not None else None


@dataclass(frozen=True, slots=True)
class Style:
    """What a set of schemas describes beyond the canonical form (see the module docstring)."""

    # Objects refuse undeclared properties and declare each field's proto-name alias.
    closed: bool = False
    # Enums take the numbers of their declared values besides their names.
    enum_numbers: bool = False
    # Fields marked internal_only are left out.
    public: bool = False
    # 64-bit integers may also be JSON numbers in range, which proto3 JSON parsers (the
    # server's json_format) accept besides the decimal strings every writer sends.
    int64_numbers: bool = False


CANONICAL = Style()
SERVER = Style(closed=True, enum_numbers=True, int64_numbers=True)
PUBLIC_SERVER = Style(closed=True, enum_numbers=True, public=True, int64_numbers=True)


class JsonMapping:
    """Builds the schema objects of messages, enums and fields, with `ref` for named types."""

    def __init__(self, schema: Schema, ref: RefWriter, style: Style = CANONICAL) -> None:
        self.schema = schema
        self.ref = ref
        self.style = style

    def visible(self, fld: descriptor.FieldDescriptor) -> bool:
        """Whether `fld` is part of this style's schemas."""
        return not (self.style.public and options.internal_only(self.schema.pool, fld))

    def fields(self, desc: descriptor.Descriptor) -> list[descriptor.FieldDescriptor]:
        return [f for f in desc.fields if self.visible(f)]

    def value(self, fld: descriptor.FieldDescriptor) -> JsonObject:
        """The schema of one value of `fld`: an element if repeated, without documentation."""
        if fld.message_type is not None:
            inline = well_known(fld.message_type)
            return inline if inline is not None else {"$ref": self.ref(fld.message_type.full_name)}
        if fld.enum_type is not None:
            if fld.enum_type.full_name == NULL_VALUE:
                return {"type": "null"}
            return {"$ref": self.ref(fld.enum_type.full_name)}
        value = scalar(fld)
        if self.style.int64_numbers and fld.type in SIXTY_FOUR_BIT:
            value = {"anyOf": [value, _number_form(fld.type)]}
        return value

    def shape(self, fld: descriptor.FieldDescriptor) -> JsonObject:
        """The schema of the whole field: a map, an array or a single value."""
        if is_map(fld):
            key, val = (fld.message_type.fields_by_name[n] for n in ("key", "value"))
            schema: JsonObject = {"type": "object", "additionalProperties": self.value(val)}
            if key.type in _KEY_PATTERNS:
                schema["propertyNames"] = {"pattern": _KEY_PATTERNS[key.type]}
            return schema
        if fld.is_repeated:
            return {"type": "array", "items": self.value(fld)}
        return self.value(fld)

    def field(self, fld: descriptor.FieldDescriptor) -> JsonObject:
        """A property of a message schema: the field's shape with its documentation."""
        schema = self.shape(fld)
        if self.style.closed and not self.required(fld) and not _admits_null(schema):
            # proto3 JSON: `null` is the field's default, which the routers read like an
            # absent field; only a REQUIRED field's null is refused (422, as when absent).
            schema = {"anyOf": [schema, {"type": "null"}]}
        notes = [self.schema.comment(fld.full_name)]
        oneof = fld.containing_oneof
        if oneof is not None and oneof in real_oneofs(fld.containing_type):
            notes.append(f"Member of oneof `{oneof.name}`: at most one of its fields is set.")
        _document(schema, "\n\n".join(n for n in notes if n), fld.GetOptions().deprecated)
        behaviors = options.field_behaviors(self.schema.pool, fld)
        if "OUTPUT_ONLY" in behaviors:
            schema["readOnly"] = True
        if "INPUT_ONLY" in behaviors:
            schema["writeOnly"] = True
        if "REQUIRED" in behaviors and not fld.has_presence:
            schema.update(not_default(fld))
        return schema

    def required(self, fld: descriptor.FieldDescriptor) -> bool:
        return "REQUIRED" in options.field_behaviors(self.schema.pool, fld)

    def message(self, desc: descriptor.Descriptor) -> JsonObject:
        """The definition of a message type that has no special JSON form."""
        schema: JsonObject = {"type": "object"}
        _document(schema, self.schema.comment(desc.full_name), desc.GetOptions().deprecated)
        fields = self.fields(desc)
        schema["properties"] = {json_name(f): self.field(f) for f in fields}
        aliased = [f for f in fields if f.name != json_name(f)] if self.style.closed else []
        for fld in aliased:
            schema["properties"][fld.name] = self.alias(desc, fld)
        if self.style.closed:
            schema["additionalProperties"] = False
        # A REQUIRED field with an alias is there under either spelling (the parsers read
        # both); the others are listed under `required`.
        required = [f for f in fields if self.required(f)]
        either = [f for f in required if f in aliased]
        if len(either) < len(required):
            schema["required"] = [json_name(f) for f in required if f not in aliased]
        choices = [o for o in real_oneofs(desc) if len(o.fields) > 1]
        choices = [o for o in choices if all(self.visible(f) for f in o.fields)]
        if choices:
            schema["x-oneof"] = {o.name: [json_name(f) for f in o.fields] for o in choices}
            schema["allOf"] = [_at_most_one(o) for o in choices]
        if aliased:
            schema.setdefault("allOf", []).append(_one_spelling(aliased))
        for fld in either:
            spellings = [{"required": [name]} for name in (json_name(fld), fld.name)]
            text = f"`{json_name(fld)}` is REQUIRED, under its JSON name or its proto name."
            schema.setdefault("allOf", []).append({"description": text, "anyOf": spellings})
        return schema

    def alias(self, desc: descriptor.Descriptor, fld: descriptor.FieldDescriptor) -> JsonObject:
        """The property of a field's proto name: the same value as its JSON name's property."""
        return {
            "$ref": f"{self.ref(desc.full_name)}/properties/{json_name(fld)}",
            "description": f"Alias of `{json_name(fld)}` (the proto field name), which parsers "
            "also read; responses always use the JSON name.",
        }

    def enum(self, desc: descriptor.EnumDescriptor) -> JsonObject:
        """The definition of an enum: its value names, each documented in the description."""
        lines = [self.schema.comment(desc.full_name)]
        for value in desc.values:
            text = " ".join(self.schema.comment(f"{desc.full_name}.{value.name}").split())
            mark = " (deprecated)" if value.GetOptions().deprecated else ""
            lines.append(f"- `{value.name}`{mark}: {text}" if text else f"- `{value.name}`{mark}")
        schema: JsonObject = {"type": "string"}
        if self.style.enum_numbers:
            schema["type"] = ["string", "integer"]
            lines.append("Requests may also give a declared value's number; responses use names.")
        _document(schema, "\n".join(line for line in lines if line), desc.GetOptions().deprecated)
        schema["enum"] = [value.name for value in desc.values]
        if self.style.enum_numbers:
            schema["enum"] += sorted({value.number for value in desc.values})
        deprecated = [v.name for v in desc.values if v.GetOptions().deprecated]
        if deprecated:
            schema["x-enum-deprecated"] = deprecated
        return schema

    def definition(self, named: NamedType) -> JsonObject:
        if isinstance(named, descriptor.EnumDescriptor):
            return self.enum(named)
        return self.message(named)


def _admits_null(schema: JsonObject) -> bool:
    """Whether a value schema already takes `null` (wrappers, Value, NullValue)."""
    kind = schema.get("type", [])
    branches = schema.get("anyOf", [])
    listed = kind == "null" or (isinstance(kind, list) and "null" in kind)
    return not schema or listed or any(map(_admits_null, branches))


def _document(schema: JsonObject, description: str, deprecated: bool) -> None:
    if description:
        schema["description"] = description
    if deprecated:
        schema["deprecated"] = True


def not_default(fld: descriptor.FieldDescriptor) -> JsonObject:
    """What a REQUIRED field without presence satisfies: it is not its default value.

    Without presence the default is indistinguishable from "not sent", so the routers refuse it
    (422 E_VALIDATION), as they refuse a missing field.
    """
    if is_map(fld):
        return {"minProperties": 1}
    if fld.is_repeated:
        return {"minItems": 1}
    if fld.type in (FD.TYPE_STRING, FD.TYPE_BYTES):
        return {"minLength": 1}
    if fld.type == FD.TYPE_BOOL:
        return {"const": True}
    if fld.enum_type is not None:
        zero = fld.enum_type.values_by_number[0].name
        return {"not": {"enum": [zero, 0]}}
    if fld.type in SIXTY_FOUR_BIT:
        # A string of zeros, or (where numbers are taken) the number 0.
        return {"not": {"anyOf": [{"type": "string", "pattern": r"^-?0+$"}, {"const": 0}]}}
    return {"not": {"const": 0}}


# 64-bit integers: strings in proto3 JSON (numbers accepted on input).
SIXTY_FOUR_BIT = frozenset(
    {FD.TYPE_INT64, FD.TYPE_SINT64, FD.TYPE_SFIXED64, FD.TYPE_UINT64, FD.TYPE_FIXED64}
)


def _number_form(kind: int) -> JsonObject:
    """A 64-bit integer as a JSON number, within the type's range.

    No `format` here: `int64`/`uint64` name the string form (tools map them to strings).
    """
    if kind in (FD.TYPE_UINT64, FD.TYPE_FIXED64):
        return {"type": "integer", "minimum": 0, "maximum": 2**64 - 1}
    return {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1}


def _one_spelling(aliased: list[descriptor.FieldDescriptor]) -> JsonObject:
    """No field given under both its JSON name and its proto name (parsers refuse that)."""
    return {
        "description": "A field is given under its JSON name or its proto name, not both.",
        "not": {"anyOf": [{"required": [json_name(f), f.name]} for f in aliased]},
    }


def _at_most_one(oneof: descriptor.OneofDescriptor) -> JsonObject:
    """A constraint that no two members of a oneof are present; none present is valid."""
    names = [json_name(f) for f in oneof.fields]
    pairs = [[a, b] for i, a in enumerate(names) for b in names[i + 1 :]]
    return {
        "description": f"At most one member of oneof `{oneof.name}` is set.",
        "not": {"anyOf": [{"required": pair} for pair in pairs]},
    }


FieldFilter = Callable[[descriptor.FieldDescriptor], bool]


def named_types(
    roots: Iterable[NamedType], visible: FieldFilter = lambda _: True
) -> dict[str, NamedType]:
    """Every message and enum that needs a definition: `roots` and all they reference.

    Only fields for which `visible` holds are followed. Well-known types with a special JSON
    form are inlined and so not listed. Sorted by name.
    """
    found: dict[str, NamedType] = {}
    pending = list(roots)
    while pending:
        named = pending.pop()
        if named.full_name in found:
            continue
        found[named.full_name] = named
        if isinstance(named, descriptor.Descriptor):
            pending.extend(_references(named, visible))
    return dict(sorted(found.items()))


def _references(desc: descriptor.Descriptor, visible: FieldFilter) -> Iterable[NamedType]:
    for fld in filter(visible, desc.fields):
        target = fld.message_type.fields_by_name["value"] if is_map(fld) else fld
        if target.message_type is not None and not is_inlined(target.message_type):
            yield target.message_type
        if target.enum_type is not None and target.enum_type.full_name != NULL_VALUE:
            yield target.enum_type
