"""The runtime contract generated modules are written against (qmtl.runtime.gen)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

from qmtl.runtime import contracts_version, gen
from qmtl.runtime.context import Context
from qmtl.runtime.errors import ErrorCode, QmtlError, unimplemented

GENERATED = Path(__file__).resolve().parents[2] / "generated" / "python"
RUNTIME_MODULES = {
    "qmtl.runtime.gen",
    "qmtl.runtime.gen.http_server",
    "qmtl.runtime.gen.http_client",
    "qmtl.runtime.gen.grpc_server",
    "qmtl.runtime.gen.json_codec",
}


def test_the_contract_exports_exactly_what_the_design_names() -> None:
    assert set(gen.__all__) == {
        "CONTRACT_VERSION",
        "check_version",
        "Access",
        "RpcSpec",
        "ServiceSpec",
        "Context",
        "QmtlError",
        "ErrorCode",
        "Principal",
        "Hidden",
        "unimplemented",
    }
    assert all(hasattr(gen, name) for name in gen.__all__)


def test_the_current_contract_is_accepted() -> None:
    gen.check_version(gen.CONTRACT_VERSION, "some.module")


@pytest.mark.parametrize("required", [0, gen.CONTRACT_VERSION + 1])
def test_another_contract_is_refused_naming_both_versions(required: int) -> None:
    with pytest.raises(ImportError) as raised:
        gen.check_version(required, "qmtl.x.v1.x_service_http")
    text = str(raised.value)
    assert text.startswith(
        f"qmtl.x.v1.x_service_http was generated for qmtl runtime contract {required}, "
        f"but the installed qmtl runtime provides contract {gen.CONTRACT_VERSION} ("
    )
    assert "make generate" in text


def test_unimplemented_is_a_501_naming_the_rpc() -> None:
    error = unimplemented("qmtl.x.v1.X.Do")
    assert (error.code, error.http_status) == (ErrorCode.ERROR_CODE_UNIMPLEMENTED, 501)
    assert error.details == {"rpc": "qmtl.x.v1.X.Do"}


def test_set_status_outside_2xx_is_an_internal_error() -> None:
    from qmtl.gateway.v1.gateway_service_handler import GATEWAY_SERVICE

    ctx = Context(GATEWAY_SERVICE.rpcs[0], "http", None, {})
    ctx.set_status(202)
    assert ctx.status == 202
    with pytest.raises(QmtlError) as raised:
        ctx.set_status(404)
    assert raised.value.code == ErrorCode.ERROR_CODE_INTERNAL
    assert ctx.time_remaining() is None


# The generated modules written against the contract so far: the handler, HTTP router and
# gRPC adapter modules; the typed clients (`_client.py`) join as they move onto qmtl.runtime.gen.
CHECKED_SUFFIXES = ("_handler.py", "_http.py", "_grpc.py", "_client.py", "_json.py")


def _generated_runtime_modules() -> list[Path]:
    found = sorted(
        path
        for suffix in CHECKED_SUFFIXES
        for path in GENERATED.rglob(f"*{suffix}")
        if not path.name.endswith("_pb2_grpc.py")
    )
    assert any(p.name.endswith("_handler.py") for p in found), "run `make generate`"
    return found


@pytest.mark.parametrize(
    "path", _generated_runtime_modules(), ids=lambda p: p.relative_to(GENERATED).as_posix()
)
def test_generated_modules_use_only_the_contract(path: Path) -> None:
    """`_qmtl_<alias>.<Name>` only, each Name in that module's __all__; no other runtime import."""
    tree = ast.parse(path.read_text())
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("qmtl.runtime"):
            for name in node.names:
                module = f"{node.module}.{name.name}"
                assert module in RUNTIME_MODULES, f"{path.name} imports {module}"
                assert name.asname is not None, name.name
                assert name.asname.startswith("_qmtl_"), name.name
                aliases[name.asname] = module
        elif isinstance(node, ast.Import):
            for name in node.names:
                assert not name.name.startswith("qmtl.runtime"), f"{path.name}: {name.name}"
    assert "_qmtl_gen" in aliases, f"{path.name} does not check the contract version"
    # The first statement after the docstring and the imports above it checks the version.
    calls = [n for n in tree.body if isinstance(n, ast.Expr) and isinstance(n.value, ast.Call)]
    assert calls, f"{path.name} has no check_version call"
    assert ast.unparse(calls[0]) == (
        f"_qmtl_gen.check_version({gen.CONTRACT_VERSION}, __name__, {contracts_version.SPOKEN!r})"
    )
    first_import = next(
        i
        for i, n in enumerate(tree.body)
        if isinstance(n, ast.ImportFrom) and n.module == "qmtl.runtime"
    )
    assert tree.body.index(calls[0]) == first_import + 1
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
        ):
            runtime = importlib.import_module(aliases[node.value.id])
            assert node.attr in runtime.__all__, f"{path.name}: {node.value.id}.{node.attr}"
