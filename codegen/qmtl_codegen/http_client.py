"""The typed HTTP clients: `<file>_client.py` next to the messages of every .proto with a service.

Each module holds, per service, `<Service>Client` (sync) and `Async<Service>Client` over httpx,
one method per rpc. The request is laid out by the same rules the routers read it with
(qmtl_codegen.httpmodel, docs/api/HTTP.md); the runtime's client engine does the exchange.
"""

from __future__ import annotations

from collections.abc import Iterator

from google.protobuf.compiler import plugin_pb2

from qmtl_codegen import httpmodel
from qmtl_codegen.descriptors import Schema
from qmtl_codegen.http_routes import render_file
from qmtl_codegen.plugin import OutputFile, run

TEMPLATE = "http_client.py.j2"
KIND = "http-client"


def generate(request: plugin_pb2.CodeGeneratorRequest) -> Iterator[OutputFile]:
    for model in httpmodel.file_models(Schema.from_request(request)):
        name = f"{model.module_dir}/{model.stem}_client.py"
        yield OutputFile(name, render_file(model, TEMPLATE, KIND))


def main() -> None:
    run(generate)


if __name__ == "__main__":
    main()
