"""The gRPC adapters: `<file>_grpc.py` next to the messages of every .proto that has a service.

Per service, a `<Service>GrpcAdapter` subclassing protoc's `<Service>Servicer` whose every
method (gRPC-only rpcs included) delegates to `qmtl.runtime.gen.grpc_server.unary`, built once
from the rpc's RpcSpec in `<file>_handler.py`; and `add_<service>_to_server(server, handler,
verifier, *, interceptors=())`. The behaviour (access rules, deadlines, error mapping) is the
runtime's; docs/api/GRPC.md states it. Streaming rpcs are refused by the model
(qmtl_codegen.api.model): the handler contract is unary.
"""

from __future__ import annotations

from collections.abc import Iterator

from google.protobuf.compiler import plugin_pb2

from qmtl_codegen import contracts_version, httpmodel
from qmtl_codegen.descriptors import Schema
from qmtl_codegen.plugin import OutputFile, header_line, run
from qmtl_codegen.templating import render

TEMPLATE = "grpc_adapter.py.j2"
KIND = "grpc-adapter"
# The runtime contract (qmtl.runtime.gen.CONTRACT_VERSION) the template is written against.
CONTRACT_VERSION = 1


def _constant(service_name: str) -> str:
    """The ServiceSpec constant of `<file>_handler.py`: `GatewayService` -> `GATEWAY_SERVICE`."""
    return httpmodel.snake_case(service_name).upper()


def render_file(model: httpmodel.FileModel) -> str:
    # Names the module binds itself (the adapter, add_..._to_server) qualify a colliding message.
    imports = model.imports()
    # protoc names Python modules after the file path, not the proto package.
    module = f"{model.module_dir.replace('/', '.')}.{model.stem}"
    # The handler and servicer names are among the names a colliding message yields to
    # (FileModel.defined_names), so they are imported as they are.
    handler_names = [n for s in model.services for n in (_constant(s.name), f"{s.name}Handler")]
    servicer_names = [
        n for s in model.services for n in (f"{s.name}Servicer", f"add_{s.name}Servicer_to_server")
    ]
    return render(
        TEMPLATE,
        header=header_line(KIND, model.source),
        source=model.source,
        stem=model.stem,
        contract=CONTRACT_VERSION,
        contracts=contracts_version.current(),
        services=model.services,
        imports=imports.lines,
        ref=imports.ref,
        handler_import=httpmodel.import_line(f"{module}_handler", sorted(handler_names)),
        servicer_import=httpmodel.import_line(f"{module}_pb2_grpc", sorted(servicer_names)),
        constant=_constant,
    )


def generate(request: plugin_pb2.CodeGeneratorRequest) -> Iterator[OutputFile]:
    schema = Schema.from_request(request)
    for model in httpmodel.file_models(schema, include_grpc_only=True):
        yield OutputFile(f"{model.module_dir}/{model.stem}_grpc.py", render_file(model))


def main() -> None:
    run(generate)


if __name__ == "__main__":
    main()
