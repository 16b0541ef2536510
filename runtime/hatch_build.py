"""Adds the messages the runtime reads (qmtl.api.v1, qmtl.common.v1) to the qmtl-runtime-core
wheel, from the generated tree next to this folder; an editable install gets none (they are on
the dev path already, see runtime/pyproject.toml)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

GENERATED = Path(__file__).resolve().parent.parent / "generated" / "python"
SHIPPED = ("qmtl/api", "qmtl/common")


class RuntimeMessagesHook(BuildHookInterface):  # type: ignore[misc]
    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if version == "editable":
            return
        for package in SHIPPED:
            source = GENERATED / package
            if not source.is_dir():
                raise FileNotFoundError(f"{source} is missing: run `make generate` first")
            build_data["force_include"][str(source)] = package
