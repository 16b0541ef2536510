"""The HTTP routers: `<file>_http.py` next to the messages of every .proto that has a service.

Each module holds, per service, the handler Protocol, the public and internal Starlette routes
and an app factory per listener (see qmtl_codegen.httpmodel for the rules and
docs/api/HTTP.md for the contract). The endpoints are emitted as plain
`async def endpoint(request) -> Response` functions because FastAPI's per-request dependency
solving and validation would cost most of a route's time, while the generator already knows
every type.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import jinja2
from google.protobuf.compiler import plugin_pb2

from qmtl_codegen import httpmodel
from qmtl_codegen.descriptors import Schema
from qmtl_codegen.plugin import OutputFile, header_line, run
from qmtl_codegen.templating import environment

TEMPLATE = "http_routes.py.j2"
KIND = "http-routes"


@functools.cache
def template(name: str) -> jinja2.Template:
    return environment().get_template(name)


def render_file(model: httpmodel.FileModel, template_name: str, kind: str) -> str:
    imports = httpmodel.imports_for(model.message_types())
    return template(template_name).render(
        header=header_line(kind, model.source),
        services=model.services,
        hidden=model.hidden,
        hidden_code=httpmodel.hidden_code,
        imports=imports.lines,
        ref=imports.ref,
        pytuple=httpmodel.pytuple,
        param_code=httpmodel.param_code,
        docstring=httpmodel.python_docstring,
    )


def generate(request: plugin_pb2.CodeGeneratorRequest) -> Iterator[OutputFile]:
    for model in httpmodel.file_models(Schema.from_request(request)):
        name = f"{model.module_dir}/{model.stem}_http.py"
        yield OutputFile(name, render_file(model, TEMPLATE, KIND))


def main() -> None:
    run(generate)


if __name__ == "__main__":
    main()
