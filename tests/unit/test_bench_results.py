"""bench/results.py: every figure as data ({name, ours, baseline, unit, ratio, goal, met})."""

from __future__ import annotations

import json
from pathlib import Path

from bench.results import Figure, machine_info, merge_report


def test_a_ratio_goal_is_met_at_or_above_it() -> None:
    assert Figure("x", 80.0, 100.0, "ops/s", 0.8).met() is True
    assert Figure("x", 79.0, 100.0, "ops/s", 0.8).met() is False


def test_a_lower_is_better_goal_applies_to_ours_without_a_baseline() -> None:
    fig = Figure("p50", 4.0, None, "ms", 5.0, lower_is_better=True)
    assert fig.measured_ratio() is None
    assert fig.met() is True
    assert Figure("p50", 6.0, None, "ms", 5.0, lower_is_better=True).met() is False


def test_a_given_ratio_wins_over_ours_over_baseline() -> None:
    fig = Figure("paired", 90.0, 100.0, "ev/s", 0.95, ratio=0.96)
    assert fig.measured_ratio() == 0.96
    assert fig.met() is True


def test_a_figure_without_goal_is_reported_not_judged() -> None:
    entry = Figure("ref", 1.0, 2.0, "req/s", None).as_dict("http")
    assert (entry["met"], entry["ratio"], entry["bench"]) == (None, 0.5, "http")


def test_each_section_replaces_only_its_own_figures_and_the_machine_is_recorded(
    tmp_path: Path,
) -> None:
    path = tmp_path / "latest.json"
    merge_report(path, "queue", {"a": 1}, [Figure("single", 8.0, 10.0, "jobs/s", 0.8)])
    merge_report(path, "http", {"b": 2}, [Figure("get", 9.0, 10.0, "req/s", 0.85)])
    merge_report(path, "queue", {"a": 3}, [Figure("single", 7.0, 10.0, "jobs/s", 0.8)])

    stored = json.loads(path.read_text())
    assert [(f["bench"], f["name"], f["met"]) for f in stored["figures"]] == [
        ("http", "get", True),
        ("queue", "single", False),
    ]
    assert set(stored["figures"][0]) == {
        "bench",
        "name",
        "ours",
        "baseline",
        "unit",
        "ratio",
        "goal",
        "goal_direction",
        "met",
    }
    assert stored["machine"]["cores"] >= 1
    assert stored["machine"]["versions"]["protobuf"]
    assert stored["queue"] == {"a": 3}


def test_machine_info_names_the_python_and_revision() -> None:
    info = machine_info()
    assert info["python"].count(".") == 2
    assert info["revision"]
