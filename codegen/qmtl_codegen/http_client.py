"""The typed HTTP clients: `<file>_client.py` next to the messages of every .proto with a service.

Each module holds, per service, `<Service>Client` (sync) and `Async<Service>Client` over httpx,
one method per HTTP-bound rpc with a per-call `timeout=` and `retry=`, plus `iter_<rpc>` for
list rpcs (a `qmtl.common.v1.PageRequest` in the request and a `PageInfo` in the response).
The request is laid out by the same rules the routers read it with (qmtl_codegen.httpmodel,
docs/api/HTTP.md); the runtime's client engine does the exchange, reached only through
`qmtl.runtime.gen.http_client` (the versioned runtime contract, docs/api/CLIENT.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from google.protobuf import descriptor
from google.protobuf.compiler import plugin_pb2

from qmtl_codegen import contracts_version, httpmodel
from qmtl_codegen.descriptors import Schema
from qmtl_codegen.plugin import GeneratorError, OutputFile, header_line, run
from qmtl_codegen.templating import render

TEMPLATE = "http_client.py.j2"
KIND = "http-client"
# The runtime contract (qmtl.runtime.gen.CONTRACT_VERSION) the generated modules target.
CONTRACT_VERSION = 1
_SCALAR_TYPES = {
    descriptor.FieldDescriptor.CPPTYPE_STRING: "str",
    descriptor.FieldDescriptor.CPPTYPE_BOOL: "bool",
    descriptor.FieldDescriptor.CPPTYPE_DOUBLE: "float",
    descriptor.FieldDescriptor.CPPTYPE_FLOAT: "float",
}


@dataclass(frozen=True, slots=True)
class ClientRpc:
    """What one client method is generated from: the rpc's first binding, as Operation data."""

    rpc: httpmodel.RpcModel
    route: httpmodel.RouteModel
    path: str  # python tuple expression of the path parts (httpmodel.client_path_code)
    paging: httpmodel.PagingModel | None
    item: httpmodel.PyType | None  # the class of a list rpc's items, when they are messages
    scalar: str  # their Python type when they are not


def _items(
    schema: Schema, rpc: httpmodel.RpcModel, paging: httpmodel.PagingModel
) -> tuple[httpmodel.PyType | None, str]:
    """The Python type of a list rpc's items: a message class, or a scalar type's name."""
    response = schema.pool.FindMessageTypeByName(rpc.response.full_name)  # type: ignore[no-untyped-call]
    items = response.fields_by_name[paging.items_field]
    if items.message_type is not None:
        return httpmodel.py_type(items.message_type), ""
    if items.type == descriptor.FieldDescriptor.TYPE_BYTES:
        return None, "bytes"
    return None, _SCALAR_TYPES.get(items.cpp_type, "int")


def client_rpcs(schema: Schema, service: httpmodel.ServiceModel) -> tuple[ClientRpc, ...]:
    names = {rpc.python_name for rpc in service.rpcs}
    found = []
    for rpc in service.rpcs:
        route = rpc.routes[0]
        item, scalar = None, ""
        if rpc.paged is not None:
            if f"iter_{rpc.python_name}" in names:
                raise GeneratorError(
                    f"{rpc.full_name}: its page iterator iter_{rpc.python_name} "
                    "clashes with another rpc's client method"
                )
            item, scalar = _items(schema, rpc, rpc.paged)
        found.append(
            ClientRpc(rpc, route, httpmodel.client_path_code(route), rpc.paged, item, scalar)
        )
    return tuple(found)


def operation_head(constant: str, request: str, response: str, width: int = 100) -> str:
    """`_X: _qmtl_client.Operation[Req, Resp] = _qmtl_client.Operation(`, wrapped as ruff would."""
    line = f"{constant}: _qmtl_client.Operation[{request}, {response}] = _qmtl_client.Operation("
    if len(line) <= width:
        return line
    return "\n".join(
        [
            f"{constant}: _qmtl_client.Operation[",
            f"    {request}, {response}",
            "] = _qmtl_client.Operation(",
        ]
    )


def render_file(schema: Schema, model: httpmodel.FileModel) -> str:
    services = [(service, client_rpcs(schema, service)) for service in model.services]
    items = [call.item for _, calls in services for call in calls if call.item is not None]
    taken = httpmodel.TEMPLATE_NAMES | model.defined_names()
    imports = httpmodel.imports_for(model.message_types() + items, taken=taken)
    return render(
        TEMPLATE,
        header=header_line(KIND, model.source),
        contract_version=CONTRACT_VERSION,
        contracts=contracts_version.current(),
        services=services,
        paged=any(call.paging is not None for _, calls in services for call in calls),
        imports=imports.lines,
        ref=imports.ref,
        operation_head=operation_head,
        docstring=httpmodel.python_docstring,
    )


def generate(request: plugin_pb2.CodeGeneratorRequest) -> Iterator[OutputFile]:
    schema = Schema.from_request(request)
    for model in httpmodel.file_models(schema):
        name = f"{model.module_dir}/{model.stem}_client.py"
        yield OutputFile(name, render_file(schema, model))


def main() -> None:
    run(generate)


if __name__ == "__main__":
    main()
