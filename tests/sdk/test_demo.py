"""`qmtl demo` as a subprocess, as `make demo` runs it: exit 0 with nothing on stderr; the first
strategy's nodes are new and computed once per bar, and signals come out; the second strategy's
report names the source and both moving averages reused, their compute counts unchanged by it,
and its own node computed from the reused topics. `--backend real` (its own dagmanager and
gateway processes on the shared servers) shows the same reuse and deletes its topics after."""

from __future__ import annotations

import asyncio
import re
import subprocess

from qmtl.services.sdk.demo import load_prices
from tests.integration.services_support import list_topics
from tests.serve.service_process import QMTL, REPO

DEMO_WITHIN_S = 120


def node_line(section: str, name: str) -> str:
    """The queue-map line of node `name` (indented four spaces)."""
    lines = [line for line in section.splitlines() if line.startswith(f"    {name} ")]
    assert len(lines) == 1, section
    return lines[0]


def test_make_demo_reports_the_shared_nodes_reused_and_not_recomputed() -> None:
    done = subprocess.run(
        [str(QMTL), "demo"], cwd=REPO, capture_output=True, text=True, timeout=DEMO_WITHIN_S
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == ""
    out = done.stdout
    first, second = out.split("[2/2]")
    bars = len(load_prices())

    for name in ("price", "ma5", "ma20", "crossover"):
        assert " new " in node_line(first, name)
    assert "fed by this demo" in node_line(first, "price")
    assert f"fed {bars} bars; compute calls: ma5 {bars}, ma20 {bars}," in first
    signals = re.search(r"signals produced: (\d+)", first)
    assert signals is not None
    assert int(signals.group(1)) > 0
    # The runner's reports reached the Gateway (ReportNodeStatus -> GetStrategyStatus).
    assert "node states at the Gateway: crossover RUNNING, ma20 RUNNING, ma5 RUNNING" in first

    for name in ("price", "ma5", "ma20"):
        assert "reused  consumed, not recomputed" in node_line(second, name)
        # The second strategy consumes the very topic the first one's node writes.
        assert node_line(second, name).split()[-1] == node_line(first, name).split()[-1]
    assert "new     computed here" in node_line(second, "spread")
    calls = re.search(r"after #2: ma5 (\d+) -> (\d+), ma20 (\d+) -> (\d+).*; spread (\d+)", second)
    assert calls is not None, second
    ma5_before, ma5_after, ma20_before, ma20_after, spread = map(int, calls.groups())
    assert ma5_before == ma5_after == bars
    assert ma20_before == ma20_after == bars
    # The spread computed every bar both reused averages had, read from their topics.
    assert spread == bars - 19
    assert re.search(r"spread outputs: (\d+)", second) is not None
    assert "timings: start services" in out
    assert out.rstrip().splitlines()[-1].startswith("qmtl demo: done in ")


def test_the_real_backend_demo_reuses_too_and_deletes_its_namespace() -> None:
    done = subprocess.run(
        [str(QMTL), "demo", "--backend", "real"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=DEMO_WITHIN_S,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == ""
    first, second = done.stdout.split("[2/2]")
    for name in ("ma5", "ma20"):
        assert "reused  consumed, not recomputed" in node_line(second, name)
    bars = len(load_prices())
    assert f"ma5 {bars} -> {bars}, ma20 {bars} -> {bars}" in second
    namespace = re.search(r"topics (demo[0-9a-f]+)_\*", first)
    assert namespace is not None, first
    assert asyncio.run(list_topics(f"{namespace.group(1)}_")) == []
