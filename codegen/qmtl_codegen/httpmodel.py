"""What the HTTP routers and clients are generated from: each service's rpcs and their routes.

Everything comes from qmtl_codegen.api (the one model of services, rpcs and bindings, where
every binding rule is checked) and follows docs/api/HTTP.md: public methods are GETs on the
public listener, internal ones keep their rule's verb on the internal listener; path variables
fill request fields, the body (`*` or one field) fills the rest when there is one, and every
remaining leaf field is a query parameter named by its JSON name (the proto name also works).
Nothing is configured per rpc: a new rpc in a schema gets its route and client method.

The leaf-field rules are the model's, which the OpenAPI generator reads too, so the
parameters a router accepts are those the document lists.
"""

from __future__ import annotations

import builtins
import keyword
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from google.protobuf import descriptor

from qmtl_codegen import options
from qmtl_codegen.api import model, pathtemplate
from qmtl_codegen.descriptors import Schema
from qmtl_codegen.plugin import GeneratorError

FD = descriptor.FieldDescriptor
WELL_KNOWN = "google.protobuf."
# Well-known types that travel as one query string; other well-known types have no query form.
_LEAF_MESSAGES = {
    "google.protobuf.Timestamp": "parse_timestamp",
    "google.protobuf.Duration": "parse_duration",
    "google.protobuf.FieldMask": "parse_field_mask",
}
_WRAPPERS = {
    "google.protobuf.DoubleValue": FD.TYPE_DOUBLE,
    "google.protobuf.FloatValue": FD.TYPE_FLOAT,
    "google.protobuf.Int64Value": FD.TYPE_INT64,
    "google.protobuf.UInt64Value": FD.TYPE_UINT64,
    "google.protobuf.Int32Value": FD.TYPE_INT32,
    "google.protobuf.UInt32Value": FD.TYPE_UINT32,
    "google.protobuf.BoolValue": FD.TYPE_BOOL,
    "google.protobuf.StringValue": FD.TYPE_STRING,
    "google.protobuf.BytesValue": FD.TYPE_BYTES,
}
_SCALAR_PARSERS = {
    FD.TYPE_DOUBLE: "parse_double",
    FD.TYPE_FLOAT: "parse_float",
    FD.TYPE_INT64: "parse_int64",
    FD.TYPE_SINT64: "parse_int64",
    FD.TYPE_SFIXED64: "parse_int64",
    FD.TYPE_UINT64: "parse_uint64",
    FD.TYPE_FIXED64: "parse_uint64",
    FD.TYPE_INT32: "parse_int32",
    FD.TYPE_SINT32: "parse_int32",
    FD.TYPE_SFIXED32: "parse_int32",
    FD.TYPE_UINT32: "parse_uint32",
    FD.TYPE_FIXED32: "parse_uint32",
    FD.TYPE_BOOL: "parse_bool",
    FD.TYPE_STRING: "parse_string",
    FD.TYPE_BYTES: "parse_bytes",
}
# Methods of the generated clients' base classes, which an rpc must not shadow.
_RESERVED = frozenset({"close", "aclose"})


@dataclass(frozen=True, slots=True)
class PyType:
    """A generated message class: its module and its name there (`Outer.Inner` if nested)."""

    module: str
    name: str
    full_name: str


@dataclass(frozen=True, slots=True)
class ParamModel:
    """One request field bound to a path variable or a query parameter."""

    names: tuple[str, ...]  # JSON name first, then the proto name if it differs
    path: tuple[str, ...]  # proto field names from the request
    parser: str  # expression in the generated module, e.g. `_qmtl_http.parse_int64`
    slot: str  # qmtl.runtime.http.params.Slot member name


@dataclass(frozen=True, slots=True)
class RequiredModel:
    name: str
    json_name: str


@dataclass(frozen=True, slots=True)
class RouteModel:
    """One HTTP binding of an rpc."""

    constant: str  # module constant of its Binding / Operation, e.g. _GET_STRATEGY
    function: str  # its endpoint function, e.g. serve_get_strategy
    verb: str
    template: str  # the google.api.http path
    starlette_path: str  # the same with Starlette's `{name}` / `{name:path}` variables
    route_name: str
    body: str
    path_params: tuple[ParamModel, ...]
    query_params: tuple[ParamModel, ...]
    required: tuple[RequiredModel, ...]
    # The template parsed (qmtl_codegen.api.pathtemplate); None only when built by hand.
    path: pathtemplate.PathTemplate | None = None


@dataclass(frozen=True, slots=True)
class PagingModel:
    """A list rpc's paging fields (qmtl.common.v1.PageRequest in, PageInfo out)."""

    request_field: str
    response_field: str
    items_field: str


@dataclass(frozen=True, slots=True)
class HiddenModel:
    """Where one message type holds `(qmtl.api.v1.internal_only)` fields, for public routes.

    Rendered as a `qmtl.runtime.http.redact.Hidden` constant; `nested` pairs a message field
    with the constant of its type's table.
    """

    constant: str
    clear: tuple[str, ...]
    nested: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class RpcModel:
    name: str
    full_name: str
    python_name: str
    comment: str
    request: PyType
    response: PyType
    public: bool
    scopes: tuple[str, ...]
    allow_anonymous: bool
    routes: tuple[RouteModel, ...]  # () for a gRPC-only rpc
    # The Hidden constant a public route clears its reply with; "" when nothing is hidden.
    public_view: str = ""
    # GET-bound, or idempotency_level NO_SIDE_EFFECTS / IDEMPOTENT: safe to retry.
    idempotent: bool = False
    # Wire codes of the rpc's (qmtl.api.v1.errors) option, checked against the catalogue.
    errors: tuple[str, ...] = ()
    paged: PagingModel | None = None

    @property
    def scopes_constant(self) -> str:
        return f"_{_constant(self.name)}_SCOPES"


@dataclass(frozen=True, slots=True)
class ServiceModel:
    name: str
    full_name: str
    python_name: str  # snake_case, for function names
    comment: str
    package: str
    area: str  # qmtl.<area>.v1
    rpcs: tuple[RpcModel, ...]  # the rpcs with an HTTP rule
    # Every rpc, gRPC-only ones included, when built with include_grpc_only; else `rpcs`.
    all_rpcs: tuple[RpcModel, ...] = field(default=())

    @property
    def public_rpcs(self) -> tuple[RpcModel, ...]:
        return tuple(rpc for rpc in self.rpcs if rpc.public)

    @property
    def internal_rpcs(self) -> tuple[RpcModel, ...]:
        return tuple(rpc for rpc in self.rpcs if not rpc.public)


@dataclass(frozen=True, slots=True)
class FileModel:
    source: str  # the .proto
    module_dir: str  # output directory, e.g. qmtl/gateway/v1
    stem: str  # gateway_service
    package: str
    services: tuple[ServiceModel, ...]
    # The Hidden tables the public routes use, each after the tables it refers to.
    hidden: tuple[HiddenModel, ...] = ()

    def message_types(self) -> list[PyType]:
        found = {
            t.full_name: t
            for service in self.services
            for rpc in service.all_rpcs
            for t in (rpc.request, rpc.response)
        }
        return [found[name] for name in sorted(found)]

    def defined_names(self) -> frozenset[str]:
        """Module-level names the generated modules of this file bind themselves.

        A message class with one of these names is imported qualified (imports_for).
        """
        names: set[str] = set()
        for service in self.services:
            s, snake = service.name, service.python_name
            names |= {f"{s}Handler", f"{s}Base", f"{s}Client", f"Async{s}Client"}
            names |= {f"{s}GrpcAdapter", f"{s}Servicer", f"{s}Stub", snake.upper()}
            names |= {f"add_{snake}_to_server", f"{snake}_public_routes"}
            names |= {f"{snake}_internal_routes", f"create_{snake}_public_app"}
            names.add(f"create_{snake}_internal_app")
            for rpc in service.all_rpcs:
                names.add(rpc.scopes_constant)
                names |= {name for r in rpc.routes for name in (r.constant, r.function)}
        names |= {table.constant for table in self.hidden}
        return frozenset(names)

    def imports(self) -> Imports:
        """The message imports of this file's generated modules, collisions qualified."""
        return imports_for(self.message_types(), taken=TEMPLATE_NAMES | self.defined_names())


_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def snake_case(name: str) -> str:
    """`GetQueuesByTag` -> `get_queues_by_tag`, `GetHTTPRule` -> `get_http_rule`."""
    return _CAMEL.sub("_", name).lower()


def _constant(name: str) -> str:
    return snake_case(name).upper()


def python_module(proto_file: str) -> str:
    """The module protoc's Python generator writes for a .proto file."""
    return proto_file.removesuffix(".proto").replace("-", "_").replace("/", ".") + "_pb2"


def py_type(desc: descriptor.Descriptor) -> PyType:
    package = desc.file.package
    local = desc.full_name.removeprefix(f"{package}.") if package else desc.full_name
    return PyType(python_module(desc.file.name), local, desc.full_name)


def _leaf(path: model.FieldPath) -> ParamModel:
    """The parameter of a leaf field (model.leaf_kind is not None)."""
    fld = path.leaf
    msg = fld.message_type
    repeated = bool(fld.is_repeated)
    kind = model.leaf_kind(fld)
    if kind == "enum":
        parser = f'_qmtl_http.enum_parser("{fld.enum_type.full_name}")'
        slot = "REPEATED" if repeated else "SCALAR"
    elif kind == "scalar":
        parser = f"_qmtl_http.{_SCALAR_PARSERS[fld.type]}"
        slot = "REPEATED" if repeated else "SCALAR"
    elif kind == "well_known":
        parser = f"_qmtl_http.{_LEAF_MESSAGES[msg.full_name]}"
        slot = "REPEATED_MESSAGE" if repeated else "MESSAGE"
    else:
        parser = f"_qmtl_http.{_SCALAR_PARSERS[_WRAPPERS[msg.full_name]]}"
        slot = "REPEATED_WRAPPER" if repeated else "WRAPPER"
    names = (".".join(path.json_path), ".".join(path.proto_path))
    return ParamModel(tuple(dict.fromkeys(names)), path.proto_path, parser, slot)


def _hidden_constant(desc: descriptor.Descriptor) -> str:
    return "_HIDDEN_" + "_".join(_constant(part) for part in desc.full_name.split("."))


class _Builder:
    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        # Per file: the Hidden tables built so far, in dependency order.
        self.hidden: dict[str, HiddenModel] = {}

    def hidden_table(
        self, desc: descriptor.Descriptor, stack: frozenset[str] = frozenset()
    ) -> HiddenModel | None:
        """The table of `desc`, registered in self.hidden; None when it hides nothing.

        A recursive reference is not followed again: only fields of its first occurrence count.
        """
        if desc.full_name in self.hidden:
            return self.hidden[desc.full_name]
        stack = stack | {desc.full_name}
        clear: list[str] = []
        nested: list[tuple[str, str]] = []
        for fld in desc.fields:
            if options.internal_only(self.schema.pool, fld):
                clear.append(fld.name)
                continue
            inner = fld.message_type
            if model.is_map(fld):
                inner = fld.message_type.fields_by_name["value"].message_type
            if inner is None or inner.full_name in stack:
                continue
            table = self.hidden_table(inner, stack)
            if table is not None:
                nested.append((fld.name, table.constant))
        if not clear and not nested:
            return None
        hidden = HiddenModel(_hidden_constant(desc), tuple(clear), tuple(nested))
        self.hidden[desc.full_name] = hidden
        return hidden

    def required(self, fld: FD) -> bool:
        return "REQUIRED" in options.field_behaviors(self.schema.pool, fld)

    def route(self, rpc: model.Rpc, binding: model.Binding, python_name: str) -> RouteModel:
        request = rpc.method.input_type
        bound = binding.path.fields
        # A field bound to the path is always there: the route would not match without it.
        required = [
            RequiredModel(f.name, model.json_name(f))
            for f in request.fields
            if self.required(f) and f.name not in bound
        ]
        # Top-level REQUIRED fields are checked apart above, for every binding.
        required += [
            RequiredModel(".".join(q.path.proto_path), ".".join(q.path.json_path))
            for q in binding.query
            if q.required and len(q.path.fields) > 1
        ]
        suffix = f"_{binding.index}" if binding.index else ""
        return RouteModel(
            constant=f"_{_constant(rpc.name)}{suffix.upper()}",
            # A prefix, so that no rpc name can shadow a module the endpoints use (`auth`).
            function=f"serve_{python_name}{suffix}",
            verb=binding.verb,
            template=binding.template,
            # Starlette names cannot hold dots (`{a.b}` binds `a__b`); `:path` spans slashes.
            starlette_path=binding.path.render("{{{name}{suffix}}}"),
            route_name=rpc.full_name + suffix,
            body=binding.body,
            path_params=tuple(_leaf(path) for path in binding.path_fields),
            query_params=tuple(_leaf(q.path) for q in binding.query),
            required=tuple(required),
            path=binding.path,
        )

    def rpc(self, rpc: model.Rpc, used: set[str]) -> RpcModel:
        method = rpc.method
        access = rpc.access
        table = self.hidden_table(method.output_type) if access.is_public else None
        python_name = snake_case(method.name)
        if keyword.iskeyword(python_name) or python_name in _RESERVED:
            python_name += "_"
        if python_name in used:
            raise GeneratorError(f"{method.full_name}: {python_name} clashes with another rpc")
        used.add(python_name)
        paging = rpc.paging
        return RpcModel(
            name=method.name,
            full_name=method.full_name,
            python_name=python_name,
            comment=self.schema.comment(method.full_name),
            request=py_type(method.input_type),
            response=py_type(method.output_type),
            public=access.is_public,
            scopes=access.scopes,
            allow_anonymous=access.allow_anonymous,
            routes=tuple(self.route(rpc, b, python_name) for b in rpc.bindings),
            public_view=table.constant if table is not None else "",
            idempotent=rpc.idempotent,
            errors=rpc.errors,
            paged=PagingModel(paging.request_field, paging.response_field, paging.items_field)
            if paging is not None
            else None,
        )

    def service(self, service: model.Service) -> ServiceModel:
        used: set[str] = set()
        desc = service.service
        all_rpcs = tuple(self.rpc(rpc, used) for rpc in service.rpcs)
        package = desc.file.package
        parts = package.split(".")
        return ServiceModel(
            name=desc.name,
            full_name=desc.full_name,
            python_name=snake_case(desc.name),
            comment=self.schema.comment(desc.full_name),
            package=package,
            area=parts[1] if len(parts) > 2 and parts[0] == "qmtl" else parts[-1],
            rpcs=tuple(rpc for rpc in all_rpcs if rpc.routes),
            all_rpcs=all_rpcs,
        )


def file_models(schema: Schema, *, include_grpc_only: bool = False) -> list[FileModel]:
    """A model of every target file that declares a service with at least one HTTP rule.

    With `include_grpc_only`, also files and services whose rpcs have none; their
    ServiceModel.all_rpcs then lists every rpc (`rpcs` stays the HTTP-bound ones). Built once
    per schema.
    """
    key = ("httpmodel.file_models", include_grpc_only)
    return list(schema.derived(key, lambda: _file_models(schema, include_grpc_only)))


def _file_models(schema: Schema, include_grpc_only: bool) -> list[FileModel]:
    build = _Builder(schema)
    by_file: dict[str, list[model.Service]] = {}
    for service in model.services(schema, include_grpc_only=include_grpc_only):
        by_file.setdefault(service.service.file.name, []).append(service)
    found: list[FileModel] = []
    for file in schema.targets:
        if file.name not in by_file:
            continue
        build.hidden = {}
        services = tuple(build.service(service) for service in by_file[file.name])
        module_dir, _, base = file.name.rpartition("/")
        found.append(
            FileModel(
                source=file.name,
                module_dir=module_dir,
                stem=base.removesuffix(".proto").replace("-", "_"),
                package=file.package,
                services=services,
                hidden=tuple(build.hidden.values()),
            )
        )
    return found


def client_path_code(route: RouteModel) -> str:
    """The route's path as a Python tuple for the client: literal strings and variables.

    `/v1/gateway/strategies/{strategy_id}/status` renders as
    `("/v1/gateway/strategies/", _qmtl_client.Var("strategy_id"), "/status")`; a `{f=**}`
    variable as `_qmtl_client.Var("f", spans=True)` (its value keeps its slashes).
    """
    assert route.path is not None, "routes built by file_models carry their parsed path"
    parts: list[str] = []
    text = ""
    for segment in route.path.segments:
        text += "/"
        if isinstance(segment, pathtemplate.Variable):
            parts.append(_pystr(text))
            spans = ", spans=True" if segment.spans else ""
            parts.append(f"_qmtl_client.Var({_pystr(segment.field)}{spans})")
            text = ""
        else:
            assert isinstance(segment, pathtemplate.Literal), "require_servable refuses wildcards"
            text += segment.text
    if route.path.verb is not None:
        text += f":{route.path.verb}"
    if text:
        parts.append(_pystr(text))
    return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"


def python_docstring(text: str, indent: str) -> str:
    """`text` as the inside of a triple-quoted docstring at `indent`, escaped."""
    escaped = text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"').strip()
    if escaped.endswith('"'):
        escaped += " "
    lines = escaped.splitlines()
    return "\n".join(lines[:1] + [f"{indent}{line}" if line else "" for line in lines[1:]])


@dataclass(frozen=True, slots=True)
class Imports:
    """The import lines a generated module needs for its message classes, and how to name them.

    Classes are imported by name; when two modules export the same top-level name, those
    modules are imported under an alias instead and their classes are qualified.
    """

    lines: tuple[str, ...]
    names: dict[str, str]  # full message name -> expression in the generated module

    def ref(self, py: PyType) -> str:
        return self.names[py.full_name]


# Module-level names the generated modules' templates import or bind besides the per-service
# ones (FileModel.defined_names); a message class named like one is imported qualified.
# Runtime names are all `_qmtl_<alias>.<Name>` (reserved prefix), so these are the rest.
TEMPLATE_NAMES = frozenset(
    {
        "annotations",
        "Any",
        "Protocol",
        "TYPE_CHECKING",
        "FastAPI",
        "Request",
        "Response",
        "BaseRoute",
        "Route",
        "auth",
        "codec",
        "grpc",
        "Encoding",
        "Operation",
        "SyncServiceClient",
        "AsyncServiceClient",
        "_p",
        "_r",
        "_s",
        "__all__",
    }
    | set(dir(builtins))
)


def imports_for(types: list[PyType], taken: Iterable[str] = TEMPLATE_NAMES) -> Imports:
    """How a generated module imports `types`: by name, qualified where a name is ambiguous.

    A module is imported as `_qmtl_pb_<n>` and its classes qualified when one of its
    top-level names is also exported by another module or is in `taken` (a name the
    generated module binds itself: a message `Operation` must not shadow the client's).
    """
    taken = frozenset(taken)
    top = {(t.module, t.name.split(".", 1)[0]) for t in types}
    owners: dict[str, set[str]] = {}
    for module, name in top:
        owners.setdefault(name, set()).add(module)
    by_module: dict[str, set[str]] = {}
    aliased: set[str] = set()
    for module, name in top:
        if len(owners[name]) > 1 or name in taken:
            aliased.add(module)
        else:
            by_module.setdefault(module, set()).add(name)
    alias = {module: f"_qmtl_pb_{n}" for n, module in enumerate(sorted(aliased))}
    lines: list[str] = []
    for module in sorted(set(by_module) | aliased):
        package, _, leaf = module.rpartition(".")
        # An aliased module's classes are all qualified: importing some by name too would
        # leave those imports unused.
        if module in aliased:
            lines.append(f"from {package} import {leaf} as {alias[module]}")
        else:
            lines.append(import_line(module, sorted(by_module[module])))
    names = {
        t.full_name: f"{alias[t.module]}.{t.name}" if t.module in aliased else t.name for t in types
    }
    return Imports(tuple(lines), names)


def hidden_code(table: HiddenModel, width: int = 100) -> str:
    """The `_qmtl_gen.Hidden(...)` assignment of a table, on one line if it fits."""
    args = []
    if table.clear:
        args.append(f"clear={pytuple(table.clear)}")
    if table.nested:
        pairs = [f"({_pystr(name)}, {constant})" for name, constant in table.nested]
        inner = ", ".join(pairs) + ("," if len(pairs) == 1 else "")
        args.append(f"nested=({inner})")
    line = f"{table.constant} = _qmtl_gen.Hidden({', '.join(args)})"
    if len(line) <= width:
        return line
    return "\n".join(
        [f"{table.constant} = _qmtl_gen.Hidden(", *(f"    {arg}," for arg in args), ")"]
    )


def pytuple(items: tuple[str, ...]) -> str:
    """A tuple literal of strings, as ruff format would write it."""
    quoted = [_pystr(item) for item in items]
    if not quoted:
        return "()"
    if len(quoted) == 1:
        return f"({quoted[0]},)"
    return "(" + ", ".join(quoted) + ")"


def param_code(param: ParamModel, indent: str, width: int = 100) -> str:
    """The `_qmtl_http.Param(...)` of a parameter, on one line if it fits after `indent`."""
    args = [pytuple(param.names), pytuple(param.path), param.parser]
    if param.slot != "SCALAR":
        args.append(f"_qmtl_http.Slot.{param.slot}")
    line = f"_qmtl_http.Param({', '.join(args)}),"
    if len(indent) + len(line) <= width:
        return indent + line
    inner = indent + "    "
    lines = [f"{indent}_qmtl_http.Param(", *(f"{inner}{arg}," for arg in args), f"{indent}),"]
    return "\n".join(lines)


def import_line(module: str, names: list[str], width: int = 100) -> str:
    """`from module import a, b`, parenthesized one name a line when it does not fit."""
    line = f"from {module} import {', '.join(names)}"
    if len(line) <= width:
        return line
    return "\n".join([f"from {module} import (", *(f"    {name}," for name in names), ")"])


def _pystr(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
