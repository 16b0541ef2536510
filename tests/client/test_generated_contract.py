"""Generated client modules check the runtime contract first and use only its `__all__`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from qmtl.runtime import contracts_version, gen
from qmtl.runtime.gen import http_client
from qmtl_codegen import http_client as generator
from tests.client.wheels import ROOT

CLIENTS = sorted((ROOT / "generated" / "python").rglob("*_client.py"))


def parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def test_every_service_file_has_a_client_module() -> None:
    assert [path.name for path in CLIENTS] == [
        "dag_manager_service_client.py",
        "gateway_service_client.py",
    ]


@pytest.mark.parametrize("path", CLIENTS, ids=lambda p: p.name)
def test_the_version_check_comes_before_any_other_qmtl_import(path: Path) -> None:
    body = parsed(path).body
    first_qmtl = next(
        i
        for i, node in enumerate(body)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("qmtl")
    )

    assert ast.unparse(body[first_qmtl]) == "from qmtl.runtime import gen as _qmtl_gen"
    assert ast.unparse(body[first_qmtl + 1]) == (
        f"_qmtl_gen.check_version({gen.CONTRACT_VERSION}, __name__, {contracts_version.SPOKEN!r})"
    )
    assert generator.CONTRACT_VERSION == gen.CONTRACT_VERSION


@pytest.mark.parametrize("path", CLIENTS, ids=lambda p: p.name)
def test_the_runtime_is_reached_only_through_the_gen_contract(path: Path) -> None:
    tree = parsed(path)
    runtime_imports = {
        ast.unparse(node)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("qmtl.runtime")
    }
    used = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "_qmtl_client"
    }

    assert runtime_imports == {
        "from qmtl.runtime import gen as _qmtl_gen",
        "from qmtl.runtime.gen import http_client as _qmtl_client",
    }
    assert used <= set(http_client.__all__)


def test_the_contract_module_exports_exactly_what_generated_clients_use() -> None:
    used = {
        node.attr
        for path in CLIENTS
        for node in ast.walk(parsed(path))
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "_qmtl_client"
    }

    assert used == set(http_client.__all__)
    assert all(hasattr(http_client, name) for name in http_client.__all__)
