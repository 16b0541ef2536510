"""Breaking changes that `buf breaking` cannot see, found by comparing two descriptor sets.

buf compares the wire (numbers, types, names) but not the custom options and comments that
docs/schemas/VERSIONING.md also calls contract: an rpc's `google.api.http` route, its
`qmtl.api.v1.access` rule, an error code's `qmtl.api.v1.error_info`, a field newly made
`(google.api.field_behavior) = REQUIRED`, and an event payload's `type` string, which
event.proto declares in the comment on each `payload` member (``// type `qmtl.dag.x`.``).
Elements are matched by full name; what buf already reports (a deleted rpc, a renamed value)
is skipped here rather than reported twice. Each finding carries the work tree's source
location so it prints like buf's own `file:line:col: message (RULE_ID)`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from google.protobuf import descriptor, descriptor_pb2, descriptor_pool
from google.protobuf.compiler import plugin_pb2

# No type stubs cover unknown_fields; it gives the buf image extension protobuf leaves unparsed.
from google.protobuf.unknown_fields import UnknownFieldSet  # type: ignore[import-not-found]

from qmtl_codegen.descriptors import Schema, source_paths
from qmtl_codegen.options import (
    ACCESS_RULE,
    ERROR_INFO,
    FIELD_BEHAVIOR,
    HTTP_RULE,
    AccessInfo,
    HttpBinding,
    access_rule,
    extension_value,
    field_behaviors,
    http_rule,
)

HTTP_SAME_ROUTE = "QMTL_HTTP_SAME_ROUTE"
ACCESS_SAME = "QMTL_ACCESS_SAME"
ERROR_INFO_SAME = "QMTL_ERROR_INFO_SAME"
FIELD_NOT_NEWLY_REQUIRED = "QMTL_FIELD_NOT_NEWLY_REQUIRED"
EVENT_TYPE_SAME = "QMTL_EVENT_TYPE_SAME"

# How event.proto names the envelope type of a payload member: its comment starts with it.
_EVENT_TYPE = re.compile(r"^type `([^`]+)`")

# buf.alpha.image.v1.ImageFileExtension rides on each FileDescriptorProto of a buf image as
# field 8042; its field 1 is `is_import`. Imports (well-known types, google/api) are not ours.
_BUF_IMAGE_FILE_EXTENSION = 8042
_BUF_IS_IMPORT = 1

# The `package` statement's SourceCodeInfo path: source_paths names it by the file, not an element.
_FILE_PACKAGE = (2,)


@dataclass(frozen=True, order=True, slots=True)
class Finding:
    """One breaking change, located in the newer descriptor set's source."""

    # File name inside the image, e.g. qmtl/dag/v1/queue.proto (relative to its module).
    path: str
    line: int
    column: int
    message: str
    rule: str

    def format(self, source_root: str = "") -> str:
        """`schemas/qmtl/dag/v1/queue.proto:24:3: message (RULE_ID)`, as buf prints its own."""
        path = f"{source_root.rstrip('/')}/{self.path}" if source_root else self.path
        return f"{path}:{self.line}:{self.column}: {self.message} ({self.rule})"


@dataclass(frozen=True, slots=True)
class _Location:
    path: str
    line: int
    column: int


class ContractView:
    """One side of the comparison: a descriptor set resolved, with comments and locations."""

    def __init__(self, files: descriptor_pb2.FileDescriptorSet) -> None:
        targets = [proto.name for proto in files.file if not _is_import(proto)]
        request = plugin_pb2.CodeGeneratorRequest(file_to_generate=targets, proto_file=files.file)
        self.schema = Schema.from_request(request)
        self.pool: descriptor_pool.DescriptorPool = self.schema.pool
        self._locations: dict[str, _Location] = {}
        for name in targets:
            self._index_locations(self.schema.protos[name])

    def location(self, full_name: str, fallback_file: str) -> _Location:
        """Where an element starts, 1-based as buf prints it (the file's top if unknown)."""
        return self._locations.get(full_name, _Location(fallback_file, 1, 1))

    def find_message(self, full_name: str) -> descriptor.Descriptor | None:
        try:
            found: descriptor.Descriptor = self.pool.FindMessageTypeByName(full_name)  # type: ignore[no-untyped-call]
        except KeyError:
            return None
        return found

    def find_enum(self, full_name: str) -> descriptor.EnumDescriptor | None:
        try:
            found: descriptor.EnumDescriptor = self.pool.FindEnumTypeByName(full_name)  # type: ignore[no-untyped-call]
        except KeyError:
            return None
        return found

    def find_method(self, full_name: str) -> descriptor.MethodDescriptor | None:
        try:
            found: descriptor.MethodDescriptor = self.pool.FindMethodByName(full_name)  # type: ignore[no-untyped-call]
        except KeyError:
            return None
        return found

    def _index_locations(self, proto: descriptor_pb2.FileDescriptorProto) -> None:
        spans = {tuple(loc.path): loc.span for loc in proto.source_code_info.location}
        for path, full_name in source_paths(proto):
            span = spans.get(path)
            if span and path != _FILE_PACKAGE:
                self._locations[full_name] = _Location(proto.name, span[0] + 1, span[1] + 1)


def compare(
    baseline: descriptor_pb2.FileDescriptorSet, current: descriptor_pb2.FileDescriptorSet
) -> list[Finding]:
    """Every change from `baseline` to `current` that breaks a contract buf does not check."""
    old, new = ContractView(baseline), ContractView(current)
    findings = [
        *_http_routes(old, new),
        *_access_rules(old, new),
        *_error_infos(old, new),
        *_newly_required_fields(old, new),
        *_event_types(old, new),
    ]
    return sorted(findings)


def _http_routes(old: ContractView, new: ContractView) -> Iterator[Finding]:
    for service in old.schema.services():
        for method in service.methods:
            before = http_rule(old.pool, method)
            after_method = new.find_method(method.full_name)
            if before is None or after_method is None:
                continue
            after = http_rule(new.pool, after_method)
            after_bindings = after.bindings if after is not None else ()
            now = ", ".join(f'"{_route(b)}"' for b in after_bindings) or "no HTTP route"
            for binding in before.bindings:
                if binding not in after_bindings:
                    yield _finding(
                        new,
                        after_method.full_name,
                        after_method.containing_service.file.name,
                        f'RPC "{method.name}" on service "{service.name}" no longer serves '
                        f'HTTP route "{_route(binding)}" (option "{HTTP_RULE}"); it now serves '
                        f"{now}.",
                        HTTP_SAME_ROUTE,
                    )


def _route(binding: HttpBinding) -> str:
    route = f"{binding.method} {binding.path}"
    if binding.body:
        route += f" body={binding.body}"
    if binding.response_body:
        route += f" response_body={binding.response_body}"
    return route


def _access_rules(old: ContractView, new: ContractView) -> Iterator[Finding]:
    for service in old.schema.services():
        for method in service.methods:
            before = access_rule(old.pool, method)
            after_method = new.find_method(method.full_name)
            if before is None or after_method is None:
                continue
            after = access_rule(new.pool, after_method)
            if after is not None and _access_key(after) == _access_key(before):
                continue
            yield _finding(
                new,
                after_method.full_name,
                after_method.containing_service.file.name,
                f'RPC "{method.name}" on service "{service.name}" changed option '
                f'"{ACCESS_RULE}" from "{_describe_access(before)}" to '
                f'"{_describe_access(after)}".',
                ACCESS_SAME,
            )


def _access_key(info: AccessInfo) -> tuple[str, frozenset[str], bool]:
    # Scopes are a logical AND: their order means nothing.
    return (info.access, frozenset(info.scopes), info.allow_anonymous)


def _describe_access(info: AccessInfo | None) -> str:
    if info is None:
        return "none"
    text = f"{info.access} scopes [{', '.join(sorted(info.scopes))}]"
    return text + " allow_anonymous" if info.allow_anonymous else text


def _error_infos(old: ContractView, new: ContractView) -> Iterator[Finding]:
    for enum in old.schema.enums():
        after_enum = new.find_enum(enum.full_name)
        if after_enum is None:
            continue
        for value in enum.values:
            before = _error_info_fields(old.pool, value)
            after_value = after_enum.values_by_name.get(value.name)
            if before is None or after_value is None:
                continue
            after = _error_info_fields(new.pool, after_value)
            changes = [
                f"{key} from {before[key]} to {after[key] if after else 'unset'}"
                for key in before
                if after is None or after[key] != before[key]
            ]
            if changes:
                # Enum values are scoped beside their enum; locations key them under it.
                yield _finding(
                    new,
                    f"{after_enum.full_name}.{after_value.name}",
                    after_enum.file.name,
                    f'Enum value "{value.name}" on enum "{enum.name}" changed option '
                    f'"{ERROR_INFO}": {", ".join(changes)}.',
                    ERROR_INFO_SAME,
                )


def _error_info_fields(
    pool: descriptor_pool.DescriptorPool, value: descriptor.EnumValueDescriptor
) -> dict[str, str] | None:
    # options.ErrorInfo leaves out grpc_code, which is as much wire contract as the HTTP status.
    info: Any = extension_value(pool, value, ERROR_INFO)
    if info is None:
        return None
    grpc_field: descriptor.FieldDescriptor = info.DESCRIPTOR.fields_by_name["grpc_code"]
    grpc = grpc_field.enum_type.values_by_number.get(info.grpc_code)
    return {
        "code": f'"{info.code}"',
        "http_status": str(info.http_status),
        "grpc_code": grpc.name if grpc is not None else str(info.grpc_code),
    }


def _newly_required_fields(old: ContractView, new: ContractView) -> Iterator[Finding]:
    for message in old.schema.messages():
        after_message = new.find_message(message.full_name)
        if after_message is None:
            continue
        for field in after_message.fields:
            if "REQUIRED" not in field_behaviors(new.pool, field):
                continue
            before = message.fields_by_name.get(field.name)
            if before is None:
                what = "is a new field marked"
            elif "REQUIRED" not in field_behaviors(old.pool, before):
                what = "is newly marked"
            else:
                continue
            yield _finding(
                new,
                field.full_name,
                after_message.file.name,
                f'Field "{field.number}" with name "{field.name}" on message '
                f'"{message.name}" {what} ({FIELD_BEHAVIOR}) = REQUIRED; peers built against '
                "the older schema leave it unset and are refused.",
                FIELD_NOT_NEWLY_REQUIRED,
            )


def _event_types(old: ContractView, new: ContractView) -> Iterator[Finding]:
    for message in old.schema.messages():
        after_message = new.find_message(message.full_name)
        if after_message is None:
            continue
        for field in message.fields:
            before = _event_type(old, field)
            after_field = after_message.fields_by_name.get(field.name)
            if before is None or after_field is None:
                continue
            after = _event_type(new, after_field)
            if after != before:
                now = f'"{after}"' if after else "no event type"
                yield _finding(
                    new,
                    after_field.full_name,
                    after_message.file.name,
                    f'Field "{field.number}" with name "{field.name}" on message '
                    f'"{message.name}" changed its event type from "{before}" to {now}.',
                    EVENT_TYPE_SAME,
                )


def _event_type(view: ContractView, field: descriptor.FieldDescriptor) -> str | None:
    match = _EVENT_TYPE.match(view.schema.comment(field.full_name))
    return match.group(1) if match else None


def _finding(view: ContractView, key: str, file: str, message: str, rule: str) -> Finding:
    where = view.location(key, file)
    return Finding(where.path, where.line, where.column, message, rule)


def _is_import(proto: descriptor_pb2.FileDescriptorProto) -> bool:
    """Whether buf marked the file an import; files of a plain descriptor set never are."""
    for unknown in UnknownFieldSet(proto):
        if unknown.field_number == _BUF_IMAGE_FILE_EXTENSION and isinstance(unknown.data, bytes):
            return _varint_field(unknown.data, _BUF_IS_IMPORT) == 1
    return False


def _varint_field(data: bytes, number: int) -> int | None:
    """The varint field `number` of a serialized message, skipping the others (scalars only)."""
    pos = 0

    def varint() -> int:
        nonlocal pos
        result = shift = 0
        while True:
            byte = data[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7

    while pos < len(data):
        tag = varint()
        wire = tag & 7
        if wire == 0:
            value = varint()
            if tag >> 3 == number:
                return value
        elif wire == 2:
            length = varint()  # read first: `pos += varint()` would add to the old pos
            pos += length
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:
            return None
    return None
