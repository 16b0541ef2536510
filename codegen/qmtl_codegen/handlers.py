"""The handler modules: `<file>_handler.py` next to the messages of every .proto with a service.

Each module holds, per service, the transport-neutral handler Protocol over EVERY rpc (HTTP-bound
and gRPC-only alike: `async def get_strategy(self, request, ctx) -> Response`), a `<Service>Base`
whose every method answers E_UNIMPLEMENTED, and the service's `ServiceSpec`: the data (names,
types, access, idempotency, public view, declared errors) both transports build their routes
from (docs/api/HANDLERS.md). It imports the runtime contract `qmtl.runtime.gen` only. Every fact
comes from the one API model (qmtl_codegen.api.model, through qmtl_codegen.httpmodel's view).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import jinja2
from google.protobuf.compiler import plugin_pb2

from qmtl_codegen import contracts_version, httpmodel
from qmtl_codegen.descriptors import Schema
from qmtl_codegen.plugin import OutputFile, header_line, run
from qmtl_codegen.templating import environment

TEMPLATE = "handlers.py.j2"
KIND = "handlers"
# The runtime contract (qmtl.runtime.gen.CONTRACT_VERSION) the generated modules are written for.
CONTRACT_VERSION = 1


@functools.cache
def template() -> jinja2.Template:
    return environment().get_template(TEMPLATE)


def render_file(model: httpmodel.FileModel) -> str:
    imports = model.imports()
    return template().render(
        header=header_line(KIND, model.source),
        contract=CONTRACT_VERSION,
        contracts=contracts_version.current(),
        services=model.services,
        hidden=model.hidden,
        hidden_code=httpmodel.hidden_code,
        imports=imports.lines,
        ref=imports.ref,
        pytuple=httpmodel.pytuple,
        docstring=httpmodel.python_docstring,
    )


def generate(request: plugin_pb2.CodeGeneratorRequest) -> Iterator[OutputFile]:
    for model in httpmodel.file_models(Schema.from_request(request), include_grpc_only=True):
        name = f"{model.module_dir}/{model.stem}_handler.py"
        yield OutputFile(name, render_file(model))


def main() -> None:
    run(generate)


if __name__ == "__main__":
    main()
