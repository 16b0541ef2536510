"""bench/graph's pure parts: percentiles, summaries, the table and the results-file merge.
No timing is asserted; the bench itself runs in `make bench`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.graph import run
from bench.graph.stats import (
    BenchStatsError,
    format_ratio,
    format_table,
    percentile,
    ratio,
    summarize,
)
from bench.results import BenchReportError, merge_report


def test_percentile_interpolates_between_closest_ranks() -> None:
    values = [4.0, 1.0, 3.0, 2.0]  # unsorted on purpose
    assert percentile(values, 50) == 2.5
    assert percentile(values, 95) == pytest.approx(3.85)
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0
    assert percentile([7.0], 95) == 7.0


def test_percentile_of_nothing_or_out_of_range_is_a_typed_error() -> None:
    with pytest.raises(BenchStatsError):
        percentile([], 50)
    with pytest.raises(BenchStatsError):
        percentile([1.0], 101)


def test_summarize_reports_milliseconds() -> None:
    s = summarize([0.001, 0.002, 0.003, 0.010])
    assert s.n == 4
    assert s.p50_ms == pytest.approx(2.5)
    assert s.max_ms == pytest.approx(10.0)
    assert s.mean_ms == pytest.approx(4.0)
    assert s.as_dict()["p95_ms"] == round(s.p95_ms, 3)


def test_ratio_and_its_rendering() -> None:
    assert ratio(100.0, 4.0) == 25.0
    assert ratio(1.0, 0.0) is None
    assert format_ratio(None) == "n/a"
    assert format_ratio(25.0) == "25.0x"


def test_format_table_aligns_columns() -> None:
    table = format_table(["name", "p50"], [["index", "0.50"], ["qmtl list scan", "12.00"]])
    lines = table.splitlines()
    assert lines[0] == "name              p50"
    assert lines[2] == "index            0.50"
    assert lines[3] == "qmtl list scan  12.00"
    assert len({len(line) for line in lines}) == 1


def test_merge_report_keeps_other_sections_and_replaces_its_own(tmp_path: Path) -> None:
    path = tmp_path / "results" / "latest.json"
    merge_report(path, "queue", {"ratio": 0.9})
    merge_report(path, "graph", {"old": True})
    merge_report(path, "graph", {"p50_ms": 1.5})
    stored = json.loads(path.read_text())
    assert (stored["queue"], stored["graph"]) == ({"ratio": 0.9}, {"p50_ms": 1.5})
    assert set(stored) == {"queue", "graph", "figures", "machine"}
    assert [p.name for p in path.parent.iterdir()] == ["latest.json"]  # no temp file left


@pytest.mark.parametrize("content", ["{not json", "[1, 2]"])
def test_merge_report_refuses_to_clobber_a_file_it_cannot_merge(
    tmp_path: Path, content: str
) -> None:
    path = tmp_path / "latest.json"
    path.write_text(content)
    with pytest.raises(BenchReportError):
        merge_report(path, "graph", {"p50_ms": 1.5})
    assert path.read_text() == content


def test_quick_flag_shrinks_the_run_and_explicit_values_win() -> None:
    quick = run.parse(["--quick"])
    assert (quick.nodes, quick.diff_rounds) == (run.QUICK["nodes"], run.QUICK["diff_rounds"])
    full = run.parse(["--nodes", "2000"])
    assert (full.nodes, full.lookups) == (2000, run.FULL["lookups"])
    with pytest.raises(SystemExit):
        run.parse(["--nodes", "0"])


def _summary(p50: float) -> dict[str, float]:
    return {"n": 10, "p50_ms": p50, "p95_ms": p50 * 2, "mean_ms": p50, "max_ms": p50 * 3}


def test_render_prints_every_column_the_ratios_and_the_goal_verdicts() -> None:
    figures = {
        "quick": False,
        "machine": "test",
        "neo4j_round_trip": _summary(0.2),
        "tag_lookup": {
            "compute_nodes": 100_000,
            "load_seconds": 30.0,
            "vocabulary": "5,020 distinct tags",
            "mean_answer_queues": 3.0,
            "columns": {
                "store": _summary(1.0),
                "index": _summary(0.8),
                "dropped": _summary(8.0),
                "qmtl": _summary(80.0),
            },
            "columns_by_mode": {
                k: {"any": _summary(1.0), "all": _summary(2.0)}
                for k in ("store", "dropped", "index", "qmtl")
            },
            "server_side": {"index": _summary(0.5), "qmtl": _summary(60.0)},
            "server_speedup_p50_vs_qmtl": 120.0,
            "speedup_p50_vs_dropped": 10.0,
            "speedup_p50_vs_qmtl": 100.0,
        },
        "diff": {
            "dag_nodes": 1000,
            "first_submit": _summary(500.0),
            "resubmit": _summary(50.0),
            "peer_submit": _summary(60.0),
            "first_submit_store_ms": {"apply": 400.0},
            "resubmit_store_ms": {},
        },
    }
    text = run.render(figures)
    for label in ("store, TAG index", "TAG index dropped", "index seek", "qmtl list scan"):
        assert label in text
    assert "10.0x over the dropped index, 100.0x over qmtl's list scan (120.0x server" in text
    assert "store p50 1.00 ms (goal <= 5 ms: met)" in text
    assert "resubmit p95 100.0 ms (goal <= 80: NOT met)" in text
    assert "first submit (mean ms): apply 400.0" in text

    figures["tag_lookup"]["server_speedup_p50_vs_qmtl"] = None  # the index read 0 ms
    assert "(server-side: the index seek is under Neo4j's 1 ms timing resolution)" in run.render(
        figures
    )


def test_the_lookup_speed_up_goal_is_judged_against_qmtls_list_scan() -> None:
    # A dropped TAG index is slower than the index by far less than 20x (tags stay nodes with
    # a unique constraint); the 20x goal is the index seek against qmtl's list scan.
    columns = {
        name: {"p50_ms": p50}
        for name, p50 in {"store": 3.0, "dropped": 5.0, "index": 2.5, "qmtl": 70.0}.items()
    }
    figures = {
        "tag_lookup": {
            "columns": columns,
            "speedup_p50_vs_dropped": 5.0 / 3.0,
            "speedup_p50_vs_qmtl": 70.0 / 2.5,
        },
        "diff": {"first_submit": {"p95_ms": 400.0}, "resubmit": {"p95_ms": 20.0}},
    }
    by_name = {f.name: f for f in run.as_figures(figures)}
    over_qmtl = by_name["tag lookup p50 speed-up over qmtl's list scan"]
    assert (over_qmtl.ours, over_qmtl.baseline, over_qmtl.goal) == (2.5, 70.0, 20.0)
    assert over_qmtl.met() is True
    over_dropped = by_name["tag lookup p50 speed-up over the dropped TAG index"]
    assert over_dropped.goal is None
    assert over_dropped.met() is None
    assert by_name["tag lookup p50, store with TAG index"].met() is True
