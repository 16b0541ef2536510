"""generated/python installs on its own: a clean venv needs nothing else to import the messages."""

from __future__ import annotations

import subprocess
import venv
from pathlib import Path

from tests.contracts.scratch import ROOT


def test_pip_install_of_the_generated_tree_imports_messages_and_stubs(tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [
            python,
            "-m",
            "pip",
            "install",
            "-q",
            "-c",
            ROOT / "constraints.txt",
            ROOT / "generated" / "python",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr

    probe = (
        "from qmtl.dag.v1 import dag_pb2\n"
        "from qmtl.gateway.v1 import gateway_service_pb2_grpc\n"
        "import importlib.util\n"
        "assert importlib.util.find_spec('qmtl.runtime') is None, 'runtime leaked in'\n"
        "from pathlib import Path\n"
        "here = Path(dag_pb2.__file__).parent\n"
        "assert (here / 'dag_pb2.pyi').is_file(), 'mypy stubs missing'\n"
        "assert (here.parents[1] / 'py.typed').is_file(), 'PEP 561 marker missing'\n"
        "print(dag_pb2.Dag(schema_version='v1').SerializeToString().hex())\n"
    )
    # Run from the temp dir so nothing of the repository is on the import path.
    result = subprocess.run(
        [python, "-c", probe], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0a027631"  # field 1, "v1"
