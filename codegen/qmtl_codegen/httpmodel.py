"""What the HTTP routers and clients are generated from: each service's rpcs and their routes.

Everything comes from the rpc's `google.api.http` rule and `(qmtl.api.v1.access)` option, read
through qmtl_codegen.options, and follows docs/api/HTTP.md: public methods are GETs on the
public listener, internal ones keep their rule's verb on the internal listener; path variables
fill request fields, the body (`*` or one field) fills the rest when there is one, and every
remaining leaf field is a query parameter named by its JSON name (the proto name also works).
Nothing is configured per rpc: a new rpc in a schema gets its route and client method.

The leaf-field rules match the OpenAPI generator's (qmtl_codegen.openapi_operations), so the
parameters a router accepts are those the document lists.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass

from google.protobuf import descriptor

from qmtl_codegen import options
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
    parser: str  # expression in the generated module, e.g. `_p.parse_int64`
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
    routes: tuple[RouteModel, ...]
    # The Hidden constant a public route clears its reply with; "" when nothing is hidden.
    public_view: str = ""

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
    rpcs: tuple[RpcModel, ...]

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
            for rpc in service.rpcs
            for t in (rpc.request, rpc.response)
        }
        return [found[name] for name in sorted(found)]


# As in qmtl_codegen.options: `{field}` or `{field=pattern}`, the field possibly dotted.
_VARIABLE = re.compile(r"\{([^{}=]*)(?:=([^{}]*))?\}")


def _starlette_variable(match: re.Match[str]) -> str:
    # Starlette names cannot hold dots; `{a.b}` binds the parameter `a__b`. `**` spans slashes.
    name = match.group(1).replace(".", "__")
    return "{" + name + (":path" if match.group(2) == "**" else "") + "}"


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


def _json_name(fld: FD) -> str:
    name: str = fld.json_name  # type: ignore[attr-defined]
    return name


def _is_map(fld: FD) -> bool:
    entry = fld.message_type
    return bool(fld.is_repeated) and entry is not None and entry.GetOptions().map_entry


def _leaf(fld: FD, proto_path: tuple[str, ...], json_path: tuple[str, ...]) -> ParamModel | None:
    """The parameter of a leaf field, or None if the field is no leaf (a nested message)."""
    msg = fld.message_type
    repeated = bool(fld.is_repeated)
    if msg is None:
        if fld.enum_type is not None:
            parser = f'_p.enum_parser("{fld.enum_type.full_name}")'
        else:
            parser = f"_p.{_SCALAR_PARSERS[fld.type]}"
        slot = "REPEATED" if repeated else "SCALAR"
    elif msg.full_name in _LEAF_MESSAGES:
        parser = f"_p.{_LEAF_MESSAGES[msg.full_name]}"
        slot = "REPEATED_MESSAGE" if repeated else "MESSAGE"
    elif msg.full_name in _WRAPPERS:
        parser = f"_p.{_SCALAR_PARSERS[_WRAPPERS[msg.full_name]]}"
        slot = "REPEATED_WRAPPER" if repeated else "WRAPPER"
    else:
        return None
    names = (".".join(json_path), ".".join(proto_path))
    return ParamModel(tuple(dict.fromkeys(names)), proto_path, parser, slot)


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
            if _is_map(fld):
                inner = fld.message_type.fields_by_name["value"].message_type
            if inner is None or inner.full_name in stack:
                continue
            table = self.hidden_table(inner, stack)
            if table is not None:
                nested.append((fld.name, table.constant))
        if not clear and not nested:
            return None
        model = HiddenModel(_hidden_constant(desc), tuple(clear), tuple(nested))
        self.hidden[desc.full_name] = model
        return model

    def required(self, fld: FD) -> bool:
        return "REQUIRED" in options.field_behaviors(self.schema.pool, fld)

    def field_at(self, desc: descriptor.Descriptor, dotted: str, where: str) -> FD:
        current: descriptor.Descriptor | None = desc
        fld: FD | None = None
        for part in dotted.split("."):
            fld = current.fields_by_name.get(part) if current is not None else None
            if fld is None:
                raise GeneratorError(f"{where}: {desc.full_name} has no field {dotted}")
            current = fld.message_type
        assert fld is not None
        return fld

    def query(
        self,
        desc: descriptor.Descriptor,
        proto_prefix: tuple[str, ...],
        json_prefix: tuple[str, ...],
        bound: set[str],
        seen: frozenset[str],
        required_chain: bool,
        required: list[RequiredModel],
    ) -> list[ParamModel]:
        found: list[ParamModel] = []
        seen = seen | {desc.full_name}
        for fld in desc.fields:
            proto_path = (*proto_prefix, fld.name)
            json_path = (*json_prefix, _json_name(fld))
            if ".".join(proto_path) in bound or _is_map(fld):
                continue
            is_required = required_chain and self.required(fld)
            param = _leaf(fld, proto_path, json_path)
            if param is not None:
                found.append(param)
                if is_required and proto_prefix:
                    # Top-level REQUIRED fields are checked apart, for every binding.
                    required.append(RequiredModel(".".join(proto_path), ".".join(json_path)))
                continue
            msg = fld.message_type
            assert msg is not None
            # Free-form well-known types, repeated messages and recursion have no query form.
            if msg.full_name.startswith(WELL_KNOWN) or fld.is_repeated or msg.full_name in seen:
                continue
            found += self.query(msg, proto_path, json_path, bound, seen, is_required, required)
        return found

    def route(
        self,
        method: descriptor.MethodDescriptor,
        binding: options.HttpBinding,
        index: int,
        public: bool,
        python_name: str,
    ) -> RouteModel:
        where = method.full_name
        if public and binding.method != "GET":
            raise GeneratorError(f"{where}: public methods are served as GET only")
        if binding.method not in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            raise GeneratorError(f"{where}: HTTP method {binding.method} is not supported")
        if binding.method == "GET" and binding.body:
            raise GeneratorError(f"{where}: a GET binding cannot carry a body")
        if binding.response_body:
            raise GeneratorError(f"{where}: response_body is not supported")
        request = method.input_type
        if binding.body not in ("", "*"):
            body_field = self.field_at(request, binding.body, where)
            if "." in binding.body or body_field.message_type is None or body_field.is_repeated:
                raise GeneratorError(
                    f"{where}: body {binding.body} must name a singular message field"
                )
        path_params: list[ParamModel] = []
        for variable in options.path_variables(binding.path):
            fld = self.field_at(request, variable.field, where)
            proto_path = tuple(variable.field.split("."))
            json_path = tuple(
                _json_name(self.field_at(request, ".".join(proto_path[: i + 1]), where))
                for i in range(len(proto_path))
            )
            param = _leaf(fld, proto_path, json_path)
            if param is None or fld.is_repeated:
                raise GeneratorError(f"{where}: path variable {variable.field} must be a scalar")
            if variable.pattern not in ("*", "**"):
                raise GeneratorError(
                    f"{where}: path pattern {variable.pattern} is not supported (only * and **)"
                )
            path_params.append(param)
        # A field bound to the path is always there: the route would not match without it.
        required = [
            RequiredModel(f.name, _json_name(f))
            for f in request.fields
            if self.required(f) and f.name not in binding.path_parameters
        ]
        query: list[ParamModel] = []
        if binding.body != "*":
            bound = {*binding.path_parameters, binding.body} - {""}
            query = self.query(request, (), (), bound, frozenset(), True, required)
        suffix = f"_{index}" if index else ""
        return RouteModel(
            constant=f"_{_constant(method.name)}{suffix.upper()}",
            # A prefix, so that no rpc name can shadow a module the endpoints use (`auth`).
            function=f"serve_{python_name}{suffix}",
            verb=binding.method,
            template=binding.path,
            starlette_path=_VARIABLE.sub(_starlette_variable, binding.path),
            route_name=method.full_name + suffix,
            body=binding.body,
            path_params=tuple(path_params),
            query_params=tuple(query),
            required=tuple(required),
        )

    def rpc(self, method: descriptor.MethodDescriptor, used: set[str]) -> RpcModel | None:
        rule = options.http_rule(self.schema.pool, method)
        if rule is None:
            return None  # gRPC only
        access = options.require_access(self.schema.pool, method)
        if method.client_streaming or method.server_streaming:
            raise GeneratorError(f"{method.full_name}: streaming rpcs have no HTTP form")
        table = self.hidden_table(method.output_type) if access.is_public else None
        python_name = snake_case(method.name)
        if keyword.iskeyword(python_name) or python_name in _RESERVED:
            python_name += "_"
        if python_name in used:
            raise GeneratorError(f"{method.full_name}: {python_name} clashes with another rpc")
        used.add(python_name)
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
            routes=tuple(
                self.route(method, binding, index, access.is_public, python_name)
                for index, binding in enumerate(rule.bindings)
            ),
            public_view=table.constant if table is not None else "",
        )

    def service(self, service: descriptor.ServiceDescriptor) -> ServiceModel:
        used: set[str] = set()
        rpcs = [self.rpc(method, used) for method in service.methods]
        package = service.file.package
        parts = package.split(".")
        return ServiceModel(
            name=service.name,
            full_name=service.full_name,
            python_name=snake_case(service.name),
            comment=self.schema.comment(service.full_name),
            package=package,
            area=parts[1] if len(parts) > 2 and parts[0] == "qmtl" else parts[-1],
            rpcs=tuple(rpc for rpc in rpcs if rpc is not None),
        )


def file_models(schema: Schema) -> list[FileModel]:
    """A model of every target file that declares a service with at least one HTTP rule."""
    build = _Builder(schema)
    found: list[FileModel] = []
    for file in schema.targets:
        build.hidden = {}
        # The file's proto keeps declaration order; services_by_name does not promise it.
        names = [s.name for s in schema.protos[file.name].service]
        services = [build.service(file.services_by_name[name]) for name in names]
        services = [s for s in services if s.rpcs]
        if not services:
            continue
        module_dir, _, base = file.name.rpartition("/")
        found.append(
            FileModel(
                source=file.name,
                module_dir=module_dir,
                stem=base.removesuffix(".proto").replace("-", "_"),
                package=file.package,
                services=tuple(services),
                hidden=tuple(build.hidden.values()),
            )
        )
    return found


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


def imports_for(types: list[PyType]) -> Imports:
    top = {(t.module, t.name.split(".", 1)[0]) for t in types}
    owners: dict[str, set[str]] = {}
    for module, name in top:
        owners.setdefault(name, set()).add(module)
    by_module: dict[str, set[str]] = {}
    aliased: set[str] = set()
    for module, name in top:
        if len(owners[name]) > 1:
            aliased.add(module)
        else:
            by_module.setdefault(module, set()).add(name)
    lines: list[str] = []
    for module in sorted(set(by_module) | aliased):
        package, _, leaf = module.rpartition(".")
        if module in aliased:
            lines.append(f"from {package} import {leaf} as {_alias(module)}")
        if module in by_module:
            lines.append(import_line(module, sorted(by_module[module])))
    names = {
        t.full_name: f"{_alias(t.module)}.{t.name}" if t.module in aliased else t.name
        for t in types
    }
    return Imports(tuple(lines), names)


def _alias(module: str) -> str:
    return "_" + module.replace(".", "_")


def hidden_code(table: HiddenModel, width: int = 100) -> str:
    """The `_r.Hidden(...)` assignment of a table, on one line if it fits."""
    args = []
    if table.clear:
        args.append(f"clear={pytuple(table.clear)}")
    if table.nested:
        pairs = [f"({_pystr(name)}, {constant})" for name, constant in table.nested]
        inner = ", ".join(pairs) + ("," if len(pairs) == 1 else "")
        args.append(f"nested=({inner})")
    line = f"{table.constant} = _r.Hidden({', '.join(args)})"
    if len(line) <= width:
        return line
    return "\n".join([f"{table.constant} = _r.Hidden(", *(f"    {arg}," for arg in args), ")"])


def pytuple(items: tuple[str, ...]) -> str:
    """A tuple literal of strings, as ruff format would write it."""
    quoted = [_pystr(item) for item in items]
    if not quoted:
        return "()"
    if len(quoted) == 1:
        return f"({quoted[0]},)"
    return "(" + ", ".join(quoted) + ")"


def param_code(param: ParamModel, indent: str, width: int = 100) -> str:
    """The `_p.Param(...)` expression of a parameter, on one line if it fits after `indent`."""
    args = [pytuple(param.names), pytuple(param.path), param.parser]
    if param.slot != "SCALAR":
        args.append(f"_p.Slot.{param.slot}")
    line = f"_p.Param({', '.join(args)}),"
    if len(indent) + len(line) <= width:
        return indent + line
    inner = indent + "    "
    return "\n".join([f"{indent}_p.Param(", *(f"{inner}{arg}," for arg in args), f"{indent}),"])


def import_line(module: str, names: list[str], width: int = 100) -> str:
    """`from module import a, b`, parenthesized one name a line when it does not fit."""
    line = f"from {module} import {', '.join(names)}"
    if len(line) <= width:
        return line
    return "\n".join([f"from {module} import (", *(f"    {name}," for name in names), ")"])


def _pystr(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
