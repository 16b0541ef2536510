"""A read-only view of the schemas a plugin was asked to generate for.

It loads every file of a CodeGeneratorRequest into one DescriptorPool (so options, nested
types and well-known types resolve) and keeps each element's leading comment, looked up by
the element's full name, because comments are the documentation of the contracts.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from google.protobuf import descriptor, descriptor_pb2, descriptor_pool
from google.protobuf.compiler import plugin_pb2

# Field numbers inside FileDescriptorProto / DescriptorProto / ... used in SourceCodeInfo paths.
_FILE_PACKAGE = 2
_FILE_MESSAGE, _FILE_ENUM, _FILE_SERVICE, _FILE_EXTENSION = 4, 5, 6, 7
_MESSAGE_FIELD, _MESSAGE_NESTED, _MESSAGE_ENUM, _MESSAGE_ONEOF = 2, 3, 4, 8
_ENUM_VALUE = 2
_SERVICE_METHOD = 2


def _clean(comment: str) -> str:
    lines = [line.rstrip() for line in comment.strip("\n").splitlines()]
    # Comments are written "// text": protoc keeps the space after the slashes.
    return "\n".join(line[1:] if line.startswith(" ") else line for line in lines).strip()


# Sentence ends are punctuation before a space; after these words a period is no end.
_SENTENCE_END = re.compile(r"[.?!](?= )")
_ABBREVIATIONS = frozenset({"e.g", "i.e", "cf", "vs"})


def first_sentence(text: str) -> str:
    """The summary of a comment: its first sentence, on one line."""
    flat = " ".join(text.split())
    for end in _SENTENCE_END.finditer(flat):
        word = flat[: end.start()].rsplit(" ", 1)[-1].lstrip("(").lower()
        if end.group() == "." and word in _ABBREVIATIONS:
            continue
        return flat[: end.end()]
    return flat


Derived = TypeVar("Derived")


@dataclass(eq=False)
class Schema:
    """The files of one plugin run, resolved, with their comments."""

    pool: descriptor_pool.DescriptorPool
    targets: list[descriptor.FileDescriptor]
    protos: dict[str, descriptor_pb2.FileDescriptorProto]
    comments: dict[str, str] = field(default_factory=dict)
    # What generators derive from the schema alone (the API model, rendered documents), built
    # once however many generators of a bundle ask for it.
    _derived: dict[Any, Any] = field(default_factory=dict, repr=False)

    def derived(self, key: Any, build: Callable[[], Derived]) -> Derived:
        """`build()`, called once per schema and `key`; later calls return the same value."""
        if key not in self._derived:
            self._derived[key] = build()
        found: Derived = self._derived[key]
        return found

    @classmethod
    def from_request(cls, request: plugin_pb2.CodeGeneratorRequest) -> Schema:
        """The schema of `request`; inside `shared(request)`, one Schema for every caller."""
        sharing = _sharing
        if sharing is None or sharing.request is not request:
            return cls._build(request)
        if sharing.schema is None:
            sharing.schema = cls._build(request)
        return sharing.schema

    @classmethod
    def _build(cls, request: plugin_pb2.CodeGeneratorRequest) -> Schema:
        pool = descriptor_pool.DescriptorPool()
        protos: dict[str, descriptor_pb2.FileDescriptorProto] = {}
        for proto in request.proto_file:
            # types-protobuf leaves DescriptorPool untyped; the call is checked at run time.
            pool.AddSerializedFile(proto.SerializeToString())  # type: ignore[no-untyped-call]
            protos[proto.name] = proto
        targets = [_find_file(pool, name) for name in request.file_to_generate]
        schema = cls(pool=pool, targets=targets, protos=protos)
        for name in request.file_to_generate:
            schema._index_comments(protos[name])
        return schema

    def comment(self, full_name: str) -> str:
        """The leading comment of an element, looked up by full name ("" if none).

        Messages, fields, oneofs, enums, values, services, methods and file-level extensions
        are indexed; a file's name (`qmtl/dag/v1/dag.proto`) gives the comment on its
        `package` statement.
        """
        return self.comments.get(full_name, "")

    def messages(self) -> Iterator[descriptor.Descriptor]:
        """Every message of the target files, nested ones included, map entries excluded."""
        for file in self.targets:
            for message in file.message_types_by_name.values():
                yield from _walk_messages(message)

    def enums(self) -> Iterator[descriptor.EnumDescriptor]:
        """Every enum of the target files, nested ones included."""
        for file in self.targets:
            yield from file.enum_types_by_name.values()
        for message in self.messages():
            yield from message.enum_types

    def services(self) -> Iterator[descriptor.ServiceDescriptor]:
        for file in self.targets:
            yield from file.services_by_name.values()

    def _index_comments(self, proto: descriptor_pb2.FileDescriptorProto) -> None:
        by_path = {
            tuple(location.path): location.leading_comments
            for location in proto.source_code_info.location
            if location.leading_comments
        }
        for path, full_name in source_paths(proto):
            if path in by_path:
                self.comments[full_name] = _clean(by_path[path])


@dataclass
class _Sharing:
    """The request whose Schema every generator of a bundle shares, and that Schema once built."""

    request: plugin_pb2.CodeGeneratorRequest
    schema: Schema | None = None


_sharing: _Sharing | None = None


@contextlib.contextmanager
def shared(request: plugin_pb2.CodeGeneratorRequest) -> Iterator[None]:
    """Within this block, Schema.from_request(request) builds the schema once and returns it
    to every caller. Generators only read it (and vary only the request's `parameter`, which
    the schema does not depend on), so a bundle resolves its files once, not per generator."""
    global _sharing
    outer, _sharing = _sharing, _Sharing(request)
    try:
        yield
    finally:
        _sharing = outer


def source_paths(
    proto: descriptor_pb2.FileDescriptorProto,
) -> Iterator[tuple[tuple[int, ...], str]]:
    """(source_code_info path, full name) of every element a file declares: the file itself
    (its `package` statement, named by the file name), messages, fields, oneofs, nested types,
    enums and their values (under the enum, not its enclosing scope as in C++), services,
    methods and extensions."""
    prefix = f"{proto.package}." if proto.package else ""

    def message(
        msg: descriptor_pb2.DescriptorProto, path: tuple[int, ...], name: str
    ) -> Iterator[tuple[tuple[int, ...], str]]:
        yield path, name
        for i, fld in enumerate(msg.field):
            yield (*path, _MESSAGE_FIELD, i), f"{name}.{fld.name}"
        for i, oneof in enumerate(msg.oneof_decl):
            yield (*path, _MESSAGE_ONEOF, i), f"{name}.{oneof.name}"
        for i, nested in enumerate(msg.nested_type):
            yield from message(nested, (*path, _MESSAGE_NESTED, i), f"{name}.{nested.name}")
        for i, enm in enumerate(msg.enum_type):
            yield from enum(enm, (*path, _MESSAGE_ENUM, i), f"{name}.{enm.name}")

    def enum(
        enm: descriptor_pb2.EnumDescriptorProto, path: tuple[int, ...], name: str
    ) -> Iterator[tuple[tuple[int, ...], str]]:
        yield path, name
        for i, value in enumerate(enm.value):
            yield (*path, _ENUM_VALUE, i), f"{name}.{value.name}"

    yield (_FILE_PACKAGE,), proto.name
    for i, msg in enumerate(proto.message_type):
        yield from message(msg, (_FILE_MESSAGE, i), prefix + msg.name)
    for i, enm in enumerate(proto.enum_type):
        yield from enum(enm, (_FILE_ENUM, i), prefix + enm.name)
    for i, svc in enumerate(proto.service):
        yield (_FILE_SERVICE, i), prefix + svc.name
        for j, method in enumerate(svc.method):
            yield (_FILE_SERVICE, i, _SERVICE_METHOD, j), f"{prefix}{svc.name}.{method.name}"
    for i, ext in enumerate(proto.extension):
        yield (_FILE_EXTENSION, i), prefix + ext.name


def _find_file(pool: descriptor_pool.DescriptorPool, name: str) -> descriptor.FileDescriptor:
    found: descriptor.FileDescriptor = pool.FindFileByName(name)  # type: ignore[no-untyped-call]
    return found


def _walk_messages(message: descriptor.Descriptor) -> Iterator[descriptor.Descriptor]:
    if message.GetOptions().map_entry:
        return
    yield message
    for nested in message.nested_types:
        yield from _walk_messages(nested)
