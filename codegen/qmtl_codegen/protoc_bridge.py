"""Runs protoc's Python generators under buf, stamping every file with our DO-NOT-EDIT header.

buf runs only protoc's own generators as `protoc_builtin`, and grpcio-tools ships the gRPC
Python generator inside its protoc instead of as a `protoc-gen-grpc_python` executable. This
plugin hands the request's descriptors to `grpc_tools.protoc` through a descriptor set, with
the generator chosen by `lang=` (python, grpc_python, or a plugin executable such as
protoc-gen-mypy given with `plugin=`), then prefixes each output with a header naming the
source .proto and the generator. Other options pass through to the generator.

    opt: [lang=python]
    opt: [lang=grpc_python]
    opt: [lang=mypy, plugin=protoc-gen-mypy, quiet]
    opt: [lang=grpc_python, services_only]   # skip files that declare no service
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2

from qmtl_codegen.plugin import (
    GeneratorError,
    OutputFile,
    header_line,
    parse_options,
    passthrough_parameter,
    run,
)


@dataclass(frozen=True, slots=True)
class BridgeOptions:
    lang: str  # protoc's --<lang>_out
    plugin: str = ""  # console script of a protoc plugin in this venv, e.g. protoc-gen-mypy
    services_only: bool = False  # only the files that declare a service
    # Every other option is the wrapped generator's (e.g. mypy's `quiet`).
    passthrough: tuple[tuple[str, str], ...] = ()


_SUFFIX = re.compile(r"_pb2(_grpc)?\.pyi?$")


def source_of(output_name: str) -> str:
    """The .proto a generated Python module comes from: a/b/x_pb2_grpc.py -> a/b/x.proto."""
    return _SUFFIX.sub(".proto", output_name)


def stamp(output_name: str, content: str, generator: str) -> str:
    header = "# " + header_line(generator, source_of(output_name)) + "\n"
    return header + content


def _script_owner(script: str) -> str:
    """`protoc-gen-mypy` -> `mypy-protobuf 5.1.0 protoc-gen-mypy`: the header names versions."""
    for entry in metadata.entry_points(group="console_scripts", name=script):
        if entry.dist is not None:
            return f"{entry.dist.name} {entry.dist.version} {script}"
    return script


def generate(request: plugin_pb2.CodeGeneratorRequest) -> Iterator[OutputFile]:
    options = parse_options("protoc_bridge", request.parameter, BridgeOptions)
    lang = options.lang
    if not lang:
        raise GeneratorError("protoc_bridge needs opt lang=python|grpc_python|<plugin lang>")
    passthrough = passthrough_parameter(options.passthrough)
    extra: list[str] = []
    generator = f"grpcio-tools {metadata.version('grpcio-tools')} --{lang}_out"
    if options.plugin:
        executable = Path(sys.executable).parent / options.plugin
        if not executable.exists():
            raise GeneratorError(f"protoc_bridge: plugin {executable} is not installed")
        extra.append(f"--plugin=protoc-gen-{lang}={executable}")
        generator = _script_owner(options.plugin)

    targets = list(request.file_to_generate)
    if options.services_only:
        with_services = {proto.name for proto in request.proto_file if proto.service}
        targets = [name for name in targets if name in with_services]
    if not targets:
        return

    with tempfile.TemporaryDirectory(prefix="qmtl-bridge-") as tmp:
        work = Path(tmp)
        descriptor_set = descriptor_pb2.FileDescriptorSet(file=request.proto_file)
        (work / "input.binpb").write_bytes(descriptor_set.SerializeToString())
        out = work / "out"
        out.mkdir()
        prefix = f"{passthrough}:" if passthrough else ""
        command = [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"--descriptor_set_in={work / 'input.binpb'}",
            *extra,
            f"--{lang}_out={prefix}{out}",
            *targets,
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise GeneratorError(f"grpc_tools.protoc --{lang}_out failed: {result.stderr.strip()}")
        for path in sorted(out.rglob("*")):
            if path.is_file():
                name = path.relative_to(out).as_posix()
                yield OutputFile(name, stamp(name, path.read_text(), generator))


def main() -> None:
    run(generate)


if __name__ == "__main__":
    main()
