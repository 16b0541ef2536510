"""schemas/VERSION reaches the generated code: package version, data module, OpenAPI info.version
and every runtime-facing module's import check, which refuses a runtime of another range."""

from __future__ import annotations

import ast
import copy
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from google.protobuf.compiler import plugin_pb2

from qmtl_codegen import openapi, package
from qmtl_codegen.plugin import GeneratorError
from qmtl_codegen.releases import format_version, read_current_version

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ROOT / "generated" / "python"
CURRENT = format_version(read_current_version(ROOT / "schemas" / "VERSION"))
# The modules that import the runtime contract (handler, router, gRPC adapter, client).
RUNTIME_FACING = sorted(
    path
    for suffix in ("_handler.py", "_http.py", "_grpc.py", "_client.py")
    for path in (GENERATED / "qmtl").rglob(f"*{suffix}")
    if not path.name.endswith("_pb2_grpc.py")  # protoc's stubs import no runtime
)


def outputs(
    generate: object, request: plugin_pb2.CodeGeneratorRequest, parameter: str
) -> dict[str, str]:
    request = copy.deepcopy(request)
    request.parameter = parameter
    found = {}
    for output in generate(request):  # type: ignore[operator]
        assert isinstance(output.content, str)
        found[output.name] = output.content
    return found


def version_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "VERSION"
    path.write_text(text + "\n")
    return path


def test_the_package_version_and_data_module_follow_the_version_file(
    codegen_request: plugin_pb2.CodeGeneratorRequest, tmp_path: Path
) -> None:
    path = version_file(tmp_path, "3.4.5")

    files = outputs(package.generate, codegen_request, f"version_file={path}")

    assert tomllib.loads(files["pyproject.toml"])["project"]["version"] == "3.4.5"
    module = ast.parse(files[package.CONTRACTS_MODULE])
    constants = {
        node.targets[0].id: ast.literal_eval(node.value)  # type: ignore[attr-defined]
        for node in module.body
        if isinstance(node, ast.Assign)
    }
    assert constants == {"CONTRACTS_VERSION": "3.4.5"}


@pytest.mark.parametrize("text", ["3.4", "three"])
def test_an_unusable_version_file_is_a_generator_error(
    codegen_request: plugin_pb2.CodeGeneratorRequest, tmp_path: Path, text: str
) -> None:
    path = version_file(tmp_path, text)

    with pytest.raises(GeneratorError, match="contracts version"):
        outputs(package.generate, codegen_request, f"version_file={path}")
    with pytest.raises(GeneratorError, match="contracts version"):
        outputs(package.generate, codegen_request, f"version_file={tmp_path / 'missing'}")


def test_openapi_info_version_follows_the_version_file(
    codegen_request: plugin_pb2.CodeGeneratorRequest, tmp_path: Path
) -> None:
    path = version_file(tmp_path, "2.7.0")

    files = outputs(openapi.generate, codegen_request, f"version_file={path}")

    assert files
    assert {json.loads(text)["info"]["version"] for text in files.values()} == {"2.7.0"}
    with pytest.raises(GeneratorError, match="not both"):
        outputs(openapi.generate, codegen_request, f"version=1.0.0,version_file={path}")


def test_the_generated_tree_carries_schemas_version() -> None:
    # What buf.gen.yaml wrote at the last `make generate`, checked against the file now.
    pyproject = tomllib.loads((GENERATED / "pyproject.toml").read_text())
    assert pyproject["project"]["version"] == CURRENT
    data = (GENERATED / package.CONTRACTS_MODULE).read_text()
    assert f'CONTRACTS_VERSION = "{CURRENT}"' in data
    for document in (ROOT / "docs" / "openapi").glob("*.openapi.json"):
        assert json.loads(document.read_text())["info"]["version"] == CURRENT, document.name


@pytest.mark.parametrize("path", RUNTIME_FACING, ids=lambda p: p.name)
def test_every_runtime_facing_module_passes_the_contracts_version(path: Path) -> None:
    calls = [
        node.value
        for node in ast.parse(path.read_text()).body
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
    ]

    assert ast.unparse(calls[0]) == f"_qmtl_gen.check_version(1, __name__, {CURRENT!r})"


IMPORT_WITH_RANGE = """
import sys
from qmtl.runtime import contracts_version
contracts_version.SUPPORTED_MAJORS = frozenset({int(sys.argv[1])})
import qmtl.gateway.v1.gateway_service_handler
"""


def import_with_range(major: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", IMPORT_WITH_RANGE, str(major)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_generated_module_refuses_a_runtime_whose_range_excludes_it() -> None:
    major = read_current_version(ROOT / "schemas" / "VERSION")[0]

    refused = import_with_range(major + 1)
    accepted = import_with_range(major)

    assert refused.returncode != 0
    last = refused.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: qmtl.gateway.v1.gateway_service_handler"), last
    assert f"generated from qmtl contracts {CURRENT}" in last
    assert f"supports contracts major version {major + 1} only" in last
    assert accepted.returncode == 0, accepted.stderr
