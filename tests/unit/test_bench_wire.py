"""bench/wire writes the binary-encode figure as data, with the goal issue 16 sets."""

from __future__ import annotations

import json
from pathlib import Path

from bench.wire.run import GOAL, main


def test_the_wire_bench_merges_its_figures_with_their_goal(tmp_path: Path) -> None:
    results = tmp_path / "latest.json"

    main(["--rounds", "1", "--seconds", "0.005", "--results", str(results)])

    report = json.loads(results.read_text(encoding="utf-8"))
    figures = {entry["name"]: entry for entry in report["figures"]}
    merit = figures["binary encode vs raw upb"]
    assert (merit["bench"], merit["goal"], merit["goal_direction"]) == ("wire", GOAL, ">=")
    assert merit["ratio"] is not None
    assert merit["met"] is (merit["ratio"] >= GOAL)
    assert figures["deterministic binary encode vs raw upb"]["goal"] is None
    assert set(report["wire"]) >= {"dag", "dag+metadata"}
    assert len(report["wire"]["dag"]["round_ratios"]) == 1
