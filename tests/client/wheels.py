"""Wheels of qmtl-runtime-core and qmtl-contracts, and clean venvs that install them.

The wheels are built from the work tree (so they carry the code under test) with pip's
build isolation; dependencies come from PyPI pinned by constraints.txt, through pip's cache.
"""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# A clean install resolves from PyPI; the first run downloads, later ones hit pip's cache.
PIP_TIMEOUT = 900


def run(command: list[str | Path], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        command, capture_output=True, text=True, check=False, timeout=PIP_TIMEOUT, cwd=cwd
    )
    assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"
    return result


def build_wheels(dest: Path) -> Path:
    """qmtl-runtime-core and qmtl-contracts wheels in `dest` (a --find-links directory)."""
    sources = [ROOT / "runtime", ROOT / "generated" / "python"]
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", dest, *sources])
    return dest


def clean_venv(where: Path, wheels: Path, *requirements: str) -> Path:
    """A new venv with `requirements` installed from `wheels` and PyPI; its python."""
    venv.EnvBuilder(with_pip=True).create(where)
    python = where / "bin" / "python"
    pins: list[str | Path] = ["-c", ROOT / "constraints.txt", "--find-links", wheels]
    run([python, "-m", "pip", "install", "-q", *pins, *requirements])
    return python


def importable(python: Path, modules: list[str], cwd: Path) -> dict[str, bool]:
    """Which of `modules` the venv's python can import (run outside the repository)."""
    probe = (
        "import importlib.util, json, sys\n"
        "names = sys.argv[1:]\n"
        "print(json.dumps({n: importlib.util.find_spec(n) is not None for n in names}))\n"
    )
    result = run([python, "-c", probe, *modules], cwd=cwd)
    found: dict[str, bool] = json.loads(result.stdout)
    return found
