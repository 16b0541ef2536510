"""Packaging for the generated Python tree, so `pip install ./generated/python` works alone.

The distribution ("qmtl-contracts" by default) declares only what generated code imports:
the protobuf runtime at least as new as the one the generators ran with (generated modules
refuse an older runtime), grpcio at least as new as grpcio-tools (the gRPC stubs check it) and
googleapis-common-protos for the google.api annotations the schemas import.
The HTTP routers and typed clients (`*_http.py`, `*_client.py`) also need FastAPI and httpx,
declared as the optional extra `http`, and the qmtl-nextgen runtime (`qmtl.runtime`), which
is not on an index; message modules never import them, so the messages install alone.
Versions come from this environment, which constraints.txt pins, so the output is
reproducible. `qmtl` stays a namespace package (no __init__.py) shared with the services.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib import metadata

from google.protobuf.compiler import plugin_pb2

from qmtl_codegen.plugin import OutputFile, header_line, parse_parameter, run

PYPROJECT = """\
# {header}
[build-system]
requires = ["hatchling==1.27.0"]
build-backend = "hatchling.build"

[project]
name = "{name}"
version = "{version}"
description = "QMTL NextGen contracts: protobuf messages, gRPC stubs and their type stubs"
requires-python = ">=3.11"
dependencies = [
  "protobuf>={protobuf},<{protobuf_next_major}",
  "grpcio>={grpcio}",
  "googleapis-common-protos>={googleapis}",
]

[project.optional-dependencies]
# For the *_http.py routers and *_client.py clients, which also need the qmtl-nextgen runtime
# (qmtl.runtime: codec, errors, auth) installed beside this package.
http = [
  "fastapi>={fastapi}",
  "httpx>={httpx}",
]

[tool.hatch.build.targets.wheel]
packages = ["qmtl"]
"""


def generate(request: plugin_pb2.CodeGeneratorRequest) -> Iterator[OutputFile]:
    options = parse_parameter(request.parameter)
    protobuf = metadata.version("protobuf")
    yield OutputFile(
        "pyproject.toml",
        PYPROJECT.format(
            header=header_line("package", "schemas/"),
            name=options.get("name", "qmtl-contracts"),
            version=options.get("version", "0.1.0"),
            protobuf=protobuf,
            protobuf_next_major=int(protobuf.split(".")[0]) + 1,
            grpcio=metadata.version("grpcio-tools"),
            googleapis=metadata.version("googleapis-common-protos"),
            fastapi=metadata.version("fastapi"),
            httpx=metadata.version("httpx"),
        ),
    )
    # PEP 561 marker: the .pyi stubs next to each module are the package's types.
    yield OutputFile("qmtl/py.typed", f"# {header_line('package', 'schemas/')}\n")


def main() -> None:
    run(generate)


if __name__ == "__main__":
    main()
