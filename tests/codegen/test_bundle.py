"""qmtl_codegen.bundle: several generators in one plugin process, each as if run alone;
qmtl_codegen.protoc_bridge: protoc's and mypy-protobuf's generators in-process, with exactly
the output the protoc-gen-* executables give."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf.compiler import plugin_pb2
from google.protobuf.descriptor_pb2 import FileDescriptorSet
from grpc_tools import protoc

from qmtl_codegen import bundle, descriptors, protoc_bridge, reference
from qmtl_codegen.descriptors import Schema
from qmtl_codegen.plugin import GeneratorError
from tests.codegen.conftest import ROOT
from tests.codegen.test_http_generators import INCLUDES, PROBE, compile_request


def request_for(tmp_path: Path, parameter: str) -> plugin_pb2.CodeGeneratorRequest:
    request = compile_request(tmp_path, PROBE)
    request.parameter = parameter
    return request


def test_each_step_writes_under_its_folder_what_the_generator_writes_alone(
    tmp_path: Path,
) -> None:
    request = request_for(
        tmp_path,
        "generated/python qmtl_codegen.protoc_bridge lang=python,"
        "docs/schemas qmtl_codegen.reference",
    )

    outputs = {out.name: out.content for out in bundle.generate(request)}

    alone = request_for(tmp_path, "lang=python")
    expected = {f"generated/python/{o.name}": o.content for o in protoc_bridge.generate(alone)}
    alone.parameter = ""
    expected |= {f"docs/schemas/{o.name}": o.content for o in reference.generate(alone)}
    assert outputs == expected
    assert "generated/python/qmtlprobe/v1/probe_service_pb2.py" in outputs


def test_a_failing_generator_is_named_in_the_error(tmp_path: Path) -> None:
    request = request_for(tmp_path, "docs/openapi qmtl_codegen.openapi layout=bogus")
    with pytest.raises(GeneratorError, match=r"^qmtl_codegen\.openapi: .*layout must be one of"):
        list(bundle.generate(request))


@pytest.mark.parametrize(
    ("parameter", "message"),
    [
        ("", "no generator listed"),
        ("generated/python", "must be '<out folder> <module>"),
        ("out os.path", "is not a module of qmtl_codegen"),
        ("../outside qmtl_codegen.reference", "must stay inside the tree"),
        ("/abs qmtl_codegen.reference", "must stay inside the tree"),
        ("out qmtl_codegen.no_such_generator", "cannot import qmtl_codegen.no_such_generator"),
        ("out qmtl_codegen.plugin", "has no generate(request) function"),
    ],
)
def test_a_bad_step_is_refused_before_anything_is_generated(
    tmp_path: Path, parameter: str, message: str
) -> None:
    request = request_for(tmp_path, parameter)
    with pytest.raises(GeneratorError, match=message.replace("(", r"\(").replace(")", r"\)")):
        list(bundle.generate(request))


@pytest.mark.parametrize(
    ("lang", "executable", "options"),
    [("mypy", "protoc-gen-mypy", "quiet"), ("mypy_grpc", "protoc-gen-mypy_grpc", "quiet")],
)
def test_in_process_mypy_stubs_equal_the_executables_output(
    tmp_path: Path, lang: str, executable: str, options: str
) -> None:
    request = request_for(tmp_path, f"lang={lang},plugin={executable},{options}")
    ours = {out.name: out.content for out in protoc_bridge.generate(request)}

    out = tmp_path / "out"
    out.mkdir()
    plugin = Path(sys.executable).parent / executable
    includes = [f"-I{tmp_path / 'protos'}", *(f"-I{path}" for path in INCLUDES)]
    status = protoc.main(
        [
            "protoc",
            *includes,
            f"--plugin=protoc-gen-{lang}={plugin}",
            f"--{lang}_out={options}:{out}",
            "qmtlprobe/v1/probe_service.proto",
        ]
    )
    assert status == 0
    theirs = {
        path.relative_to(out).as_posix(): path.read_text()
        for path in out.rglob("*")
        if path.is_file()
    }
    assert theirs
    assert {name: content.split("\n", 1)[1] for name, content in ours.items()} == theirs


def test_a_plugin_other_than_mypy_protobuf_is_refused(tmp_path: Path) -> None:
    request = request_for(tmp_path, "lang=go,plugin=protoc-gen-go")
    with pytest.raises(GeneratorError, match="in-process plugins: mypy, mypy_grpc"):
        list(protoc_bridge.generate(request))


def test_the_bundle_runs_as_a_plugin_process(tmp_path: Path) -> None:
    """The I/O half: a request on stdin, the files on stdout, as buf runs it."""
    request = request_for(tmp_path, "docs/schemas qmtl_codegen.reference")
    result = subprocess.run(
        [sys.executable, "-m", "qmtl_codegen.bundle"],
        input=request.SerializeToString(),
        capture_output=True,
        check=True,
        env={**os.environ},
    )
    response = plugin_pb2.CodeGeneratorResponse.FromString(result.stdout)
    assert not response.error
    assert [f.name for f in response.file] == ["docs/schemas/reference.md"]


@pytest.mark.parametrize(("lang", "options"), [("python", ""), ("grpc_python", "services_only")])
def test_protoc_output_does_not_change_without_the_comments_it_cannot_show(
    tmp_path: Path, lang: str, options: str
) -> None:
    """The bridge hands protoc the descriptors without the source info (comments) its output
    cannot show; protoc given all of it writes the same bytes."""
    request = request_for(tmp_path, f"lang={lang},{options}".rstrip(","))
    ours = {out.name: str(out.content) for out in protoc_bridge.generate(request)}

    everything = tmp_path / "everything.binpb"
    everything.write_bytes(FileDescriptorSet(file=request.proto_file).SerializeToString())
    out = tmp_path / "out"
    out.mkdir()
    target = "qmtlprobe/v1/probe_service.proto"
    command = ["protoc", f"--descriptor_set_in={everything}", f"--{lang}_out={out}", target]
    assert protoc.main(command) == 0
    theirs = {p.relative_to(out).as_posix(): p.read_text() for p in out.rglob("*") if p.is_file()}
    assert theirs
    assert {name: content.split("\n", 1)[1] for name, content in ours.items()} == theirs
    if lang == "grpc_python":
        # The service's comments did reach the generator: they are its docstrings.
        assert "Missing associated documentation" not in "".join(ours.values())


def test_the_headers_name_the_installed_generator_versions(tmp_path: Path) -> None:
    from importlib import metadata

    request = request_for(tmp_path, "lang=python")
    [python] = [out.content for out in protoc_bridge.generate(request)]
    request.parameter = "lang=mypy,plugin=protoc-gen-mypy,quiet"
    [stub] = [out.content for out in protoc_bridge.generate(request)]

    assert f"(grpcio-tools {metadata.version('grpcio-tools')} --python_out)" in python
    mypy_protobuf = f"mypy-protobuf {metadata.version('mypy-protobuf')} protoc-gen-mypy"
    assert f"({mypy_protobuf})" in str(stub)


def test_the_generators_of_a_bundle_share_one_schema(tmp_path: Path) -> None:
    request = request_for(tmp_path, "")
    apart = Schema.from_request(request), Schema.from_request(request)
    assert apart[0] is not apart[1]
    with descriptors.shared(request):
        schema = Schema.from_request(request)
        assert Schema.from_request(request) is schema
        other = request_for(tmp_path / "other", "")
        assert Schema.from_request(other) is not schema
        built: list[str] = []

        def build() -> str:
            built.append("built")
            return "value"

        assert [schema.derived("key", build) for _ in range(2)] == ["value", "value"]
        assert built == ["built"]
    assert Schema.from_request(request) is not schema


def test_the_swagger_bridge_in_a_bundle_writes_what_it_writes_alone(tmp_path: Path) -> None:
    plugin = ROOT / ".tools" / "bin" / "protoc-gen-openapiv2"
    assert plugin.exists(), f"{plugin} is missing: run `make setup`"
    options = f"plugin={plugin} allow_merge=false json_names_for_fields=true output_format=json"
    request = request_for(
        tmp_path,
        f"docs/openapi/swagger qmtl_codegen.openapiv2_bridge {options},"
        "docs/schemas qmtl_codegen.reference",
    )
    outputs = {out.name: out.content for out in bundle.generate(request)}

    alone = request_for(tmp_path, options.replace(" ", ","))
    # The placeholder Go packages went on a copy: the next step saw the request as buf sent it.
    assert list(request.proto_file) == list(alone.proto_file)
    result = subprocess.run(
        [sys.executable, "-m", "qmtl_codegen.openapiv2_bridge"],
        input=alone.SerializeToString(),
        capture_output=True,
        check=True,
    )
    response = plugin_pb2.CodeGeneratorResponse.FromString(result.stdout)
    assert not response.error
    expected = {f"docs/openapi/swagger/{f.name}": f.content for f in response.file}
    assert expected
    swagger = {name: text for name, text in outputs.items() if "/swagger/" in name}
    assert swagger == expected
    assert "docs/schemas/reference.md" in outputs
