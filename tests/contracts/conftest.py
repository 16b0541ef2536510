"""Fixtures for tests that edit a scratch copy of the schemas and run buf on it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.contracts.scratch import BUF, ROOT, Run


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """buf.yaml, buf.gen.yaml, schemas/ and scripts/ copied; .venv and .tools' tools linked."""
    if not BUF.exists():
        pytest.fail(f"{BUF} is missing: run `make setup`")
    ws = tmp_path / "ws"
    ws.mkdir()
    for name in ("buf.yaml", "buf.gen.yaml"):
        shutil.copy(ROOT / name, ws / name)
    shutil.copytree(ROOT / "schemas", ws / "schemas")
    shutil.copytree(ROOT / "scripts", ws / "scripts")
    (ws / ".venv").symlink_to(ROOT / ".venv")
    # The tools are shared; their state (generate's stamp) is the workspace's own, so a run
    # here never rewrites the repository's stamp.
    (ws / ".tools" / "state").mkdir(parents=True)
    (ws / ".tools" / ".gitignore").write_text("*\n")  # as in the repository: not source
    for tools in (ROOT / ".tools").iterdir():
        if tools.name != "state":
            (ws / ".tools" / tools.name).symlink_to(tools)
    return ws


@pytest.fixture
def run() -> Run:
    def _run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(a) for a in args], cwd=cwd, capture_output=True, text=True, check=False
        )

    return _run
