"""What changed between two versions of the schemas: the inventory of each, and their difference.

An inventory lists every element a consumer of the contracts can see: services, rpcs, HTTP
routes (google.api.http bindings), messages, fields, enums and enum values, each under its
package with the anchor of the reference page (docs/schemas/reference.md) that documents it.
Two inventories compare by key: an element is added, removed, or newly `deprecated = true`.

Everything is sorted by package, kind and name, so a difference depends on the schemas alone.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from google.protobuf import descriptor, descriptor_pb2
from google.protobuf.compiler import plugin_pb2

from qmtl_codegen import options
from qmtl_codegen.descriptors import Schema


class Kind(enum.Enum):
    """An element kind, in the order the changelog lists them; the value is its label."""

    SERVICE = "service"
    RPC = "rpc"
    ROUTE = "HTTP route"
    MESSAGE = "message"
    FIELD = "field"
    ENUM = "enum"
    ENUM_VALUE = "enum value"

    @property
    def rank(self) -> int:
        return list(Kind).index(self)


@dataclass(frozen=True, slots=True)
class Element:
    """One element of the schemas as the changelog names it."""

    package: str
    kind: Kind
    # Unique among the elements of one kind: a full name, or `<rpc full name> <VERB> <path>`.
    key: str
    # The name within the package (`NodeSpec.interval`), or `VERB /path` for a route.
    name: str
    # The reference page's anchor of the element or of the section it is listed in.
    anchor: str
    deprecated: bool
    # The element whose addition or removal brings this one along (a message's fields, an
    # enum's values, an rpc's routes), as (kind, key); None for one that stands alone.
    parent: tuple[Kind, str] | None = None
    # For a route: the rpc it belongs to, within the package (`DagService.GetNode`).
    rpc: str = ""
    # For an rpc: its routes, `VERB /path` each; empty for a gRPC-only rpc.
    routes: tuple[str, ...] = ()

    @property
    def sort_key(self) -> tuple[str, int, str, str]:
        return (self.package, self.kind.rank, self.name, self.key)


Inventory = dict[tuple[Kind, str], Element]


@dataclass(frozen=True, slots=True)
class Changes:
    """The difference of two inventories, each list sorted by package, kind and name."""

    added: tuple[Element, ...]
    deprecated: tuple[Element, ...]
    removed: tuple[Element, ...]

    def __bool__(self) -> bool:
        return bool(self.added or self.deprecated or self.removed)

    def packages(self) -> list[str]:
        return sorted({e.package for e in (*self.added, *self.deprecated, *self.removed)})


def schema_of_image(image: descriptor_pb2.FileDescriptorSet, roots: Iterable[str]) -> Schema:
    """A baseline image as a Schema whose targets are its files under `roots` (`qmtl`, ...).

    An image holds the imported files as well (google/api, well-known types), and buf marks
    only those outside the workspace as imports, so the files that are our schemas are named
    by their top directory, the one the work tree's schema files have.
    """
    tops = frozenset(roots)
    request = plugin_pb2.CodeGeneratorRequest(
        file_to_generate=[f.name for f in image.file if f.name.split("/", 1)[0] in tops],
        proto_file=image.file,
    )
    return Schema.from_request(request)


def schema_roots(schema: Schema) -> list[str]:
    """The top directories of the schema's target files (`qmtl`)."""
    return sorted({file.name.split("/", 1)[0] for file in schema.targets})


def inventory(schema: Schema) -> Inventory:
    """Every element of the schema's target files, by (kind, key)."""
    return {(element.kind, element.key): element for element in _elements(schema)}


def _in_package(full_name: str, package: str) -> str:
    return full_name.removeprefix(f"{package}.") if package else full_name


class _Deprecatable(Protocol):
    deprecated: bool


class _HasOptions(Protocol):
    # Every descriptor's options message has the standard `deprecated` flag.
    def GetOptions(self) -> _Deprecatable: ...


def _deprecated(desc: _HasOptions) -> bool:
    return desc.GetOptions().deprecated


def _parent_of(desc: descriptor.Descriptor | descriptor.EnumDescriptor) -> tuple[Kind, str] | None:
    outer = desc.containing_type
    return (Kind.MESSAGE, outer.full_name) if outer is not None else None


def _elements(schema: Schema) -> Iterator[Element]:
    for message in schema.messages():
        package = message.file.package
        yield Element(
            package=package,
            kind=Kind.MESSAGE,
            key=message.full_name,
            name=_in_package(message.full_name, package),
            anchor=message.full_name,
            deprecated=_deprecated(message),
            parent=_parent_of(message),
        )
        for field in message.fields:
            yield Element(
                package=package,
                kind=Kind.FIELD,
                key=field.full_name,
                name=_in_package(field.full_name, package),
                anchor=message.full_name,
                deprecated=_deprecated(field),
                parent=(Kind.MESSAGE, message.full_name),
            )
    for enum_type in schema.enums():
        package = enum_type.file.package
        yield Element(
            package=package,
            kind=Kind.ENUM,
            key=enum_type.full_name,
            name=_in_package(enum_type.full_name, package),
            anchor=enum_type.full_name,
            deprecated=_deprecated(enum_type),
            parent=_parent_of(enum_type),
        )
        for value in enum_type.values:
            # Enum values are scoped beside their enum in protobuf; the changelog names them
            # under it, as the reference lists them.
            key = f"{enum_type.full_name}.{value.name}"
            yield Element(
                package=package,
                kind=Kind.ENUM_VALUE,
                key=key,
                name=_in_package(key, package),
                anchor=enum_type.full_name,
                deprecated=_deprecated(value),
                parent=(Kind.ENUM, enum_type.full_name),
            )
    for service in schema.services():
        package = service.file.package
        yield Element(
            package=package,
            kind=Kind.SERVICE,
            key=service.full_name,
            name=_in_package(service.full_name, package),
            anchor=service.full_name,
            deprecated=_deprecated(service),
        )
        for method in service.methods:
            yield from _rpc_elements(schema, package, method)


def _rpc_elements(
    schema: Schema, package: str, method: descriptor.MethodDescriptor
) -> Iterator[Element]:
    rule = options.http_rule(schema.pool, method)
    routes = tuple(f"{b.method} {b.path}" for b in (rule.bindings if rule is not None else ()))
    rpc = _in_package(method.full_name, package)
    yield Element(
        package=package,
        kind=Kind.RPC,
        key=method.full_name,
        name=rpc,
        anchor=method.full_name,
        deprecated=_deprecated(method),
        routes=routes,
    )
    for route in routes:
        yield Element(
            package=package,
            kind=Kind.ROUTE,
            key=f"{method.full_name} {route}",
            name=route,
            anchor=method.full_name,
            # A route has no deprecation of its own: its rpc's is listed.
            deprecated=False,
            parent=(Kind.RPC, method.full_name),
            rpc=rpc,
        )


def diff(old: Inventory, new: Inventory) -> Changes:
    """What `new` adds to, deprecates in and removes from `old`.

    An element that comes or goes with its parent (a new message's fields, a removed rpc's
    routes) is not listed on its own: the parent's line stands for it.
    """
    added = _standalone(new, old)
    removed = _standalone(old, new)
    deprecated = [
        element
        for key, element in new.items()
        if key in old and element.deprecated and not old[key].deprecated
    ]
    return Changes(added=_sorted(added), deprecated=_sorted(deprecated), removed=_sorted(removed))


def _standalone(having: Inventory, lacking: Inventory) -> list[Element]:
    only = {key: element for key, element in having.items() if key not in lacking}
    return [element for element in only.values() if element.parent not in only]


def _sorted(elements: Iterable[Element]) -> tuple[Element, ...]:
    return tuple(sorted(elements, key=lambda element: element.sort_key))


def counts(elements: Inventory) -> dict[str, dict[Kind, int]]:
    """How many elements of each kind each package has, packages sorted."""
    table: dict[str, dict[Kind, int]] = {}
    for element in elements.values():
        row = table.setdefault(element.package, dict.fromkeys(Kind, 0))
        row[element.kind] += 1
    return dict(sorted(table.items()))
