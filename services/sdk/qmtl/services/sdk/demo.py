"""What `qmtl demo` runs and prints: two sample strategies that share their moving averages.

Strategy 1, `demo-crossover`: a price source (`StreamInput`, one-minute bars), MA(5) and MA(20)
over it, and a crossover signal ("buy" when MA(5) crosses above MA(20), "sell" when below).
Strategy 2, `demo-spread`: the same source and moving averages, built again from the same code
(hence the same node ids), and the MA(5)-MA(20) spread in basis points. The Gateway answers the
second submission with the source and both averages *reused*: its process consumes their topics
and computes only the spread, which the compute-call counts show.

The prices (demo_data/prices.csv) are 300 synthetic closes, deterministic:
`100 + 10 sin(2πt/50) + 3 sin(2πt/13) + 0.02 t`, rounded to cents, from 2024-01-01 00:00 UTC.

The caller (qmtl.cli.demo) provides the Gateway client and the record bus; this module only
talks to them, like any strategy process.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, Protocol, TextIO

from qmtl.dag.v1.node_status_pb2 import NodeStatus
from qmtl.gateway.v1.strategy_messages_pb2 import (
    GetStrategyStatusRequest,
    GetStrategyStatusResponse,
)
from qmtl.runtime.recordbus import RecordBus

from .authoring import Node, StreamInput
from .client import GatewayCalls, Submitted, submit
from .payloads import decode_payload
from .reporting import NodeStatusCalls, node_status_reporter
from .runner.runner import Runner
from .runner.view import ComputeView
from .strategy import Strategy

PRICES_FILE = "prices.csv"
PROGRESS_EVERY_S = 1.0
RUN_WITHIN_S = 120.0


@dataclass
class NodeCalls:
    """How often a node's compute function ran, and the last bar it ran for."""

    calls: int = 0
    last_bucket: int = 0


# node id -> its compute calls in this process; the sample compute functions count themselves
# here (a wrapper would change their code hash, hence their ids).
CALLS: dict[str, NodeCalls] = {}


def _count(view: ComputeView) -> None:
    calls = CALLS.setdefault(view.node.node_id, NodeCalls())
    calls.calls += 1
    calls.last_bucket = max(calls.last_bucket, view.bucket_ts)


def moving_average(view: ComputeView) -> float | None:
    """The mean of the last `period` closes; nothing until that many have arrived."""
    _count(view)
    closes = view[view.node.inputs[0]]
    if len(closes) < view.node.period:
        return None
    return round(float(sum(closes)) / len(closes), 4)


def crossover(view: ComputeView) -> str | None:
    """Says "buy" on the bar MA(fast) crosses above MA(slow), "sell" when it crosses below."""
    _count(view)
    fast, slow = view.node.inputs
    f, s = view[fast], view[slow]
    if len(f) < 2 or len(s) < 2:
        return None
    before, now = f[-2] - s[-2], f[-1] - s[-1]
    if before <= 0 < now:
        return "buy"
    if before >= 0 > now:
        return "sell"
    return None


def spread_bps(view: ComputeView) -> float:
    """MA(fast) - MA(slow) in basis points of MA(slow)."""
    _count(view)
    fast, slow = view.node.inputs
    f, s = float(view.latest(fast)), float(view.latest(slow))
    return round((f - s) / s * 10_000, 2)


def load_prices(path: Path | None = None) -> list[tuple[int, float]]:
    """(bucket_ts, close) of the bundled series, oldest first."""
    source = resources.files("qmtl.services.sdk") / "demo_data" / PRICES_FILE
    text = path.read_text() if path is not None else source.read_text()
    return [(int(row["ts"]), float(row["close"])) for row in csv.DictReader(text.splitlines())]


@dataclass(frozen=True)
class SampleNodes:
    price: StreamInput
    ma_fast: Node
    ma_slow: Node


def shared_nodes(asset: str) -> SampleNodes:
    """The source and the two averages; every call builds equal nodes (equal ids). `asset`
    is the first tag, which starts every topic name (domain.md §2.6)."""
    tags = (asset, "price")
    price = StreamInput(tags=tags, interval="60s", period=20, name="price")
    fast = Node(input=price, compute_fn=moving_average, period=5, name="ma5", tags=tags)
    slow = Node(input=price, compute_fn=moving_average, period=20, name="ma20", tags=tags)
    return SampleNodes(price, fast, slow)


def crossover_strategy(asset: str = "demo") -> tuple[Strategy, SampleNodes, Node]:
    nodes = shared_nodes(asset)
    signal = Node(
        input=[nodes.ma_fast, nodes.ma_slow], compute_fn=crossover, period=2,
        name="crossover", tags=(asset, "signal"),
    )  # fmt: skip
    return Strategy("demo-crossover", [signal]), nodes, signal


def spread_strategy(asset: str = "demo") -> tuple[Strategy, SampleNodes, Node]:
    nodes = shared_nodes(asset)
    spread = Node(
        input=[nodes.ma_fast, nodes.ma_slow], compute_fn=spread_bps, period=1,
        name="spread", tags=(asset, "spread"),
    )  # fmt: skip
    return Strategy("demo-spread", [spread]), nodes, spread


# -- running ---------------------------------------------------------------------------------


@dataclass
class Timings:
    stages: list[tuple[str, float]] = field(default_factory=list)

    @contextlib.asynccontextmanager
    async def stage(self, what: str, out: TextIO) -> AsyncIterator[None]:
        """Times `what`; prints a progress line every second while it lasts longer."""
        started = time.perf_counter()

        async def progress() -> None:
            while True:
                await asyncio.sleep(PROGRESS_EVERY_S)
                print(f"  ... {what}: {time.perf_counter() - started:.0f} s", file=out, flush=True)

        ticker = asyncio.create_task(progress())
        try:
            yield
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            self.stages.append((what, time.perf_counter() - started))

    def line(self) -> str:
        return " | ".join(f"{what} {_duration(seconds)}" for what, seconds in self.stages)


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


async def _until_computed(runs: Sequence[str], last_bucket: int, within: float) -> None:
    """Waits until every node in `runs` has computed the last bar."""
    deadline = time.monotonic() + within
    while not all(CALLS.get(n, NodeCalls()).last_bucket >= last_bucket for n in runs):
        if time.monotonic() > deadline:
            missing = [n for n in runs if CALLS.get(n, NodeCalls()).last_bucket < last_bucket]
            raise TimeoutError(f"nodes {missing} did not compute the last bar in {within:g}s")
        await asyncio.sleep(0.01)


def queue_map_lines(strategy: Strategy, submitted: Submitted) -> list[str]:
    """One line per node: name, new/reused, what this process does with it, topic."""
    reused = set(submitted.diff.reused_node_ids)
    lines = []
    width = max(len(n.name) for n in strategy.nodes)
    for node in strategy.nodes:
        state = "reused" if node.node_id in reused else "new"
        if node.node_id in submitted.plan.run:
            role = "computed here"
        elif node.node_id in reused:
            role = "consumed, not recomputed"
        else:
            role = "fed by this demo"
        topic = submitted.plan.topics[node.node_id]
        lines.append(f"    {node.name:<{width}}  {state:<6}  {role:<24}  {topic}")
    return lines


def _states_line(strategy: Strategy, status: GetStrategyStatusResponse) -> str:
    names = {node.node_id: node.name for node in strategy.nodes}
    states = sorted(
        (
            names.get(state.node_id, state.node_id),
            NodeStatus.Name(state.status).removeprefix("NODE_STATUS_"),
        )
        for state in status.node_states
    )
    return ", ".join(f"{name} {what}" for name, what in states) or "none reported"


def _calls_line(nodes: Sequence[Node], before: dict[str, int] | None = None) -> str:
    parts = []
    for node in nodes:
        now = CALLS.get(node.node_id, NodeCalls()).calls
        if before is None:
            parts.append(f"{node.name} {now}")
        else:
            parts.append(f"{node.name} {before.get(node.node_id, 0)} -> {now}")
    return ", ".join(parts)


@dataclass(frozen=True)
class DemoResult:
    first: Submitted
    second: Submitted
    signals: list[tuple[int, str]]
    calls: dict[str, int]  # node name -> compute calls at the end
    calls_after_first: dict[str, int]


async def _read_outputs(bus: RecordBus, topic: str) -> list[tuple[int, Any]]:
    return [
        (d.record.bucket_ts.seconds, decode_payload(d.record.payload_type, d.record.payload))
        for d in await bus.read(topic)
    ]


class DemoGateway(GatewayCalls, NodeStatusCalls, Protocol):
    """What the demo calls on the Gateway: submit, status reads, node-status reports."""


async def run_demo(
    client: DemoGateway,
    bus: RecordBus,
    *,
    out: TextIO,
    asset: str = "demo",
    prices: Sequence[tuple[int, float]] | None = None,
    runner_factory: Callable[..., Runner] = Runner,
    timings: Timings | None = None,
) -> DemoResult:
    """Submits both strategies, runs them on `bus`, prints the report to `out`."""
    CALLS.clear()
    timings = timings or Timings()
    bars = list(prices if prices is not None else load_prices())
    last = bars[-1][0]
    runners: list[Runner] = []
    try:
        strategy, nodes, signal = crossover_strategy(asset)
        print(f'[1/2] strategy "{strategy.name}": price -> MA(5), MA(20) -> crossover', file=out)
        async with timings.stage("submit #1", out):
            first = await submit(strategy, client)
        print(f"  submitted as {first.strategy_id}; queue map:", file=out)
        print("\n".join(queue_map_lines(strategy, first)), file=out)
        runner = runner_factory(
            first.plan,
            bus,
            group=f"demo-{first.strategy_id}",
            report=node_status_reporter(client, first.strategy_id),
        )
        runners.append(runner)
        async with timings.stage(f"run #1 ({len(bars)} bars)", out):
            await runner.start()
            await runner.feed(nodes.price, bars)
            await _until_computed(sorted(first.plan.run), last, RUN_WITHIN_S)
        computed = [nodes.ma_fast, nodes.ma_slow, signal]
        print(f"  fed {len(bars)} bars; compute calls: {_calls_line(computed)}", file=out)
        outputs = await _read_outputs(bus, first.plan.topics[signal.node_id])
        signals = [(ts, str(value)) for ts, value in outputs]
        print(f"  signals produced: {len(signals)}", file=out)
        for ts, value in signals[:6]:
            when = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")
            print(f"    {when}  {value}", file=out)
        if len(signals) > 6:
            print(f"    ... and {len(signals) - 6} more", file=out)
        after_first = {n.node_id: CALLS.get(n.node_id, NodeCalls()).calls for n in computed}
        status = await client.get_strategy_status(
            GetStrategyStatusRequest(strategy_id=first.strategy_id)
        )
        print(f"  node states at the Gateway: {_states_line(strategy, status)}", file=out)

        strategy2, nodes2, spread = spread_strategy(asset)
        print(f'[2/2] strategy "{strategy2.name}": the same price, MA(5), MA(20) -> spread',
              file=out)  # fmt: skip
        async with timings.stage("submit #2", out):
            second = await submit(strategy2, client)
        print(f"  submitted as {second.strategy_id}; queue map:", file=out)
        print("\n".join(queue_map_lines(strategy2, second)), file=out)
        runner2 = runner_factory(
            second.plan,
            bus,
            group=f"demo-{second.strategy_id}",
            report=node_status_reporter(client, second.strategy_id),
        )
        runners.append(runner2)
        async with timings.stage("run #2 (from the reused topics)", out):
            await runner2.start()
            await _until_computed(sorted(second.plan.run), last, RUN_WITHIN_S)
        spreads = await _read_outputs(bus, second.plan.topics[spread.node_id])
        reused_calls = _calls_line([nodes2.ma_fast, nodes2.ma_slow], after_first)
        spread_calls = CALLS.get(spread.node_id, NodeCalls()).calls
        print(f"  compute calls, after #1 -> after #2: {reused_calls} (reused, not recomputed); "
              f"{spread.name} {spread_calls}", file=out)  # fmt: skip
        last_spread = spreads[-1][1] if spreads else "-"
        print(f"  spread outputs: {len(spreads)}, last {last_spread} bps", file=out)
    finally:
        for running in reversed(runners):
            await running.stop()
    print(f"timings: {timings.line()}", file=out, flush=True)
    names = {n.node_id: n.name for n in [*computed, spread]}
    return DemoResult(
        first=first,
        second=second,
        signals=signals,
        calls={names[i]: CALLS.get(i, NodeCalls()).calls for i in names},
        calls_after_first={names[i]: c for i, c in after_first.items()},
    )
