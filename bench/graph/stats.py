"""The pure parts of the graph bench: percentiles, summaries and ratios (the results file is
bench/results.py)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass


class BenchStatsError(Exception):
    """A statistic asked of no samples or with an out-of-range parameter (a bench bug)."""


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation between closest ranks (numpy's
    default), so p50 of an even count is the mean of the middle two."""
    if not values:
        raise BenchStatsError("percentile of no values")
    if not 0.0 <= q <= 100.0:
        raise BenchStatsError(f"q must be within 0..100, got {q}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True, slots=True)
class Summary:
    """Latencies of one measured operation, in milliseconds."""

    n: int
    p50_ms: float
    p95_ms: float
    mean_ms: float
    max_ms: float

    def as_dict(self) -> dict[str, float | int]:
        return {key: round(value, 3) for key, value in asdict(self).items()}


def summarize(samples_s: Sequence[float]) -> Summary:
    """Summary of samples taken in seconds."""
    ms = [s * 1000.0 for s in samples_s]
    return Summary(
        n=len(ms),
        p50_ms=percentile(ms, 50),
        p95_ms=percentile(ms, 95),
        mean_ms=sum(ms) / len(ms),
        max_ms=max(ms),
    )


def ratio(slow: float, fast: float) -> float | None:
    """How many times `fast` beats `slow`; None when `fast` is 0 (no meaningful ratio)."""
    return slow / fast if fast > 0 else None


def format_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f}x"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table: the first column left-aligned, the others right-aligned."""
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        )

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])
