"""Packaging for the generated Python tree, so it installs as the `qmtl-contracts` package.

The distribution ("qmtl-contracts" by default) sits at the top of a one-way chain:
qmtl-contracts -> qmtl-runtime-core (runtime/pyproject.toml) -> adapters, chosen by extras.
It declares the protobuf runtime at least as new as the one the generators ran with (generated
modules refuse an older runtime), googleapis-common-protos for the google.api annotations the
schemas import, and the runtime core whose generated-code contract (qmtl.runtime.gen,
CONTRACT_VERSION) the `*_handler.py`, `*_http.py`, `*_grpc.py` and `*_client.py` modules import.
Extras pick the adapters: `client` (httpx: the typed clients), `server` (FastAPI, Starlette,
uvicorn), `grpc` (grpcio, at least as new as grpcio-tools, which the gRPC stubs check).
The messages the runtime itself reads (qmtl.api.v1, qmtl.common.v1) ship in the runtime core,
so they are left out here. Versions come from this environment, which constraints.txt pins, so
the output is reproducible. `qmtl` stays a namespace package (no __init__.py).

The package's version is the contracts version (`version_file`, schemas/VERSION by default),
which is also written as data into `qmtl/common/contracts_version.py`: it ships with the
runtime core with the rest of qmtl.common, and qmtl.runtime.contracts_version sends it on
the wire (docs/api/VERSIONS.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata

from google.protobuf.compiler import plugin_pb2

from qmtl_codegen import contracts_version
from qmtl_codegen.plugin import OutputFile, header_line, parse_options, run

# The qmtl-runtime-core releases that provide the runtime contract the generators target.
RUNTIME_REQUIREMENT = ">=0.1.0,<0.2"
# Packages of the generated tree that qmtl-runtime-core ships instead (runtime/pyproject.toml).
RUNTIME_OWNED = ("qmtl/api", "qmtl/common")

PYPROJECT = """\
# {header}
[build-system]
requires = ["hatchling==1.27.0"]
build-backend = "hatchling.build"

[project]
name = "{name}"
version = "{version}"
description = "QMTL NextGen contracts: protobuf messages, typed clients, handler and route modules"
requires-python = ">=3.11"
dependencies = [
  "protobuf>={protobuf},<{protobuf_next_major}",
  "googleapis-common-protos>={googleapis}",
  "qmtl-runtime-core{runtime}",
]

[project.optional-dependencies]
# The typed HTTP clients (*_client.py): `pip install "qmtl-contracts[client]"`.
client = ["qmtl-runtime-core[client]{runtime}"]
# The HTTP listeners (*_http.py) and the handler modules' servers.
server = ["qmtl-runtime-core[server]{runtime}"]
# The gRPC stubs and adapters (*_pb2_grpc.py, *_grpc.py).
grpc = [
  "qmtl-runtime-core[grpc]{runtime}",
  "grpcio>={grpcio}",
]
# Former name of client + server together.
http = ["qmtl-runtime-core[client,server]{runtime}"]

[tool.hatch.build.targets.wheel]
packages = ["qmtl"]
# Shipped by qmtl-runtime-core, which every module here depends on.
exclude = [{runtime_owned}]
"""

# Inside qmtl.common, which the runtime core ships (RUNTIME_OWNED), so the runtime knows the
# version it speaks without depending on qmtl-contracts.
CONTRACTS_MODULE = "qmtl/common/contracts_version.py"
CONTRACTS_MODULE_SOURCE = """\
# {header}
\"\"\"The qmtl contracts version (schemas/VERSION) these modules were generated from.

qmtl.runtime.contracts_version sends it in the `qmtl-contracts-version` header and checks
peers against it (docs/api/VERSIONS.md).
\"\"\"

CONTRACTS_VERSION = "{version}"
"""


@dataclass(frozen=True, slots=True)
class PackageOptions:
    name: str = "qmtl-contracts"
    # The contracts version, relative to buf's working directory (the repository root).
    version_file: str = "schemas/VERSION"


def generate(request: plugin_pb2.CodeGeneratorRequest) -> Iterator[OutputFile]:
    options = parse_options("package", request.parameter, PackageOptions)
    protobuf = metadata.version("protobuf")
    version = contracts_version.current(options.version_file)
    yield OutputFile(
        "pyproject.toml",
        PYPROJECT.format(
            header=header_line("package", "schemas/"),
            name=options.name,
            version=version,
            protobuf=protobuf,
            protobuf_next_major=int(protobuf.split(".")[0]) + 1,
            grpcio=metadata.version("grpcio-tools"),
            googleapis=metadata.version("googleapis-common-protos"),
            runtime=RUNTIME_REQUIREMENT,
            runtime_owned=", ".join(f'"{path}"' for path in RUNTIME_OWNED),
        ),
    )
    # PEP 561 marker: the .pyi stubs next to each module are the package's types.
    yield OutputFile("qmtl/py.typed", f"# {header_line('package', 'schemas/')}\n")
    yield OutputFile(
        CONTRACTS_MODULE,
        CONTRACTS_MODULE_SOURCE.format(
            header=header_line("package", options.version_file), version=version
        ),
    )


def main() -> None:
    run(generate)


if __name__ == "__main__":
    main()
