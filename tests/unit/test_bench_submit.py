"""bench/submit's pure parts: the distinct known-node submissions, the open-loop schedule, the
CPU and throughput arithmetic, the arguments, the report and the table. No timing is asserted
and no server is used; the bench itself runs in `make bench`."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pytest

from bench.graph.stats import summarize
from bench.graph.workload import vocabulary
from bench.results import merge_report
from bench.submit import run
from bench.submit.workload import (
    EXTRA_NODES,
    Throughput,
    WorkloadError,
    arrivals,
    cpu_seconds,
    leaves,
    per_submission,
    submission,
    variants,
    warmup_dag,
)
from qmtl.dag.v1 import dag_pb2
from qmtl.runtime import nodeid
from qmtl.runtime.dag_validation import DagLimits, validate_dag


@pytest.fixture(scope="module")
def dag() -> dag_pb2.Dag:
    return warmup_dag(100, "unit", vocabulary(100))


def test_each_submission_is_a_distinct_valid_dag_of_known_nodes(dag: dag_pb2.Dag) -> None:
    assert len(dag.nodes) == 100 + EXTRA_NODES
    known = {node.node_id for node in dag.nodes}
    parts = list(variants(dag, 30))
    hashes = {nodeid.dag_hash(n.node_id for n in part.nodes) for part in parts}
    assert len(hashes) == 30, "every submission a dag_hash of its own (no E_DUPLICATE)"
    for part in parts[:5]:
        ids = {node.node_id for node in part.nodes}
        assert len(part.nodes) == 100
        assert ids < known
        assert all(edge.target in ids and edge.source in ids for edge in part.edges)
        request = submission(part, "unit", wait_s=30)
        # The Gateway's own validation accepts it: ids, crc, edges, no dangling dependency.
        validate_dag(request.dag, request.node_ids_crc32, DagLimits())
        assert request.wait_timeout.seconds == 30


def test_leaves_are_the_nodes_nothing_depends_on(dag: dag_pb2.Dag) -> None:
    found = leaves(dag)
    depended = {dep for node in dag.nodes for dep in node.spec.dependencies}
    assert found
    assert not set(found) & depended
    assert len(found) + len({n.node_id for n in dag.nodes} & depended) == len(dag.nodes)


def test_variants_skip_earlier_phases_and_refuse_more_than_the_pairs(dag: dag_pb2.Dag) -> None:
    first = [nodeid.dag_hash(n.node_id for n in p.nodes) for p in variants(dag, 10)]
    later = [nodeid.dag_hash(n.node_id for n in p.nodes) for p in variants(dag, 5, skip=5)]
    assert later == first[5:]
    count = len(leaves(dag))
    with pytest.raises(WorkloadError, match="pairs"):
        list(variants(dag, count * (count - 1) // 2 + 1))


def test_arrivals_are_open_loop_at_the_fixed_rate() -> None:
    assert arrivals(50, 4) == [0.0, 0.02, 0.04, 0.06]
    assert arrivals(2, 0) == []
    with pytest.raises(WorkloadError):
        arrivals(0, 3)


def test_cpu_seconds_reads_utime_and_stime_after_a_command_name_with_spaces() -> None:
    fields = ["S", "1", "1", "1", "0", "-1", "4194560", "10", "0", "0", "0", "250", "50"]
    line = "4242 (qmtl gate way) " + " ".join(fields) + " 0 0 20 0 4"
    assert cpu_seconds(line, 100) == 3.0
    own = Path(f"/proc/{os.getpid()}/stat").read_text()
    assert cpu_seconds(own, os.sysconf("SC_CLK_TCK")) > 0


def test_throughput_and_cpu_per_submission() -> None:
    assert Throughput(100, 4.0).per_second == 25.0
    assert Throughput(100, 0.0).per_second == 0.0
    assert per_submission(3.0, 150) == 0.02
    with pytest.raises(WorkloadError):
        per_submission(1.0, 0)


def test_parse_fills_full_or_quick_defaults_and_refuses_bad_values() -> None:
    full, quick = run.parse([]), run.parse(["--quick"])
    assert (full.nodes, full.submissions, full.sequential, full.rate) == (1000, 100, 20, 50.0)
    assert (quick.nodes, quick.submissions, quick.sequential) == (100, 20, 5)
    assert run.parse(["--quick", "--nodes", "300"]).nodes == 300
    for bad in (["--nodes", "0"], ["--rate", "0"], ["--submissions", "-1"]):
        with pytest.raises(SystemExit):
            run.parse(bad)


def _run(p50_s: float, completed: int, span_s: float, cpu_s: float) -> run.Run:
    return run.Run(summarize([p50_s] * 3), Throughput(completed, span_s), cpu_s)


def test_report_ratios_and_the_cpu_goal_and_table(tmp_path: Path) -> None:
    runs = {
        "real_one_at_a_time": _run(0.3, 20, 6.0, 2.0),
        "real_offered_1x1": _run(2.0, 100, 20.0, 10.0),
        "real_offered_2x2": _run(1.5, 100, 16.0, 10.5),
        "memory_one_at_a_time": _run(0.2, 20, 4.0, 1.0),
        "memory_offered": _run(1.0, 100, 10.0, 5.0),
    }
    args = argparse.Namespace(quick=True, nodes=1000, rate=50.0, submissions=100, sequential=20)
    figures = run.report(args, runs, summarize([0.1] * 3), 1.0)
    assert figures["overhead_p50_real"] == pytest.approx(3.0)
    assert figures["overhead_p50_memory"] == pytest.approx(2.0)
    scaling = figures["scaling"]
    assert scaling["cpu_s_per_submission_1x1"] == 0.1
    assert scaling["cpu_ratio_2x2_over_1x1"] == 1.05
    assert scaling["met"] is True
    assert figures["runs"]["real_offered_2x2"]["throughput_per_s"] == 6.25
    table = run.render(figures)
    assert "ratio 1.05x (goal <= 1.1x: met)" in table
    assert "real 3.00x, memory 2.00x" in table
    data = run.as_figures(figures)
    assert [(f.name, f.met()) for f in data] == [
        ("CPU per submission, 2+2 over 1+1", True),
        ("submit p50 through the services vs bare diff (real)", None),
    ]
    merged = merge_report(tmp_path / "latest.json", "submit-quick", figures, data)
    assert merged["figures"][0]["met"] is True
    assert json.loads((tmp_path / "latest.json").read_text()) == merged

    runs["real_offered_2x2"] = _run(1.5, 100, 16.0, 12.0)
    missed = run.report(args, runs, summarize([0.1] * 3), 1.0)
    assert missed["scaling"]["met"] is False
    assert "NOT met" in run.render(missed)
