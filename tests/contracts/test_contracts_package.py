"""generated/python installs as `qmtl-contracts` on top of `qmtl-runtime-core`, and nothing more.

Packages depend one way (contracts -> runtime core -> adapters by extra): a plain install
imports every message, its stubs and the runtime core, without httpx, FastAPI or grpcio.
"""

from __future__ import annotations

import json
import tomllib
import zipfile
from pathlib import Path

from packaging.specifiers import SpecifierSet

from qmtl_codegen import package
from tests.client.wheels import ROOT, build_wheels, clean_venv, run


def test_pip_install_of_the_contracts_imports_messages_stubs_and_the_runtime_core(
    tmp_path: Path,
) -> None:
    wheels = build_wheels(tmp_path / "wheels")
    python = clean_venv(tmp_path / "venv", wheels, "qmtl-contracts")

    probe = (
        "import importlib.util, json\n"
        "from pathlib import Path\n"
        "from qmtl.dag.v1 import dag_pb2\n"
        "from qmtl.runtime.errors import QmtlError\n"
        "here = Path(dag_pb2.__file__).parent\n"
        "print(json.dumps({\n"
        "  'hex': dag_pb2.Dag(schema_version='v1').SerializeToString().hex(),\n"
        "  'stubs': (here / 'dag_pb2.pyi').is_file(),\n"
        "  'typed': (here.parents[1] / 'py.typed').is_file(),\n"
        "  'absent': [m for m in ('httpx', 'fastapi', 'grpc', 'redis')\n"
        "             if importlib.util.find_spec(m) is not None],\n"
        "}))\n"
    )
    # Run from the temp dir so nothing of the repository is on the import path.
    result = run([python, "-c", probe], cwd=tmp_path)

    assert json.loads(result.stdout) == {
        "hex": "0a027631",  # field 1, "v1"
        "stubs": True,
        "typed": True,
        "absent": [],
    }
    names = {
        wheel.name.split("-")[0]: set(zipfile.ZipFile(wheel).namelist())
        for wheel in wheels.glob("*.whl")
    }
    # Each module ships in exactly one of the two wheels.
    assert not names["qmtl_contracts"] & names["qmtl_runtime_core"]
    assert "qmtl/common/v1/error_pb2.py" in names["qmtl_runtime_core"]
    assert not any("workqueue" in name for name in names["qmtl_runtime_core"])
    assert not any("graph_migrations" in name for name in names["qmtl_runtime_core"])
    assert "qmtl/runtime/nodeid.py" in names["qmtl_runtime_core"]


def test_the_contracts_ask_for_the_runtime_core_version_in_the_tree() -> None:
    runtime = tomllib.loads((ROOT / "runtime" / "pyproject.toml").read_text())
    contracts = tomllib.loads((ROOT / "generated" / "python" / "pyproject.toml").read_text())

    assert runtime["project"]["version"] in SpecifierSet(package.RUNTIME_REQUIREMENT)
    assert f"qmtl-runtime-core{package.RUNTIME_REQUIREMENT}" in contracts["project"]["dependencies"]
    extras = contracts["project"]["optional-dependencies"]
    assert [dep for dep in extras["client"] if "grpc" in dep] == []
    assert any(dep.startswith("grpcio>=") for dep in extras["grpc"])
