"""The proto3 JSON codec modules: `<file>_json.py` next to the messages of every .proto.

Per message, two functions the runtime codec (qmtl.runtime.codec, through the registry in
qmtl.runtime.json_codec) uses for every JSON body instead of json_format:

- `to_obj_<Name>(msg, emit_defaults)`: the JSON value json_format.MessageToDict would build
  (json names, int64 as strings, enums by name, bytes in base64, NaN/Infinity as strings,
  map keys as strings, -0.0 kept, well-known types in their own form), which orjson prints;
- `from_obj_<Name>(obj, msg, ignore_unknown, depth)`: fills `msg` from a parsed JSON object.
  It takes only input whose meaning is plain and raises `Fallback` on anything else, which then
  goes to the reference parser (json_format and the runtime's shape checks): both accept the
  same inputs and build the same messages. It reads the fields by JSON name and counts the keys
  it read; only when that count is not the object's size (a key that is no field's JSON name,
  or a null) does `other_keys` judge the object, so the usual object costs no key scan.

Field access is straight-line code per field (attributes, and HasField/WhichOneof through the
unbound upb methods), no descriptor walk at run time; small messages in a repeated field are
printed inline (_repeated_messages). Those reads, not building the dicts nor orjson, are most
of the time spent: on bench/codec's DAG, reading every field the encode reads and building
nothing (its "field-read floor") already takes over half of the encode. Nested names are
joined with `_` (`Outer.Inner` -> `to_obj_Outer_Inner`); types of other files are reached
through their own `_json` modules.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import jinja2
from google.protobuf import descriptor
from google.protobuf.compiler import plugin_pb2

from qmtl_codegen import contracts_version
from qmtl_codegen.descriptors import Schema
from qmtl_codegen.jsonmapping import SIXTY_FOUR_BIT, WRAPPERS
from qmtl_codegen.plugin import GeneratorError, OutputFile, header_line, run
from qmtl_codegen.templating import environment

TEMPLATE = "json_codec.py.j2"
KIND = "json codec"
# The runtime contract (qmtl.runtime.gen.CONTRACT_VERSION) the generated modules are written for.
CONTRACT_VERSION = 1
SUFFIX = "_json"

FD = descriptor.FieldDescriptor
_INT32 = frozenset(
    {FD.TYPE_INT32, FD.TYPE_UINT32, FD.TYPE_SINT32, FD.TYPE_FIXED32, FD.TYPE_SFIXED32}
)
# Well-known types: (runtime printer, runtime reader) in qmtl.runtime.json_codec.
_WELL_KNOWN = {
    "google.protobuf.Timestamp": ("text_form", "timestamp_in"),
    "google.protobuf.Duration": ("text_form", "duration_in"),
    "google.protobuf.FieldMask": ("text_form", "field_mask_in"),
    "google.protobuf.Struct": ("struct", "struct_in"),
    "google.protobuf.Value": ("value", "value_in"),
    "google.protobuf.ListValue": ("list_value", "list_value_in"),
    "google.protobuf.Empty": ("well_known", "empty_in"),
    "google.protobuf.Any": ("well_known", "fallback_in"),
    **{name: ("well_known", "wrapper_in") for name in WRAPPERS},
}
RT = "_qmtl_json"


@functools.cache
def template() -> jinja2.Template:
    return environment().get_template(TEMPLATE)


def module_path(proto_file: str) -> str:
    """qmtl/dag/v1/dag.proto -> qmtl/dag/v1/dag_json.py (qmtl.runtime.json_codec imports it)."""
    return proto_file.removesuffix(".proto") + SUFFIX + ".py"


def _local_name(desc: descriptor.Descriptor) -> str:
    package = desc.file.package
    name = str(desc.full_name[len(package) + 1 :] if package else desc.full_name)
    return name.replace(".", "_")


def _is_map(fd: descriptor.FieldDescriptor) -> bool:
    return fd.type == FD.TYPE_MESSAGE and bool(fd.message_type.GetOptions().map_entry)


def _messages(
    container: descriptor.FileDescriptor | descriptor.Descriptor,
) -> Iterator[descriptor.Descriptor]:
    types = (
        container.message_types_by_name.values()
        if isinstance(container, descriptor.FileDescriptor)
        else container.nested_types
    )
    for desc in types:
        if desc.GetOptions().map_entry:
            continue
        yield desc
        yield from _messages(desc)


@dataclass
class _File:
    """What one module needs besides its functions: imports and enum tables."""

    proto: str
    imports: dict[str, str] = field(default_factory=dict)  # module -> alias
    enums: dict[str, int] = field(default_factory=dict)  # enum full name -> table index
    enum_tables: list[str] = field(default_factory=list)

    def ref(self, desc: descriptor.Descriptor, kind: str) -> str:
        """The function `kind` (to_obj / from_obj) of message `desc`, from this module."""
        name = f"{kind}_{_local_name(desc)}"
        if desc.file.name == self.proto:
            return name
        module = module_path(desc.file.name).removesuffix(".py").replace("/", ".")
        alias = self.imports.setdefault(module, f"_qmtl_j_{len(self.imports)}")
        return f"{alias}.{name}"

    def enum(self, enum: descriptor.EnumDescriptor) -> int:
        index = self.enums.get(enum.full_name)
        if index is None:
            index = self.enums[enum.full_name] = len(self.enums)
            names = ", ".join(f'"{v.name}": {v.number}' for v in enum.values)
            numbers = sorted({v.number for v in enum.values})
            printed = ", ".join(f'{n}: "{enum.values_by_number[n].name}"' for n in numbers)
            self.enum_tables.append(
                f"# {enum.full_name}\n"
                f"_EN_{index} = {{{names}}}\n"
                f"_EV_{index} = frozenset({{{', '.join(map(str, numbers))}}})\n"
                f"_ES_{index} = {{{printed}}}"
            )
        return index


def _print_expr(fd: descriptor.FieldDescriptor, x: str, ctx: _File) -> str:
    """The JSON value of one (non-repeated) value `x` of field `fd`."""
    kind = fd.type
    if kind == FD.TYPE_MESSAGE:
        wk = _WELL_KNOWN.get(fd.message_type.full_name)
        if wk is not None:
            return f"{RT}.{wk[0]}({x}, d)"
        return f"{ctx.ref(fd.message_type, 'to_obj')}({x}, d)"
    if kind == FD.TYPE_ENUM:
        if fd.enum_type.full_name == "google.protobuf.NullValue":
            return "None"
        index = ctx.enum(fd.enum_type)
        return f"_ES_{index}.get({x}, {x})"
    if kind in SIXTY_FOUR_BIT:
        return f"str({x})"
    if kind == FD.TYPE_DOUBLE:
        return f"({x} if {x} - {x} == 0.0 else {RT}.nonfinite({x}))"
    if kind == FD.TYPE_FLOAT:
        return f"{RT}.float32({x})"
    if kind == FD.TYPE_BYTES:
        return f"{RT}.b64({x})"
    return x  # string, bool, 32-bit integers


def _read_expr(fd: descriptor.FieldDescriptor, x: str, ctx: _File) -> str:
    """The Python value of a scalar field `fd` from JSON value `x` (Fallback when not plain)."""
    kind = fd.type
    if kind == FD.TYPE_ENUM:
        index = ctx.enum(fd.enum_type)
        names = f"_EN_{index}"
        return f"({names}[{x}] if {x} in {names} else {RT}.enum({x}, {names}, _EV_{index}))"
    if kind in SIXTY_FOUR_BIT:
        # proto3 JSON's own spelling of a 64-bit integer: a string of digits.
        return f"(int({x}) if type({x}) is str and {x}.isdigit() else {RT}.integer({x}))"
    if kind in _INT32:
        return f"({x} if type({x}) is int else {RT}.integer({x}))"
    if kind == FD.TYPE_DOUBLE:
        return f"{RT}.double({x})"
    if kind == FD.TYPE_FLOAT:
        return f"{RT}.single({x})"
    if kind == FD.TYPE_BYTES:
        return f"{RT}.bytes_({x})"
    if kind == FD.TYPE_BOOL:
        return f"{RT}.boolean({x})"
    return f"{RT}.string({x})"


def _key_read(fd: descriptor.FieldDescriptor, x: str) -> str:
    if fd.type == FD.TYPE_BOOL:
        return f"{RT}.bool_key({x})"
    if fd.type == FD.TYPE_STRING:
        return x
    return f"{RT}.int_key({x})"


def _key_print(fd: descriptor.FieldDescriptor, x: str) -> str:
    if fd.type == FD.TYPE_BOOL:
        return f'("true" if {x} else "false")'
    if fd.type == FD.TYPE_STRING:
        return x
    return f"str({x})"


def _message_reader(desc: descriptor.Descriptor, ctx: _File) -> str:
    wk = _WELL_KNOWN.get(desc.full_name)
    return f"{RT}.{wk[1]}" if wk is not None else ctx.ref(desc, "from_obj")


# The elements of a repeated field whose type has at most this many fields, all implicit-presence
# scalars printed by one expression, are printed inline in the list comprehension: a function
# call per element costs about as much as reading one of its fields.
_INLINE_FIELDS = 4
_INLINE_KINDS = frozenset({FD.TYPE_STRING, FD.TYPE_BOOL, FD.TYPE_BYTES, *_INT32, *SIXTY_FOUR_BIT})


def _inline_fields(desc: descriptor.Descriptor, optional: set[str]) -> list[Any] | None:
    """The fields of `desc` (FieldDescriptors, whose stubs lack json_name) when its elements
    are printed inline, else None."""
    fields: list[Any] = list(desc.fields)
    if desc.full_name in _WELL_KNOWN or not 0 < len(fields) <= _INLINE_FIELDS:
        return None
    for fd in fields:
        if (
            fd.is_repeated
            or fd.type not in _INLINE_KINDS
            or fd.containing_oneof is not None
            or fd.full_name in optional
        ):
            return None
    return fields


def _repeated_messages(fd: descriptor.FieldDescriptor, ctx: _File, optional: set[str]) -> str:
    """The JSON list of repeated message field `fd`, held in `v`."""
    element = _print_expr(fd, "x", ctx)
    fields = _inline_fields(fd.message_type, optional)
    if fields is None:
        return f"[{element} for x in v]"
    # An element with every field set (the usual one) prints the same with or without
    # emit_defaults: its dict at once. Any other goes to its function.
    pairs = ", ".join(
        f"{json.dumps(inner.json_name)}: {_print_expr(inner, f'p{index}', ctx)}"
        for index, inner in enumerate(fields)
    )
    tests = " and ".join(f"(p{index} := x.{inner.name})" for index, inner in enumerate(fields))
    return f"[{{{pairs}}} if {tests} else {element} for x in v]"


def _to_obj(desc: descriptor.Descriptor, ctx: _File, optional: set[str]) -> str:
    lines = [
        f"def to_obj_{_local_name(desc)}(m: Any, d: bool) -> dict[str, Any]:",
        "    js: dict[str, Any] = {}",
    ]
    done: set[str] = set()
    for fd in desc.fields:
        if fd.name in done:
            continue
        key = json.dumps(fd.json_name)
        oneof = fd.containing_oneof
        if oneof is not None and fd.full_name not in optional:
            lines.append(f'    w = _which(m, "{oneof.name}")')
            for index, member in enumerate(oneof.fields):
                done.add(member.name)
                member_key = json.dumps(member.json_name)
                test = "if" if index == 0 else "elif"
                lines.append(f'    {test} w == "{member.name}":')
                lines.append(
                    f"        js[{member_key}] = {_print_expr(member, f'm.{member.name}', ctx)}"
                )
            continue
        attr = f"m.{fd.name}"
        if _is_map(fd):
            key_fd = fd.message_type.fields_by_name["key"]
            value_fd = fd.message_type.fields_by_name["value"]
            entry = f"{_key_print(key_fd, 'k')}: {_print_expr(value_fd, 'v[k]', ctx)}"
            lines += [
                f"    v = {attr}",
                "    if v or d:",
                f"        js[{key}] = {{{entry} for k in v}}",
            ]
        elif fd.is_repeated:
            if fd.type == FD.TYPE_MESSAGE:
                value = _repeated_messages(fd, ctx, optional)
            else:
                element = _print_expr(fd, "x", ctx)
                value = "v[:]" if element == "x" else f"[{element} for x in v]"
            lines += [f"    v = {attr}", "    if v or d:", f"        js[{key}] = {value}"]
        elif fd.type == FD.TYPE_MESSAGE or fd.full_name in optional:
            lines += [
                f'    if _has(m, "{fd.name}"):',
                f"        js[{key}] = {_print_expr(fd, attr, ctx)}",
            ]
        else:
            present = f"{RT}.is_set_float(v)" if fd.type in (FD.TYPE_DOUBLE, FD.TYPE_FLOAT) else "v"
            lines += [
                f"    v = {attr}",
                f"    if {present} or d:",
                f"        js[{key}] = {_print_expr(fd, 'v', ctx)}",
            ]
    lines.append("    return js")
    return "\n".join(lines)


def _from_obj(desc: descriptor.Descriptor, ctx: _File, optional: set[str]) -> tuple[str, str]:
    name = _local_name(desc)
    # JSON names only: a field given by its proto name (json_format takes both, and refuses
    # both at once) goes to the reference parser, so one key is one field here.
    json_names = [fd.json_name for fd in desc.fields]
    proto_names = [fd.name for fd in desc.fields if fd.name != fd.json_name]
    tables = [f"_J_{name} = frozenset({{{', '.join(json.dumps(key) for key in json_names)}}})"]
    tables.append(f"_P_{name} = frozenset({{{', '.join(json.dumps(key) for key in proto_names)}}})")
    lines = [
        f"def from_obj_{name}(o: Any, m: Any, iu: bool, depth: int) -> None:",
        "    if type(o) is not dict or depth >= _DEPTH:",
        f"        raise {RT}.Fallback",
    ]
    if not set(proto_names).isdisjoint(json_names):
        # A proto name that is also another field's JSON name: check_ignored decides on it.
        lines += ["    if iu:", f"        {RT}.check_ignored(o, _J_{name}, _P_{name})"]
    if desc.fields:
        # n counts the keys read (a field's JSON name, not null): len(o) when there is no
        # other key and no null, which other_keys then judges after the fields are set.
        lines += ["    get = o.get", "    n = 0"]
    for fd in desc.fields:
        body: list[str] = []
        oneof = fd.containing_oneof
        if oneof is not None and fd.full_name not in optional and len(oneof.fields) > 1:
            # A second member of the oneof: json_format refuses it.
            body += [f'if _which(m, "{oneof.name}") is not None:', f"    raise {RT}.Fallback"]
        attr = f"m.{fd.name}"
        if _is_map(fd):
            key_fd = fd.message_type.fields_by_name["key"]
            value_fd = fd.message_type.fields_by_name["value"]
            body += [
                "if type(v) is not dict:",
                f"    raise {RT}.Fallback",
                f"t = {attr}",
                "for mk, mv in v.items():",
            ]
            if value_fd.type == FD.TYPE_MESSAGE:
                body += [
                    "    if mv is None:",
                    f"        raise {RT}.Fallback",
                    f"    s = t[{_key_read(key_fd, 'mk')}]",
                    f"    {_message_reader(value_fd.message_type, ctx)}(mv, s, iu, depth + 1)",
                ]
            else:
                body.append(f"    t[{_key_read(key_fd, 'mk')}] = {_read_expr(value_fd, 'mv', ctx)}")
        elif fd.is_repeated:
            body += ["if type(v) is not list:", f"    raise {RT}.Fallback"]
            if fd.type == FD.TYPE_MESSAGE:
                body += [
                    f"add = {attr}.add",
                    "for x in v:",
                    f"    {_message_reader(fd.message_type, ctx)}(x, add(), iu, depth + 1)",
                ]
            elif fd.type == FD.TYPE_STRING:
                # upb refuses (TypeError) any element that is not a str: no check needed.
                body.append(f"{attr}.extend(v)")
            else:
                body.append(f"{attr}.extend([{_read_expr(fd, 'x', ctx)} for x in v])")
        elif fd.type == FD.TYPE_MESSAGE:
            body += [
                f"s = {attr}",
                "s.SetInParent()",
                f"{_message_reader(fd.message_type, ctx)}(v, s, iu, depth + 1)",
            ]
        elif fd.type == FD.TYPE_STRING:
            body.append(f"{attr} = v  # upb refuses anything but a str (TypeError)")
        else:
            body.append(f"{attr} = {_read_expr(fd, 'v', ctx)}")
        lines += [
            f"    v = get({json.dumps(fd.json_name)})",
            "    if v is not None:",
            "        n += 1",
        ]
        lines += [f"        {line}" for line in body]
    count = "n != len(o)" if desc.fields else "o"
    lines += [f"    if {count}:", f"        {RT}.other_keys(o, iu, _J_{name}, _P_{name})"]
    return "\n".join(tables), "\n".join(lines)


def _optional_fields(schema: Schema) -> set[str]:
    """Full names of proto3 `optional` fields (their synthetic oneof is not a real one)."""
    found: set[str] = set()

    def walk(prefix: str, messages: object) -> None:
        for msg in messages:  # type: ignore[attr-defined]
            full = f"{prefix}.{msg.name}" if prefix else msg.name
            for fd in msg.field:
                if fd.proto3_optional:
                    found.add(f"{full}.{fd.name}")
            walk(full, msg.nested_type)

    for proto in schema.protos.values():
        walk(proto.package, proto.message_type)
    return found


def render_file(file: descriptor.FileDescriptor, optional: set[str]) -> str | None:
    messages = list(_messages(file))
    if not messages:
        return None
    ctx = _File(proto=file.name)
    names: dict[str, str] = {}
    functions: list[str] = []
    tables: list[str] = []
    for desc in messages:
        local = _local_name(desc)
        clash = names.setdefault(local, desc.full_name)
        if clash != desc.full_name:
            raise GeneratorError(
                f"{file.name}: messages {clash} and {desc.full_name} both map to the JSON codec "
                f"name {local!r}; rename one"
            )
        functions.append(_to_obj(desc, ctx, optional))
        table, reader = _from_obj(desc, ctx, optional)
        tables.append(table)
        functions.append(reader)
    return template().render(
        header=header_line(KIND, file.name),
        source=file.name,
        contract=CONTRACT_VERSION,
        contracts=contracts_version.current(),
        imports=sorted(ctx.imports.items()),
        enum_tables=ctx.enum_tables,
        key_tables=tables,
        functions=functions,
        messages=[(desc.full_name, _local_name(desc)) for desc in messages],
    )


def generate(request: plugin_pb2.CodeGeneratorRequest) -> Iterator[OutputFile]:
    schema = Schema.from_request(request)
    optional = _optional_fields(schema)
    for file in schema.targets:
        content = render_file(file, optional)
        if content is not None:
            yield OutputFile(module_path(file.name), content)


def main() -> None:
    run(generate)


if __name__ == "__main__":
    main()
