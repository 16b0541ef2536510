"""A scratch copy of the buf workspace, for tests that edit schemas and run buf on them."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BUF = ROOT / ".tools" / "bin" / "buf"

Run = Callable[..., subprocess.CompletedProcess[str]]


def edit(path: Path, old: str, new: str) -> None:
    """Replaces one exact snippet in a schema file; fails if the snippet is not there once."""
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} must occur exactly once in {path}"
    path.write_text(text.replace(old, new))
