"""The generated message modules, found on disk: pkgutil does not walk namespace packages."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import qmtl


def generated_pb2_modules() -> Iterator[ModuleType]:
    """Imports and yields every `qmtl.*_pb2` module, which registers its messages and services."""
    for root in map(Path, qmtl.__path__):
        for path in sorted(root.rglob("*_pb2.py")):
            dotted = ".".join(("qmtl", *path.relative_to(root).with_suffix("").parts))
            yield importlib.import_module(dotted)
