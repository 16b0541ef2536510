"""The API the schemas declare, read once: services, rpcs, HTTP bindings, access and errors.

Every generator reads services from `api_model(schema)` instead of the raw descriptors and
options, so each rule about what can be served (docs/api/HTTP.md, "How the generators read
the schema") is checked here once and a schema either yields one model or a GeneratorError
naming the rpc:

- every rpc a generator serves carries `(qmtl.api.v1.access)` (options.require_access);
- an HTTP rpc is unary; public rpcs are GET only; a GET has no body; `response_body` is
  refused (the routers always send the whole response);
- `body` is "", "*" or one top-level singular message field;
- path variables are `{f}`, `{f=*}` or `{f=**}` over a singular scalar (or wrapper or
  Timestamp/Duration/FieldMask) field, no custom verb after one (api.pathtemplate);
- `(qmtl.api.v1.errors)` codes are catalogue wire codes, each once;
- no schema element's Python name starts with the reserved `_qmtl_`.

Query parameters follow the same leaf rules for routers, clients and OpenAPI: every field not
bound to the path or the body that is a scalar, enum, wrapper or Timestamp/Duration/FieldMask,
repeated or not; singular nested messages spread into dotted names; maps, repeated messages,
other well-known types and recursion have no query form.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from google.protobuf import descriptor, descriptor_pb2

from qmtl_codegen import options
from qmtl_codegen.api import pathtemplate
from qmtl_codegen.descriptors import Schema
from qmtl_codegen.plugin import GeneratorError

FD = descriptor.FieldDescriptor
WELL_KNOWN = "google.protobuf."
# Well-known types that travel as one query or path string; other well-known types have none.
QUERY_WELL_KNOWN = frozenset(
    {"google.protobuf.Timestamp", "google.protobuf.Duration", "google.protobuf.FieldMask"}
)
WRAPPERS = frozenset(
    f"google.protobuf.{name}Value"
    for name in ("Double", "Float", "Int64", "UInt64", "Int32", "UInt32", "Bool", "String", "Bytes")
)
VERBS = ("GET", "POST", "PUT", "PATCH", "DELETE")
PAGE_REQUEST = "qmtl.common.v1.PageRequest"
PAGE_INFO = "qmtl.common.v1.PageInfo"
ERROR_CODE_ENUM = "qmtl.common.v1.ErrorCode"
RPC_ERRORS = "qmtl.api.v1.errors"
# Generated modules name the runtime's layers `_qmtl_<alias>`; a schema name must not collide.
RESERVED_PREFIX = "_qmtl_"

LeafKind = Literal["scalar", "enum", "well_known", "wrapper"]


def leaf_kind(fld: FD) -> LeafKind | None:
    """How a field travels as one query or path string; None for a message that does not."""
    msg = fld.message_type
    if msg is None:
        return "enum" if fld.enum_type is not None else "scalar"
    if msg.full_name in QUERY_WELL_KNOWN:
        return "well_known"
    if msg.full_name in WRAPPERS:
        return "wrapper"
    return None


def is_map(fld: FD) -> bool:
    entry = fld.message_type
    return bool(fld.is_repeated) and entry is not None and entry.GetOptions().map_entry


def json_name(fld: FD) -> str:
    name: str = fld.json_name  # type: ignore[attr-defined]
    return name


@dataclass(frozen=True, slots=True)
class FieldPath:
    """A field reached from a message through singular message fields: `page.page_size`."""

    fields: tuple[FD, ...]

    @property
    def leaf(self) -> FD:
        return self.fields[-1]

    @property
    def proto_path(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @property
    def json_path(self) -> tuple[str, ...]:
        return tuple(json_name(f) for f in self.fields)

    @property
    def dotted(self) -> str:
        return ".".join(self.proto_path)


@dataclass(frozen=True, slots=True)
class QueryField:
    """A leaf request field read from the query string."""

    path: FieldPath
    kind: LeafKind
    # REQUIRED itself and inside REQUIRED messages all the way up (a 422 when absent).
    required: bool


@dataclass(frozen=True, slots=True)
class Binding:
    """One google.api.http binding of an rpc, checked against what the routers serve."""

    index: int  # 0 for the rule's own binding, n for its n-th additional_binding
    verb: str  # GET, POST, PUT, PATCH or DELETE
    template: str  # the path as written in the schema
    path: pathtemplate.PathTemplate
    body: str  # "" (none), "*" (the whole request) or one top-level message field
    path_fields: tuple[FieldPath, ...]  # one per path variable, in order
    # Every leaf not bound to the path or the body; () with `body: "*"`.
    query: tuple[QueryField, ...]

    @property
    def path_parameters(self) -> tuple[str, ...]:
        """The dotted request fields the path binds."""
        return self.path.fields


@dataclass(frozen=True, slots=True)
class Paging:
    """A list rpc: a PageRequest field in, a PageInfo field and one repeated field out."""

    request_field: str
    response_field: str
    items_field: str


@dataclass(frozen=True, slots=True)
class Rpc:
    method: descriptor.MethodDescriptor
    access: options.AccessInfo
    bindings: tuple[Binding, ...]  # () for a gRPC-only rpc
    # GET-bound, or idempotency_level NO_SIDE_EFFECTS / IDEMPOTENT: safe to retry.
    idempotent: bool
    # Wire codes of (qmtl.api.v1.errors), as written; None when the rpc does not set the option.
    declared_errors: tuple[str, ...] | None
    paging: Paging | None

    @property
    def errors(self) -> tuple[str, ...]:
        return self.declared_errors or ()

    @property
    def name(self) -> str:
        name: str = self.method.name
        return name

    @property
    def full_name(self) -> str:
        name: str = self.method.full_name
        return name


@dataclass(frozen=True, slots=True)
class Service:
    service: descriptor.ServiceDescriptor
    rpcs: tuple[Rpc, ...]  # every rpc the model was asked for, in declaration order

    @property
    def http_rpcs(self) -> tuple[Rpc, ...]:
        return tuple(rpc for rpc in self.rpcs if rpc.bindings)


def field_at(desc: descriptor.Descriptor, dotted: str, where: str) -> FieldPath:
    """The fields a dotted path (`page.page_size`) names from `desc`."""
    current: descriptor.Descriptor | None = desc
    found: list[FD] = []
    for part in dotted.split("."):
        fld = current.fields_by_name.get(part) if current is not None else None
        if fld is None or (found and found[-1].is_repeated):
            raise GeneratorError(f"{where}: {desc.full_name} has no field {dotted}")
        found.append(fld)
        current = fld.message_type
    return FieldPath(tuple(found))


class _Reader:
    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self.pool = schema.pool
        self._catalogue: frozenset[str] | None = None
        self._catalogue_read = False

    def required(self, fld: FD) -> bool:
        return "REQUIRED" in options.field_behaviors(self.pool, fld)

    def catalogue(self) -> frozenset[str] | None:
        """The wire codes of the ErrorCode enum; None when the request does not hold it."""
        if not self._catalogue_read:
            self._catalogue_read = True
            try:
                enum = self.pool.FindEnumTypeByName(ERROR_CODE_ENUM)  # type: ignore[no-untyped-call]
            except KeyError:
                return None
            infos = (options.error_info(self.pool, value) for value in enum.values)
            self._catalogue = frozenset(info.code for info in infos if info is not None)
        return self._catalogue

    def errors(self, method: descriptor.MethodDescriptor) -> tuple[str, ...] | None:
        declared = options.extension_value(self.pool, method, RPC_ERRORS)
        if declared is None:
            return None
        codes = tuple(declared.codes)
        known = self.catalogue()
        for code in codes:
            # A plugin run on a few files may not see the catalogue; the runs on every file
            # (OpenAPI, reference: `strategy: all`) always do, so a typo never gets through.
            if known is not None and code not in known:
                raise GeneratorError(
                    f"{method.full_name}: ({RPC_ERRORS}) names {code!r}, which is not a wire "
                    f"code of {ERROR_CODE_ENUM}"
                )
        if len(set(codes)) != len(codes):
            raise GeneratorError(f"{method.full_name}: ({RPC_ERRORS}) lists a code twice")
        return codes

    def query(
        self,
        desc: descriptor.Descriptor,
        prefix: tuple[FD, ...],
        bound: set[str],
        seen: frozenset[str],
        required_chain: bool,
    ) -> list[QueryField]:
        found: list[QueryField] = []
        seen = seen | {desc.full_name}
        for fld in desc.fields:
            path = FieldPath((*prefix, fld))
            if path.dotted in bound or is_map(fld):
                continue
            is_required = required_chain and self.required(fld)
            kind = leaf_kind(fld)
            if kind is not None:
                found.append(QueryField(path, kind, is_required))
                continue
            msg = fld.message_type
            if msg.full_name.startswith(WELL_KNOWN) or fld.is_repeated or msg.full_name in seen:
                continue
            found += self.query(msg, path.fields, bound, seen, is_required)
        return found

    def binding(
        self,
        method: descriptor.MethodDescriptor,
        access: options.AccessInfo,
        rule: options.HttpBinding,
        index: int,
    ) -> Binding:
        where = method.full_name
        if rule.method not in VERBS:
            raise GeneratorError(f"{where}: HTTP method {rule.method} is not supported")
        if access.is_public and rule.method != "GET":
            raise GeneratorError(f"{where}: public methods are served as GET only")
        if rule.method == "GET" and rule.body:
            raise GeneratorError(f"{where}: a GET binding cannot carry a body")
        if rule.response_body:
            raise GeneratorError(
                f"{where}: response_body is not supported (the whole response is the body)"
            )
        path = pathtemplate.parse(rule.path, where)
        pathtemplate.require_servable(path, where)
        request = method.input_type
        if rule.body not in ("", "*"):
            body = field_at(request, rule.body, where).leaf
            if "." in rule.body or body.message_type is None or body.is_repeated:
                raise GeneratorError(
                    f"{where}: body {rule.body} must name a singular message field"
                )
        path_fields = tuple(field_at(request, v.field, where) for v in path.variables)
        for variable, fp in zip(path.variables, path_fields, strict=True):
            if leaf_kind(fp.leaf) is None or fp.leaf.is_repeated:
                raise GeneratorError(f"{where}: path variable {variable.field} must be a scalar")
        if rule.body == "*" and any("." in name for name in path.fields):
            raise GeneratorError(
                f"{where}: a nested path variable ({', '.join(path.fields)}) cannot go with "
                'body: "*" (the body would have to leave out part of a message)'
            )
        query: list[QueryField] = []
        if rule.body != "*":
            bound = {*path.fields, rule.body} - {""}
            query = self.query(request, (), bound, frozenset(), True)
        return Binding(index, rule.method, rule.path, path, rule.body, path_fields, tuple(query))

    def paging(self, method: descriptor.MethodDescriptor) -> Paging | None:
        def single(desc: descriptor.Descriptor, type_name: str) -> str | None:
            names = [
                f.name
                for f in desc.fields
                if f.message_type is not None
                and f.message_type.full_name == type_name
                and not f.is_repeated
            ]
            return names[0] if len(names) == 1 else None

        request_field = single(method.input_type, PAGE_REQUEST)
        response_field = single(method.output_type, PAGE_INFO)
        items = [f.name for f in method.output_type.fields if f.is_repeated and not is_map(f)]
        if request_field is None or response_field is None or len(items) != 1:
            return None
        return Paging(request_field, response_field, items[0])

    def rpc(self, method: descriptor.MethodDescriptor, grpc_only: bool) -> Rpc | None:
        rule = options.http_rule(self.pool, method)
        if rule is None and not grpc_only:
            return None
        where = method.full_name
        access = options.require_access(self.pool, method)
        if method.client_streaming or method.server_streaming:
            raise GeneratorError(
                f"{where}: streaming rpcs are not supported (no HTTP form, no generated handler)"
            )
        bindings = tuple(
            self.binding(method, access, b, i) for i, b in enumerate(rule.bindings if rule else ())
        )
        level = method.GetOptions().idempotency_level
        idempotent = any(b.verb == "GET" for b in bindings) or level in (
            descriptor_pb2.MethodOptions.NO_SIDE_EFFECTS,
            descriptor_pb2.MethodOptions.IDEMPOTENT,
        )
        return Rpc(method, access, bindings, idempotent, self.errors(method), self.paging(method))

    def service(self, service: descriptor.ServiceDescriptor, grpc_only: bool) -> Service:
        rpcs = (self.rpc(method, grpc_only) for method in service.methods)
        return Service(service, tuple(rpc for rpc in rpcs if rpc is not None))


def refuse_reserved_names(file: descriptor.FileDescriptor) -> None:
    """GeneratorError for an element of `file` whose Python name starts with `_qmtl_`."""
    names: list[tuple[str, str]] = []

    def message(desc: descriptor.Descriptor) -> None:
        names.append((desc.name, desc.full_name))
        names.extend((f.name, f.full_name) for f in desc.fields)
        names.extend((e.name, e.full_name) for e in desc.enum_types)
        for nested in desc.nested_types:
            message(nested)

    for msg in file.message_types_by_name.values():
        message(msg)
    names.extend((e.name, e.full_name) for e in file.enum_types_by_name.values())
    for service in file.services_by_name.values():
        names.append((service.name, service.full_name))
        names.extend((m.name, m.full_name) for m in service.methods)
    for name, full_name in names:
        if name.startswith(RESERVED_PREFIX):
            raise GeneratorError(
                f"{full_name}: names starting with {RESERVED_PREFIX!r} are reserved for the "
                "generated modules' own imports"
            )


def services(schema: Schema, *, include_grpc_only: bool = False) -> list[Service]:
    """The services of the target files, in file then declaration order.

    Without `include_grpc_only`, only the rpcs with a google.api.http rule (and only services
    that have one); with it, every rpc of every service. Read once per schema.
    """
    if include_grpc_only:
        return list(_every_service(schema))
    return list(schema.derived(("api.model.services", False), lambda: _http_services(schema)))


def _every_service(schema: Schema) -> list[Service]:
    return schema.derived(("api.model.services", True), lambda: _read_services(schema, True))


def _http_services(schema: Schema) -> list[Service]:
    # An rpc with an HTTP rule reads the same either way, so the HTTP services are those of
    # every service with only their HTTP rpcs; but every rpc must then pass the model's checks
    # (access on gRPC-only rpcs too), so when one does not, the HTTP rpcs are read alone.
    try:
        every = _every_service(schema)
    except GeneratorError:
        return _read_services(schema, False)
    return [Service(s.service, s.http_rpcs) for s in every if s.http_rpcs]


def _read_services(schema: Schema, include_grpc_only: bool) -> list[Service]:
    reader = _Reader(schema)
    found: list[Service] = []
    for file in schema.targets:
        refuse_reserved_names(file)
        # The file's proto keeps declaration order; services_by_name does not promise it.
        for name in [s.name for s in schema.protos[file.name].service]:
            service = reader.service(file.services_by_name[name], include_grpc_only)
            if service.rpcs:
                found.append(service)
    return found
