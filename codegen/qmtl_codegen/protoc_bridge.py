"""Runs protoc's Python generators under buf, stamping every file with our DO-NOT-EDIT header.

buf runs only protoc's own generators as `protoc_builtin`, and grpcio-tools ships the gRPC
Python generator inside its protoc instead of as a `protoc-gen-grpc_python` executable. This
plugin hands the request's descriptors to grpcio-tools' protoc, loaded in this very process
(no second interpreter), through a descriptor set, with the generator chosen by `lang=`
(python, grpc_python, or mypy / mypy_grpc: mypy-protobuf, also called in-process rather than
started as protoc-gen-mypy), then prefixes each output with a header naming the source .proto
and the generator. Other options pass through to the generator.

    opt: [lang=python]
    opt: [lang=grpc_python]
    opt: [lang=mypy, plugin=protoc-gen-mypy, quiet]
    opt: [lang=grpc_python, services_only]   # skip files that declare no service
"""

from __future__ import annotations

import re
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
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


def grpcio_tools_version() -> str:
    # grpcio-tools' own record of its version (importlib.metadata would cost more to import
    # than the generators it names take to run).
    from grpc_tools import grpc_version  # type: ignore[import-untyped]

    version: str = grpc_version.VERSION
    return version


def mypy_protobuf_owner(script: str) -> str:
    """`protoc-gen-mypy` -> `mypy-protobuf 5.1.0 protoc-gen-mypy`: the header names versions.

    The in-process plugins are mypy-protobuf's, whatever console script `plugin=` names."""
    from mypy_protobuf import main as mypy_protobuf  # type: ignore[import-untyped]

    return f"mypy-protobuf {mypy_protobuf.__version__} {script}"


def generate(request: plugin_pb2.CodeGeneratorRequest) -> Iterator[OutputFile]:
    options = parse_options("protoc_bridge", request.parameter, BridgeOptions)
    lang = options.lang
    if not lang:
        raise GeneratorError("protoc_bridge needs opt lang=python|grpc_python|<plugin lang>")
    passthrough = passthrough_parameter(options.passthrough)
    generator = f"grpcio-tools {grpcio_tools_version()} --{lang}_out"
    if options.plugin:
        if lang not in _IN_PROCESS_PLUGINS:
            raise GeneratorError(
                f"protoc_bridge: plugin {options.plugin} for lang={lang} is not supported "
                f"(in-process plugins: {', '.join(sorted(_IN_PROCESS_PLUGINS))})"
            )
        generator = mypy_protobuf_owner(options.plugin)

    targets = list(request.file_to_generate)
    if options.services_only:
        with_services = {proto.name for proto in request.proto_file if proto.service}
        targets = [name for name in targets if name in with_services]
    if not targets:
        return

    if lang in _IN_PROCESS_PLUGINS:
        outputs = _mypy_protobuf(lang, passthrough, targets, request)
    else:
        outputs = _protoc(lang, passthrough, targets, request)
    for name in sorted(outputs):
        yield OutputFile(name, stamp(name, outputs[name], generator))


def _protoc(
    lang: str, passthrough: str, targets: list[str], request: plugin_pb2.CodeGeneratorRequest
) -> dict[str, str]:
    """grpcio-tools' protoc, in this process, on the request's descriptors."""
    # The C++ compiler as an extension module (grpcio-tools ships no type information).
    from grpc_tools import protoc

    with tempfile.TemporaryDirectory(prefix="qmtl-bridge-") as tmp:
        work = Path(tmp)
        descriptor_set = descriptor_pb2.FileDescriptorSet(file=request.proto_file)
        # Comments (source info) cost protoc half its time to load. Only a file's own generator
        # output can show them, and protoc's Python message generator shows none (the gRPC one
        # turns service comments into docstrings), so the rest go.
        generated = set() if lang == "python" else set(targets)
        for file in descriptor_set.file:
            if file.name not in generated:
                file.ClearField("source_code_info")
        (work / "input.binpb").write_bytes(descriptor_set.SerializeToString())
        # protoc writes one zip archive (an `_out` path ending in .zip) instead of a tree of
        # files: creating and reading back hundreds of small files cost more than generating.
        out = work / "out.zip"
        prefix = f"{passthrough}:" if passthrough else ""
        command = [
            "grpc_tools.protoc",
            f"--descriptor_set_in={work / 'input.binpb'}",
            f"--{lang}_out={prefix}{out}",
            *targets,
        ]
        # protoc prints its own diagnostics on this process's stderr, which buf shows.
        if protoc.main(command) != 0:
            raise GeneratorError(f"grpc_tools.protoc --{lang}_out failed (its message is above)")
        with zipfile.ZipFile(out) as archive:
            return {
                entry.filename: archive.read(entry).decode()
                for entry in archive.infolist()
                if not entry.is_dir()
            }


def _mypy_protobuf(
    lang: str, passthrough: str, targets: list[str], request: plugin_pb2.CodeGeneratorRequest
) -> dict[str, str]:
    """mypy-protobuf's generator, called as its protoc-gen-mypy(_grpc) entry point would be."""
    from mypy_protobuf import main as mypy_protobuf

    sub = plugin_pb2.CodeGeneratorRequest(
        file_to_generate=targets, parameter=passthrough, proto_file=request.proto_file
    )
    response = plugin_pb2.CodeGeneratorResponse()
    flags = [
        flag in passthrough
        for flag in (
            "quiet",
            "readable_stubs",
            "relax_strict_optional_primitives",
            "use_default_deprecation_warnings",
            "generate_concrete_servicer_stubs",
        )
    ]
    descriptors = mypy_protobuf.Descriptors(sub)
    if lang == "mypy":
        mypy_protobuf.generate_mypy_stubs(descriptors, response, *flags)
    else:
        grpc_type = mypy_protobuf.GRPCType.from_parameter(passthrough)
        mypy_protobuf.generate_mypy_grpc_stubs(descriptors, response, *flags, grpc_type)
    if response.error:
        raise GeneratorError(f"mypy-protobuf --{lang}_out failed: {response.error}")
    return {file.name: file.content for file in response.file}


_IN_PROCESS_PLUGINS = frozenset({"mypy", "mypy_grpc"})


def main() -> None:
    run(generate)


if __name__ == "__main__":
    main()
