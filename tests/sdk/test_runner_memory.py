"""The runner on the in-memory record bus: SRC -> MA(3) -> SIGNAL (tests/sdk/runner_process.py).

Outputs are awaited by polling the output topics (`eventually`), never a fixed sleep.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from qmtl.dag.v1 import node_status_pb2
from qmtl.runtime.recordbus import InMemoryRecordBus
from qmtl.runtime.records import bucket_seconds
from qmtl.services.sdk.authoring import Node, StreamInput, TagQueryNode
from qmtl.services.sdk.payloads import decode_payload
from qmtl.services.sdk.runner import ComputeView, Runner, RunPlan, source_record
from qmtl.services.sdk.runner.errors import RunnerError
from qmtl.services.sdk.strategy import Strategy
from tests.polling import eventually
from tests.sdk.runner_process import CALLS, closes, expected, pipeline

TOPICS = ("t.src", "t.ma", "t.signal")


@pytest.fixture
async def bus() -> AsyncIterator[InMemoryRecordBus]:
    CALLS.clear()
    memory = InMemoryRecordBus()
    try:
        yield memory
    finally:
        await memory.aclose()


async def outputs(bus: InMemoryRecordBus, topic: str) -> dict[int, Any]:
    """bucket -> value of every record on `topic`; fails on two records for one bucket."""
    found: dict[int, Any] = {}
    for delivery in await bus.read(topic):
        record = delivery.record
        bucket = bucket_seconds(record)
        assert bucket not in found, f"two outputs for bucket {bucket} on {topic}"
        found[bucket] = decode_payload(record.payload_type, record.payload)
    return found


async def until_committed(bus: InMemoryRecordBus, group: str, topic: str, offset: int) -> None:
    async def handled() -> bool:
        return bus.committed(group, topic) == {0: offset}

    await eventually(handled, what=f"group {group} committed {topic} up to {offset}")


async def until_count(bus: InMemoryRecordBus, topic: str, count: int) -> None:
    async def enough() -> bool:
        return len(await bus.read(topic)) >= count

    await eventually(enough, what=f"{count} records on {topic}")


async def test_the_pipeline_computes_every_bucket_once_with_the_right_values(
    bus: InMemoryRecordBus,
) -> None:
    p = pipeline()
    reported: list[Sequence[node_status_pb2.NodeState]] = []

    async def report(states: Sequence[node_status_pb2.NodeState]) -> None:
        reported.append(states)

    runner = Runner(p.plan(TOPICS), bus, group="g", report=report, clock=lambda: 1_700_000_000.0)
    await runner.start()
    bars = closes(12)
    await runner.feed(p.src, bars)
    want_ma, want_signal = expected(bars)
    await until_count(bus, TOPICS[2], len(want_signal))
    await runner.stop()
    assert await outputs(bus, TOPICS[1]) == want_ma
    assert await outputs(bus, TOPICS[2]) == want_signal
    assert dict(CALLS) == {
        "ma3": 12,
        "signal": 10,
    }  # once per bar; SIGNAL sees only MA's 10 outputs
    counts = runner.counts()
    assert (counts[p.ma.node_id].produced, counts[p.ma.node_id].empty) == (10, 2)
    # Every output names its node, interval, bucket and the window it was computed from.
    for delivery in await bus.read(TOPICS[1]):
        assert delivery.record.node_id == p.ma.node_id
        assert delivery.record.interval == 60
        assert len(delivery.record.input_window_hash) == 64
    (first,) = reported
    assert [(s.node_id, s.status) for s in first] == sorted(
        (n, node_status_pb2.NODE_STATUS_RUNNING) for n in (p.ma.node_id, p.signal.node_id)
    )
    assert first[0].started_at.seconds == 1_700_000_000


async def test_a_node_not_in_run_is_consumed_never_computed(bus: InMemoryRecordBus) -> None:
    p = pipeline()
    bars = closes(8)
    want_ma, want_signal = expected(bars)
    # Another strategy's process computes MA (run = {MA}) ...
    upstream = Runner(p.plan(TOPICS, frozenset({p.ma.node_id})), bus, group="other")
    await upstream.start()
    await upstream.feed(p.src, bars)
    await until_count(bus, TOPICS[1], len(want_ma))
    assert dict(CALLS) == {"ma3": 8}
    # ... this one reuses it: only SIGNAL runs, from MA's topic.
    runner = Runner(p.plan(TOPICS, frozenset({p.signal.node_id})), bus, group="mine")
    await runner.start()
    await until_count(bus, TOPICS[2], len(want_signal))
    await runner.stop()
    await upstream.stop()
    assert {"ma3": 8, "signal": len(want_ma)} == CALLS
    assert await outputs(bus, TOPICS[1]) == want_ma
    assert await outputs(bus, TOPICS[2]) == want_signal
    assert set(runner.counts()) == {p.signal.node_id}


async def test_replayed_input_and_a_restart_produce_no_second_output(
    bus: InMemoryRecordBus,
) -> None:
    p = pipeline()
    bars = closes(10)
    want_ma, want_signal = expected(bars)
    runner = Runner(p.plan(TOPICS), bus, group="g")
    await runner.start()
    await runner.feed(p.src, bars)
    await runner.feed(p.src, bars)  # the same bars again: same dedupe keys
    await until_count(bus, TOPICS[2], len(want_signal))
    await until_committed(bus, "g", TOPICS[0], 2 * len(bars))
    await runner.stop()
    assert CALLS["ma3"] == 10
    # A new process of the same group: windows rebuilt from the topics, nothing new produced.
    again = Runner(p.plan(TOPICS), bus, group="g")
    await again.start()
    await again.feed(p.src, bars[-3:])
    await until_committed(bus, "g", TOPICS[0], 2 * len(bars) + 3)
    await again.stop()
    assert len(await bus.read(TOPICS[1])) == len(want_ma)
    assert await outputs(bus, TOPICS[2]) == want_signal
    counts = again.counts()
    assert counts[p.ma.node_id].produced == counts[p.signal.node_id].produced == 0
    assert counts[p.ma.node_id].duplicates == len(want_ma)
    # Only the two buckets that gave no output are computed again.
    assert CALLS["ma3"] == 12


def tq_sum(view: ComputeView) -> float:
    return float(sum(view.latest(key) for key in view))


async def test_update_tag_inputs_picks_up_a_new_topic_without_a_restart(
    bus: InMemoryRecordBus,
) -> None:
    a = StreamInput(tags=["px", "a"], interval=60, period=2, name="a", config={"s": "a"})
    b = StreamInput(tags=["px", "b"], interval=60, period=2, name="b", config={"s": "b"})
    tq = TagQueryNode(query_tags=["px"], interval=60, period=2, compute_fn=tq_sum, name="tq")
    plan = RunPlan(
        strategy=Strategy("tq", [tq]),
        topics={tq.node_id: "t.tq"},
        run=frozenset({tq.node_id}),
        tag_inputs={tq.node_id: ("t.a",)},
    )
    runner = Runner(plan, bus, group="g")
    await runner.start()
    await bus.produce("t.a", [source_record(a, 60 * t, 1.0 + t) for t in range(3)])
    await until_count(bus, "t.tq", 3)
    await bus.produce("t.b", [source_record(b, 60 * t, 100.0 * t) for t in range(5)])
    runner.update_tag_inputs(tq.node_id, ["t.a", "t.b"])
    await bus.produce("t.a", [source_record(a, 60 * t, 1.0 + t) for t in range(3, 5)])
    await until_count(bus, "t.tq", 5)
    assert runner.failure is None
    await runner.stop()
    # Buckets 0-2 before B was known: A alone; 3-4: A + B (B's history was replayed).
    assert await outputs(bus, "t.tq") == {0: 1.0, 60: 2.0, 120: 3.0, 180: 304.0, 240: 405.0}


def broken(view: ComputeView) -> float:
    raise ZeroDivisionError("the quant's bug")


async def test_a_failing_compute_function_fails_its_node_and_is_reported(
    bus: InMemoryRecordBus,
) -> None:
    src = StreamInput(tags=["x"], interval=60, period=1, name="src")
    bad = Node(input=src, compute_fn=broken, period=1, name="bad")
    reported: list[Sequence[node_status_pb2.NodeState]] = []

    async def report(states: Sequence[node_status_pb2.NodeState]) -> None:
        reported.append(states)

    plan = RunPlan(
        strategy=Strategy("bad", [bad]),
        topics={src.node_id: "t.src", bad.node_id: "t.bad"},
        run=frozenset({bad.node_id}),
        tag_inputs={},
    )
    runner = Runner(plan, bus, group="g", report=report)
    await runner.start()
    await runner.feed(src, [(0, 1.0), (60, 2.0)])
    await until_committed(bus, "g", "t.src", 2)
    assert len(reported) == 2  # RUNNING at start, then FAILED
    await runner.stop()
    (state,) = reported[-1]
    assert state.status == node_status_pb2.NODE_STATUS_FAILED
    assert state.error.code == "E_INTERNAL"
    assert "'bad' raised at bucket 0" in state.error.message
    assert state.HasField("finished_at")
    assert runner.failure is None  # the runner goes on; the node is not called again
    assert await bus.read("t.bad") == []


async def test_a_plan_naming_a_node_outside_the_strategy_is_refused(
    bus: InMemoryRecordBus,
) -> None:
    p = pipeline()
    plan = p.plan(TOPICS, frozenset({"blake3:" + "0" * 64}))
    with pytest.raises(RunnerError, match="not a node of strategy"):
        Runner(plan, bus, group="g")
