"""bench/results/latest.json: every bench merges its figures in under a section of its own
("queue", "http", "graph", "events", ...), so one `make bench` leaves one file with all of them.

Besides each section's detail, the file holds the figures as data: `figures`, one entry per
measured figure of every bench, `{bench, name, ours, baseline, unit, ratio, goal, met}`, and
`machine` (cores, Python, platform, library versions, git revision) of the latest run, so a
regression shows as a `met: false` in a diff rather than in prose.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"


class BenchReportError(Exception):
    """The results file exists but is not a JSON object, so merging into it would clobber it."""


# Libraries whose version moves the figures; absent ones are left out.
_VERSIONED = (
    "protobuf",
    "grpcio",
    "redis",
    "aiokafka",
    "neo4j",
    "starlette",
    "uvicorn",
    "httpx",
    "orjson",
)


@dataclass(frozen=True, slots=True)
class Figure:
    """One measured figure against its baseline and its goal.

    The goal applies to the ratio (ours / baseline) when there is a baseline, else to `ours`
    itself; `lower_is_better` flips its direction (latencies, CPU per request).
    """

    name: str
    ours: float
    baseline: float | None
    unit: str
    goal: float | None
    lower_is_better: bool = False
    ratio: float | None = None
    """Given when the bench's figure of merit is not plain ours / baseline (e.g. the median
    of per-round ratios, or baseline / ours for a time); else computed."""

    def measured_ratio(self) -> float | None:
        if self.ratio is not None:
            return self.ratio
        if self.baseline:
            return self.ours / self.baseline
        return None

    def met(self) -> bool | None:
        if self.goal is None:
            return None
        ratio = self.measured_ratio()
        value = self.ours if ratio is None else ratio
        return value <= self.goal if self.lower_is_better else value >= self.goal

    def as_dict(self, bench: str) -> dict[str, Any]:
        ratio = self.measured_ratio()
        return {
            "bench": bench,
            "name": self.name,
            "ours": round(self.ours, 4),
            "baseline": None if self.baseline is None else round(self.baseline, 4),
            "unit": self.unit,
            "ratio": None if ratio is None else round(ratio, 4),
            "goal": self.goal,
            "goal_direction": "<=" if self.lower_is_better else ">=",
            "met": self.met(),
        }


def machine_info() -> dict[str, Any]:
    """Where the figures were measured: they only compare within one machine."""
    versions = {}
    for name in _VERSIONED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    try:
        revision = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        revision = "unknown"
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "revision": revision,
        "versions": versions,
    }


def print_figures(bench: str, figures: Sequence[Figure]) -> None:
    """The figures as one table: name, ours, baseline, ratio, goal, met."""
    print(f"\n{bench}: figures as data")
    for fig in figures:
        entry = fig.as_dict(bench)
        baseline = "-" if entry["baseline"] is None else f"{entry['baseline']:,.4g}"
        ratio = "-" if entry["ratio"] is None else f"{entry['ratio']:.3f}"
        goal = "-" if fig.goal is None else f"{entry['goal_direction']} {fig.goal:g}"
        verdict = {True: "met", False: "NOT MET", None: "reported"}[entry["met"]]
        print(
            f"  {fig.name:<34} ours {fig.ours:>12,.4g} {fig.unit:<8} baseline {baseline:>10} "
            f"ratio {ratio:>7}  goal {goal:<8} {verdict}"
        )


def merge_report(
    path: Path,
    section: str,
    details: Mapping[str, Any],
    figures: Sequence[Figure] = (),
) -> dict[str, Any]:
    """Puts `details` under `section` of the JSON object in `path` and replaces the section's
    entries of the flat `figures` list, keeping every other section (other benches write
    theirs there too); atomic, so a crash leaves the old file."""
    report: dict[str, Any] = {}
    if path.exists():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise BenchReportError(f"{path} is not valid JSON ({exc}); not overwriting") from None
        if not isinstance(loaded, dict):
            raise BenchReportError(f"{path} holds a {type(loaded).__name__}, not an object")
        report = loaded
    report[section] = dict(details)
    kept = [entry for entry in report.get("figures", []) if entry.get("bench") != section]
    report["figures"] = kept + [figure.as_dict(section) for figure in figures]
    report["machine"] = machine_info()
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
