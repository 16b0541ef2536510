"""/dashboard of a running `qmtl gateway --backend memory`, rendered by headless Chromium.

A strategy with a tag query, then two strategies sharing three nodes, are submitted through the
internal API. The page, loaded anonymously with every non-loopback request failing (no CDN can
help it), must show the Gateway's health and each backend's, the work queue by state, every
strategy COMPLETED, the DAG of the newest with each node coloured new or reused and the nodes
both strategies hold named as shared, and the queues answering the tag query. The DOM is read
once the page marks itself loaded (`#updated[data-loaded]`), after Chromium's virtual time
budget. QMTL_UPDATE_DASHBOARD_SCREENSHOT=1 also rewrites docs/operations/dashboard.png.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from qmtl.gateway.v1 import strategy_messages_pb2
from qmtl.runtime import nodeid
from tests.chromium import dump_dom, run_chromium
from tests.dag_manager.dag_builders import DagBuilder
from tests.gateway.test_gateway_process import gateway, submission, submit_and_complete
from tests.serve.service_process import REPO, ServiceProcess

SCREENSHOT = REPO / "docs" / "operations" / "dashboard.png"


def tag_query_submission() -> strategy_messages_pb2.SubmitStrategyRequest:
    """A TagQueryNode asking for the btc streams at 60 s, and a node reading it."""
    builder = DagBuilder()
    query = builder.tag_query(["btc"], interval=60)
    builder.node("Signal", params={"reads": "btc"}, deps=[query])
    dag = builder.dag()
    request = strategy_messages_pb2.SubmitStrategyRequest(
        node_ids_crc32=nodeid.node_ids_crc32(n.node_id for n in dag.nodes)
    )
    request.dag.CopyFrom(dag)
    return request


@pytest.fixture
async def process() -> AsyncIterator[ServiceProcess]:
    started = gateway("--backend", "memory", "--dashboard", "anonymous")
    await started.start()
    try:
        await started.wait_ready()
        yield started
    finally:
        await started.close()


async def screenshot(url: str, profile: Path, out: Path) -> None:
    await run_chromium(
        profile,
        "--hide-scrollbars",
        "--window-size=1280,1200",
        "--virtual-time-budget=15000",
        f"--screenshot={out}",
        url,
    )


def rows(dom: str, attribute: str) -> dict[str, str]:
    """`attribute` value -> the whole opening tag, for each table row carrying it."""
    found = re.finditer(rf'<tr [^>]*{attribute}="([^"]+)"[^>]*>', dom)
    return {m.group(1): m.group(0) for m in found}


async def test_the_dashboard_shows_health_strategies_and_the_dag(
    process: ServiceProcess, tmp_path: Path
) -> None:
    tagged, small, large = tag_query_submission(), submission("btc", nodes=3), submission("btc", 4)
    tagged.name, small.name, large.name = "tag query", "three nodes", "four nodes"
    submitted = (tagged, small, large)  # the newest, four nodes, is the one the graph shows
    statuses: list[strategy_messages_pb2.GetStrategyStatusResponse] = []
    async with httpx.AsyncClient() as http:
        for request in submitted:
            statuses.append(await submit_and_complete(http, process, request))
    ids = {s.strategy_id: request for s, request in zip(statuses, submitted, strict=True)}

    dom = await dump_dom(process.url("public", "/dashboard"), tmp_path / "dom")
    process.check_alive()

    assert 'data-loaded="true"' in dom, dom[-3000:]
    # Nothing inline the Content-Security-Policy would refuse (cytoscape's stylesheet included).
    assert "<style" not in dom
    assert re.search(r'id="error"[^>]*></span>', dom), "the page reported an error"
    health = re.search(r'<section id="health"[^>]*>.*?</section>', dom, re.S)
    assert health is not None
    assert 'data-service="gateway"' in health.group(0)
    assert "HEALTH_STATE_OK" not in health.group(0)
    assert ">OK<" in health.group(0)
    backends = rows(health.group(0), "data-backend")
    assert set(backends) == {"strategy_store", "work_queue", "event_bus", "dag_manager"}
    for name in backends:
        row = re.search(rf'data-backend="{name}".*?</tr>', health.group(0), re.S)
        assert row is not None
        assert ">OK<" in row.group(0), row.group(0)
    # Both jobs done: nothing waits, nothing is dead-lettered.
    for state in ("ready", "leased", "delayed", "dead"):
        assert f'data-queue-state="{state}"' in dom
        assert re.search(rf'data-queue-state="{state}"[^>]*><b>0</b>', dom), state

    strategies = rows(dom, "data-strategy-id")
    assert set(strategies) == set(ids)
    assert all('data-state="COMPLETED"' in tag for tag in strategies.values())
    assert f'<li data-state="COMPLETED" class="state completed"><b>{len(ids)}</b>' in dom

    shown = re.search(r'id="graph" data-strategy-id="([^"]+)"', dom)
    assert shown is not None
    assert ids[shown.group(1)] is large
    nodes = rows(dom, "data-node-id")
    assert set(nodes) == {n.node_id for n in large.dag.nodes}
    shared = {n.node_id for n in small.dag.nodes}
    assert len(shared) == 3
    assert shared < set(nodes)
    for node_id, tag in nodes.items():
        assert f'data-node-state="{"reused" if node_id in shared else "new"}"' in tag, tag
        # A shared node names both strategies holding it; the fourth only the large one.
        cells = re.search(rf'data-node-id="{node_id}".*?</tr>', dom, re.S)
        assert cells is not None
        holders = {"three nodes", "four nodes"} if node_id in shared else {"four nodes"}
        assert all(name in cells.group(0) for name in holders), cells.group(0)
        assert ("three nodes" in cells.group(0)) == (node_id in shared)
    assert re.search(r'<div id="graph"[^>]*>.*?<canvas', dom, re.S), "cytoscape drew nothing"

    # The tag query asks for btc at 60 s: the queues of the four btc nodes answer it.
    queues = re.search(r'<section id="queues"[^>]*>.*?</section>', dom, re.S)
    assert queues is not None
    topics = set(re.findall(r'<td class="mono">([^<]+)</td>', queues.group(0)))
    assert len(topics) == 4, topics
    assert all(t.startswith("btc_") for t in topics), topics

    out = tmp_path / "dashboard.png"
    await screenshot(process.url("public", "/dashboard"), tmp_path / "shot", out)
    png = out.read_bytes()
    assert png.startswith(b"\x89PNG")
    assert len(png) > 10_000
    if os.environ.get("QMTL_UPDATE_DASHBOARD_SCREENSHOT") == "1":
        SCREENSHOT.write_bytes(png)
