"""The HTTP routers: `<file>_http.py` next to the messages of every .proto that has a service.

Each module is data (see qmtl_codegen.httpmodel for the rules and docs/api/HTTP.md for the
contract): per route a `Binding` (how the request message is built from path, query and body)
and an `HttpRoute` row (rpc spec, binding, verb, path, listener), plus per listener a routes
function and an app factory that hand the table to the runtime
(`qmtl.runtime.gen.http_server.routes`), which builds one endpoint closure per route at
startup. The handler Protocol and the rpc specs come from `<file>_handler.py`
(qmtl_codegen.handlers); no per-rpc code is emitted.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import jinja2
from google.protobuf.compiler import plugin_pb2

from qmtl_codegen import contracts_version, handlers, httpmodel
from qmtl_codegen.descriptors import Schema
from qmtl_codegen.plugin import OutputFile, header_line, run
from qmtl_codegen.templating import environment

TEMPLATE = "http_routes_data.py.j2"
KIND = "http-routes"
# The runtime contract (qmtl.runtime.gen.CONTRACT_VERSION) the routers are written for.
CONTRACT_VERSION = handlers.CONTRACT_VERSION


@functools.cache
def template(name: str) -> jinja2.Template:
    return environment().get_template(name)


def handler_import(model: httpmodel.FileModel) -> str:
    """The import of the file's handler module: each service's Protocol and spec."""
    module = f"{model.module_dir.replace('/', '.')}.{model.stem}_handler"
    names = sorted(
        name
        for service in model.services
        for name in (f"{service.name}Handler", service.python_name.upper())
    )
    return httpmodel.import_line(module, names)


def render_file(model: httpmodel.FileModel, template_name: str, kind: str) -> str:
    return template(template_name).render(
        header=header_line(kind, model.source),
        contract=CONTRACT_VERSION,
        contracts=contracts_version.current(),
        services=model.services,
        handler_module=f"{model.stem}_handler",
        handler_import=handler_import(model),
        param_code=httpmodel.param_code,
    )


def generate(request: plugin_pb2.CodeGeneratorRequest) -> Iterator[OutputFile]:
    for model in httpmodel.file_models(Schema.from_request(request)):
        name = f"{model.module_dir}/{model.stem}_http.py"
        yield OutputFile(name, render_file(model, TEMPLATE, KIND))


def main() -> None:
    run(generate)


if __name__ == "__main__":
    main()
