"""bench/results/latest.json: every bench merges its figures in under a section of its own
("queue", "http", "graph", "events"), so one `make bench` leaves one file with all of them."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"


class BenchReportError(Exception):
    """The results file exists but is not a JSON object, so merging into it would clobber it."""


def merge_report(path: Path, section: str, figures: Mapping[str, Any]) -> dict[str, Any]:
    """Puts `figures` under `section` of the JSON object in `path`, keeping every other
    section (other benches write theirs there too); atomic, so a crash leaves the old file."""
    report: dict[str, Any] = {}
    if path.exists():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise BenchReportError(f"{path} is not valid JSON ({exc}); not overwriting") from None
        if not isinstance(loaded, dict):
            raise BenchReportError(f"{path} holds a {type(loaded).__name__}, not an object")
        report = loaded
    report[section] = dict(figures)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(report, out, indent=2, sort_keys=True)
            out.write("\n")
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; the figures are for everyone
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return report
