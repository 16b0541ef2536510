"""Runs grpc-gateway's protoc-gen-openapiv2 on schemas that declare no `go_package`.

protoc-gen-openapiv2 is a Go plugin and refuses any file without a Go import path. Our schemas
declare none: no Go code is generated, and buf's managed mode would set it for every plugin,
changing the descriptors the Python generators embed. So this bridge gives each such file a
placeholder `go_package` derived from its package (it only names Go imports, which the
Swagger output never shows) and pipes the request to the plugin named by `plugin=`; every
other option goes to the plugin unchanged. Each JSON document it writes gets our DO-NOT-EDIT
marker as an `x-qmtl-generated` extension (Swagger 2.0 allows `x-` keys at the top level, and
JSON has no comments); the rest of its response passes through as it is.

    opt: [plugin=.tools/bin/protoc-gen-openapiv2, allow_merge=false, output_format=json]

It runs as a plugin of its own (`python -m qmtl_codegen.openapiv2_bridge`) or as a step of a
bundle (`docs/openapi/swagger qmtl_codegen.openapiv2_bridge plugin=... allow_merge=false`).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.compiler import plugin_pb2

from qmtl_codegen.jsontext import dump
from qmtl_codegen.plugin import (
    GeneratorError,
    OutputFile,
    header_line,
    parse_options,
    passthrough_parameter,
)

GO_PACKAGE_BASE = "qmtl.invalid/go"


@dataclass(frozen=True, slots=True)
class BridgeOptions:
    plugin: str = ""  # path of protoc-gen-openapiv2
    # Every other option is protoc-gen-openapiv2's own.
    passthrough: tuple[tuple[str, str], ...] = ()


def prepare(request: plugin_pb2.CodeGeneratorRequest) -> tuple[str, bytes]:
    """The plugin to run and the request it gets: placeholder Go paths, own options removed."""
    options = parse_options("openapiv2_bridge", request.parameter, BridgeOptions)
    plugin = options.plugin
    request.parameter = passthrough_parameter(options.passthrough)
    for proto in request.proto_file:
        if not proto.options.go_package:
            proto.options.go_package = f"{GO_PACKAGE_BASE}/{proto.package.replace('.', '/')}"
    return plugin, request.SerializeToString()


def stamp(response: plugin_pb2.CodeGeneratorResponse, generator: str) -> None:
    """Puts the DO-NOT-EDIT marker, naming source and generator, first in each JSON document."""
    for file in response.file:
        if not file.name.endswith(".json"):
            continue
        document = json.loads(file.content)
        source = file.name.removesuffix(".swagger.json") + ".proto"
        marked = {"x-qmtl-generated": header_line(generator, source), **document}
        file.content = dump(marked)


def _grpc_gateway_version() -> str:
    # The Go binary does not report its version; setup.sh records the one it installed.
    recorded = Path(".tools/bin/.protoc-gen-openapiv2.version")
    return recorded.read_text().strip() if recorded.is_file() else "unknown version"


def run_plugin(request: plugin_pb2.CodeGeneratorRequest) -> plugin_pb2.CodeGeneratorResponse:
    """The plugin's response to `request` (which `prepare` changes), stamped unless an error."""
    plugin, payload = prepare(request)
    if not plugin or not Path(plugin).is_file():
        raise GeneratorError(f"openapiv2_bridge: plugin {plugin!r} is not a file")
    result = subprocess.run([plugin], input=payload, capture_output=True, check=False)
    if result.returncode != 0:
        stderr = result.stderr.decode(errors="replace").strip()
        raise GeneratorError(f"{plugin} failed: {stderr}")
    response = plugin_pb2.CodeGeneratorResponse.FromString(result.stdout)
    if not response.error:
        stamp(response, f"protoc-gen-openapiv2 {_grpc_gateway_version()} via openapiv2_bridge")
    return response


def generate(request: plugin_pb2.CodeGeneratorRequest) -> Iterator[OutputFile]:
    """The bridge as a step of a bundle (qmtl_codegen.bundle), which spares it a Python start.

    The bundle's other generators share `request`, so the placeholder Go paths go on a copy.
    """
    own = plugin_pb2.CodeGeneratorRequest()
    own.CopyFrom(request)
    response = run_plugin(own)
    if response.error:
        raise GeneratorError(response.error)
    for file in response.file:
        yield OutputFile(file.name, file.content)


def main() -> None:
    request = plugin_pb2.CodeGeneratorRequest.FromString(sys.stdin.buffer.read())
    try:
        response = run_plugin(request)
    except GeneratorError as exc:
        response = plugin_pb2.CodeGeneratorResponse(error=str(exc))
    sys.stdout.buffer.write(response.SerializeToString())


if __name__ == "__main__":
    main()
