"""The schema reference: one Markdown page documenting every package from the schema comments.

Run with `strategy: all`, so that one request holds every target file and the page can link any
message or enum it mentions. The page lists, per package, the services (each RPC's HTTP route,
access class and scopes), the messages with a table of their fields, the enums with their values
and the custom options the package declares. Everything is ordered by package, then file name,
then declaration order, so the output depends on the schemas alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from google.protobuf import descriptor, descriptor_pb2
from google.protobuf.compiler import plugin_pb2

from qmtl_codegen import markdown, options
from qmtl_codegen.api import pathtemplate
from qmtl_codegen.descriptors import Schema, first_sentence
from qmtl_codegen.plugin import NoOptions, OutputFile, header_line, parse_options, run
from qmtl_codegen.templating import render

OUTPUT_NAME = "reference.md"
TEMPLATE = "reference.md.j2"

FD = descriptor.FieldDescriptor
_SCALARS = {
    FD.TYPE_DOUBLE: "double",
    FD.TYPE_FLOAT: "float",
    FD.TYPE_INT64: "int64",
    FD.TYPE_UINT64: "uint64",
    FD.TYPE_INT32: "int32",
    FD.TYPE_FIXED64: "fixed64",
    FD.TYPE_FIXED32: "fixed32",
    FD.TYPE_BOOL: "bool",
    FD.TYPE_STRING: "string",
    FD.TYPE_BYTES: "bytes",
    FD.TYPE_UINT32: "uint32",
    FD.TYPE_SFIXED32: "sfixed32",
    FD.TYPE_SFIXED64: "sfixed64",
    FD.TYPE_SINT32: "sint32",
    FD.TYPE_SINT64: "sint64",
}


class _Deprecatable(Protocol):
    deprecated: bool


class _Documented(Protocol):
    # Every descriptor's options message has the standard `deprecated` flag.
    def GetOptions(self) -> _Deprecatable: ...


@dataclass(frozen=True, slots=True)
class FieldDoc:
    name: str
    json_name: str
    number: int
    type: str
    description: str


@dataclass(frozen=True, slots=True)
class MessageDoc:
    anchor: str
    title: str
    description: str
    fields: tuple[FieldDoc, ...]
    # (name, description) of each real oneof; proto3 `optional` wrappers are not listed.
    oneofs: tuple[tuple[str, str], ...]
    reserved: str


@dataclass(frozen=True, slots=True)
class EnumValueDoc:
    name: str
    number: int
    description: str
    error: options.ErrorInfo | None


@dataclass(frozen=True, slots=True)
class EnumDoc:
    anchor: str
    title: str
    description: str
    values: tuple[EnumValueDoc, ...]
    # Error-code catalogues get columns for the error_info option of their values.
    has_error_info: bool
    reserved: str


@dataclass(frozen=True, slots=True)
class RpcDoc:
    anchor: str
    name: str
    summary: str
    description: str
    request: str
    response: str
    # `VERB /path` of each binding, for the service table.
    http: tuple[str, ...]
    # The same with what travels in the body, for the rpc's own section.
    routes: tuple[str, ...]
    path_parameters: str
    access: str
    scopes: str


@dataclass(frozen=True, slots=True)
class ServiceDoc:
    anchor: str
    title: str
    description: str
    rpcs: tuple[RpcDoc, ...]


@dataclass(frozen=True, slots=True)
class ExtensionDoc:
    name: str
    number: int
    extends: str
    type: str
    description: str


@dataclass(frozen=True, slots=True)
class FileDoc:
    name: str
    description: str


@dataclass(frozen=True, slots=True)
class PackageDoc:
    name: str
    files: tuple[FileDoc, ...]
    services: tuple[ServiceDoc, ...]
    messages: tuple[MessageDoc, ...]
    enums: tuple[EnumDoc, ...]
    extensions: tuple[ExtensionDoc, ...]


class _Builder:
    """Turns the descriptors of one package into the documents the template renders."""

    def __init__(self, schema: Schema, package: str, linkable: frozenset[str]) -> None:
        self.schema = schema
        self.package = package
        self.linkable = linkable

    def name_in_package(self, full_name: str) -> str:
        prefix = f"{self.package}."
        return full_name.removeprefix(prefix) if full_name.startswith(prefix) else full_name

    def type_ref(self, full_name: str) -> str:
        text = markdown.code(self.name_in_package(full_name))
        return markdown.link(text, full_name) if full_name in self.linkable else text

    def value_type(self, fld: descriptor.FieldDescriptor) -> str:
        if fld.message_type is not None:
            return self.type_ref(fld.message_type.full_name)
        if fld.enum_type is not None:
            return self.type_ref(fld.enum_type.full_name)
        return markdown.code(_SCALARS[fld.type])

    def field_type(self, fld: descriptor.FieldDescriptor, proto3_optional: bool) -> str:
        entry = fld.message_type
        if fld.is_repeated and entry is not None and entry.GetOptions().map_entry:
            key, value = entry.fields_by_name["key"], entry.fields_by_name["value"]
            return f"map&lt;{self.value_type(key)}, {self.value_type(value)}&gt;"
        if fld.is_repeated:
            return f"repeated {self.value_type(fld)}"
        return f"optional {self.value_type(fld)}" if proto3_optional else self.value_type(fld)

    def notes(self, element: _Documented, extra: Iterable[str] = ()) -> list[str]:
        found = ["**Deprecated.**"] if element.GetOptions().deprecated else []
        return [*found, *extra]

    def description(self, full_name: str, notes: list[str], *, in_cell: bool) -> str:
        render_text = markdown.cell if in_cell else markdown.block
        comment = render_text(self.schema.comment(full_name))
        return " ".join([*notes, comment] if comment else notes)

    def field(
        self, fld: descriptor.FieldDescriptor, proto: descriptor_pb2.FieldDescriptorProto
    ) -> FieldDoc:
        extra = [
            f"**{behavior.capitalize().replace('_', ' ')}.**"
            for behavior in options.field_behaviors(self.schema.pool, fld)
        ]
        oneof = fld.containing_oneof
        if oneof is not None and not proto.proto3_optional:
            extra.append(f"One of {markdown.code(oneof.name)}.")
        return FieldDoc(
            name=fld.name,
            # The runtime derives the JSON name when a descriptor did not spell it out.
            json_name=fld.json_name,  # type: ignore[attr-defined]
            number=fld.number,
            type=self.field_type(fld, proto.proto3_optional),
            description=self.description(fld.full_name, self.notes(fld, extra), in_cell=True),
        )

    def message(self, desc: descriptor.Descriptor) -> MessageDoc:
        proto = descriptor_pb2.DescriptorProto()
        desc.CopyToProto(proto)  # type: ignore[no-untyped-call]
        ranges = [(r.start, r.end - 1) for r in proto.reserved_range]
        # protoc wraps each proto3 `optional` field in a oneof of its own: not a real choice.
        synthetic = {f.oneof_index for f in proto.field if f.proto3_optional}
        return MessageDoc(
            anchor=desc.full_name,
            title=self.name_in_package(desc.full_name),
            description=self.description(desc.full_name, self.notes(desc), in_cell=False),
            fields=tuple(self.field(f, p) for f, p in zip(desc.fields, proto.field, strict=True)),
            oneofs=tuple(
                (oneof.name, self.description(oneof.full_name, [], in_cell=True))
                for index, oneof in enumerate(desc.oneofs)
                if index not in synthetic
            ),
            reserved=_reserved(ranges, proto.reserved_name),
        )

    def enum(self, desc: descriptor.EnumDescriptor) -> EnumDoc:
        proto = descriptor_pb2.EnumDescriptorProto()
        desc.CopyToProto(proto)  # type: ignore[no-untyped-call]
        # Enum reserved ranges include their end, unlike message ones.
        ranges = [(r.start, r.end) for r in proto.reserved_range]
        values = tuple(
            EnumValueDoc(
                name=value.name,
                number=value.number,
                description=self.description(
                    f"{desc.full_name}.{value.name}", self.notes(value), in_cell=True
                ),
                error=options.error_info(self.schema.pool, value),
            )
            for value in desc.values
        )
        return EnumDoc(
            anchor=desc.full_name,
            title=self.name_in_package(desc.full_name),
            description=self.description(desc.full_name, self.notes(desc), in_cell=False),
            values=values,
            has_error_info=any(value.error is not None for value in values),
            reserved=_reserved(ranges, proto.reserved_name),
        )

    def rpc(self, method: descriptor.MethodDescriptor) -> RpcDoc:
        pool = self.schema.pool
        rule = options.http_rule(pool, method)
        access = options.require_access(pool, method)
        bindings = rule.bindings if rule is not None else ()
        # The reference documents what the schema declares (streaming rpcs too), but no path
        # the routers would refuse: the path rules are api.pathtemplate's, as everywhere.
        paths = [pathtemplate.parse(b.path, method.full_name) for b in bindings]
        for path in paths:
            pathtemplate.require_servable(path, method.full_name)
        parameters = dict.fromkeys(p for path in paths for p in path.fields)
        scopes = ", ".join(markdown.code(scope) for scope in access.scopes)
        comment = self.schema.comment(method.full_name)
        return RpcDoc(
            anchor=method.full_name,
            name=method.name,
            summary=markdown.cell(first_sentence(comment)),
            description=self.description(method.full_name, self.notes(method), in_cell=False),
            request=_stream(method.client_streaming, self.type_ref(method.input_type.full_name)),
            response=_stream(method.server_streaming, self.type_ref(method.output_type.full_name)),
            http=tuple(markdown.code(f"{b.method} {b.path}") for b in bindings),
            routes=tuple(_route(b) for b in bindings),
            path_parameters=", ".join(markdown.code(p) for p in parameters),
            access=access.exposure + (", anonymous allowed" if access.allow_anonymous else ""),
            scopes=scopes or ("none" if access.allow_anonymous else "any authenticated principal"),
        )

    def service(self, desc: descriptor.ServiceDescriptor) -> ServiceDoc:
        return ServiceDoc(
            anchor=desc.full_name,
            title=desc.name,
            description=self.description(desc.full_name, self.notes(desc), in_cell=False),
            rpcs=tuple(self.rpc(method) for method in desc.methods),
        )

    def extension(self, ext: descriptor.FieldDescriptor) -> ExtensionDoc:
        return ExtensionDoc(
            name=ext.full_name,
            number=ext.number,
            extends=markdown.code(ext.containing_type.full_name),
            type=self.field_type(ext, proto3_optional=False),
            description=self.description(ext.full_name, [], in_cell=True),
        )


def _stream(streaming: bool, type_ref: str) -> str:
    return f"stream {type_ref}" if streaming else type_ref


def _route(binding: options.HttpBinding) -> str:
    notes = []
    if binding.body == "*":
        notes.append("body: the whole request")
    elif binding.body:
        notes.append(f"body: field {markdown.code(binding.body)}")
    elif binding.method != "GET":
        notes.append("no body")
    if binding.response_body:
        notes.append(f"response body: field {markdown.code(binding.response_body)}")
    route = markdown.code(f"{binding.method} {binding.path}")
    return f"{route} ({'; '.join(notes)})" if notes else route


def _reserved(ranges: Iterable[tuple[int, int]], names: Iterable[str]) -> str:
    parts = [str(lo) if lo == hi else f"{lo} to {hi}" for lo, hi in ranges]
    parts += [markdown.code(name) for name in names]
    return ", ".join(parts)


def _walk_messages(desc: descriptor.Descriptor) -> Iterator[descriptor.Descriptor]:
    if desc.GetOptions().map_entry:
        return
    yield desc
    for nested in desc.nested_types:
        yield from _walk_messages(nested)


def _enums_of(desc: descriptor.Descriptor) -> Iterator[descriptor.EnumDescriptor]:
    for message in _walk_messages(desc):
        yield from message.enum_types


def package_docs(schema: Schema) -> list[PackageDoc]:
    """The documents of every package of the request's target files, sorted by package name."""
    linkable = frozenset(
        [m.full_name for m in schema.messages()] + [e.full_name for e in schema.enums()]
    )
    by_package: dict[str, list[descriptor.FileDescriptor]] = {}
    for file in sorted(schema.targets, key=lambda f: f.name):
        by_package.setdefault(file.package, []).append(file)
    return [
        _package_doc(schema, package, files, linkable)
        for package, files in sorted(by_package.items())
    ]


def _package_doc(
    schema: Schema,
    package: str,
    files: list[descriptor.FileDescriptor],
    linkable: frozenset[str],
) -> PackageDoc:
    build = _Builder(schema, package, linkable)
    services: list[ServiceDoc] = []
    messages: list[MessageDoc] = []
    enums: list[EnumDoc] = []
    extensions: list[ExtensionDoc] = []
    for file in files:
        # The *_by_name maps do not promise declaration order; the file's proto does.
        proto = schema.protos[file.name]
        services += [build.service(file.services_by_name[s.name]) for s in proto.service]
        tops = [file.message_types_by_name[m.name] for m in proto.message_type]
        messages += [build.message(m) for top in tops for m in _walk_messages(top)]
        enums += [build.enum(file.enum_types_by_name[e.name]) for e in proto.enum_type]
        enums += [build.enum(e) for top in tops for e in _enums_of(top)]
        extensions += [build.extension(file.extensions_by_name[x.name]) for x in proto.extension]
    return PackageDoc(
        name=package,
        files=tuple(FileDoc(f.name, markdown.cell(schema.comment(f.name))) for f in files),
        services=tuple(services),
        messages=tuple(messages),
        enums=tuple(enums),
        extensions=tuple(extensions),
    )


def reference(schema: Schema) -> str:
    """The reference page for every target file of `schema`."""
    roots = sorted({file.name.split("/", 1)[0] for file in schema.targets})
    source = ", ".join(f"{root}/**/*.proto" for root in roots) or "no files"
    return render(
        TEMPLATE,
        header=header_line("reference", source),
        packages=package_docs(schema),
    )


def generate(request: plugin_pb2.CodeGeneratorRequest) -> Iterator[OutputFile]:
    parse_options("reference", request.parameter, NoOptions)
    yield OutputFile(OUTPUT_NAME, reference(Schema.from_request(request)))


def main() -> None:
    run(generate)


if __name__ == "__main__":
    main()
