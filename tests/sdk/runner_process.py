"""The test pipeline of the runner tests, and a runner process for the kill -9 test.

SRC (a StreamInput of closes) -> MA(3) (the mean of the last 3 closes, nothing before 3) ->
SIGNAL (period 2: "up" when the MA rose since the bar before, "down" otherwise). The compute
functions count their calls in CALLS, by node name.

    python -m tests.sdk.runner_process BOOTSTRAP GROUP SRC_TOPIC MA_TOPIC SIGNAL_TOPIC DELAY_S

runs MA and SIGNAL on the real Kafka in consumer group GROUP, sleeping DELAY_S in each MA call
(so a test can kill it mid-stream), and prints "ready" once subscribed. Runs until killed.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass

from qmtl.services.sdk.authoring import Node, StreamInput
from qmtl.services.sdk.runner import ComputeView, Runner, RunPlan
from qmtl.services.sdk.strategy import Strategy

CALLS: Counter[str] = Counter()
MA_DELAY_ENV = "QMTL_TEST_MA_DELAY_S"


def ma3(view: ComputeView) -> float | None:
    CALLS["ma3"] += 1
    delay = float(os.environ.get(MA_DELAY_ENV, "0"))
    if delay:
        time.sleep(delay)
    closes = view[view.node.inputs[0]]
    if len(closes) < 3:
        return None
    return float(sum(closes)) / 3


def direction(view: ComputeView) -> str | None:
    CALLS["signal"] += 1
    averages = view[view.node.inputs[0]]
    if len(averages) < 2:
        return None
    return "up" if averages[-1] > averages[-2] else "down"


@dataclass(frozen=True)
class Pipeline:
    src: StreamInput
    ma: Node
    signal: Node
    strategy: Strategy

    def plan(self, topics: tuple[str, str, str], run: frozenset[str] | None = None) -> RunPlan:
        ids = (self.src.node_id, self.ma.node_id, self.signal.node_id)
        return RunPlan(
            strategy=self.strategy,
            topics=dict(zip(ids, topics, strict=True)),
            run=run if run is not None else frozenset(ids[1:]),
            tag_inputs={},
        )


def pipeline() -> Pipeline:
    src = StreamInput(tags=["test", "price"], interval=60, period=3, name="src")
    ma = Node(input=src, compute_fn=ma3, period=3, name="ma3")
    signal = Node(input=ma, compute_fn=direction, period=2, name="signal")
    return Pipeline(src, ma, signal, Strategy("runner-test", [signal]))


def closes(n: int) -> list[tuple[int, float]]:
    """n bars, (bucket_ts, close): a zigzag, so the signal has both directions."""
    return [(60 * t, float(100 + (t % 7) * 3 - (t % 3) * 5)) for t in range(n)]


def expected(bars: list[tuple[int, float]]) -> tuple[dict[int, float], dict[int, str]]:
    """The MA and SIGNAL outputs, by bucket, that `bars` must give."""
    values = [v for _, v in bars]
    ma = {bars[t][0]: sum(values[t - 2 : t + 1]) / 3 for t in range(2, len(bars))}
    keys = sorted(ma)
    signal = {
        keys[i]: "up" if ma[keys[i]] > ma[keys[i - 1]] else "down" for i in range(1, len(keys))
    }
    return ma, signal


async def main(bootstrap: str, group: str, topics: tuple[str, str, str], delay: float) -> None:
    from qmtl.runtime.eventbus.kafka_settings import KafkaEventBusSettings
    from qmtl.runtime.recordbus.kafka import KafkaRecordBus

    os.environ[MA_DELAY_ENV] = str(delay)
    # Small fetches: the group commits every few source bars, so a kill lands mid-stream
    # between commits, with outputs produced after the last one.
    settings = KafkaEventBusSettings(
        session_timeout_ms=6_000, heartbeat_interval_ms=500, fetch_wait_ms=100, max_poll_records=5
    )
    bus = await KafkaRecordBus.connect(bootstrap, client_id="runner-process", settings=settings)
    runner = Runner(pipeline().plan(topics), bus, group=group)
    await runner.start()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    bootstrap, group, src_topic, ma_topic, signal_topic, delay_s = sys.argv[1:7]
    asyncio.run(main(bootstrap, group, (src_topic, ma_topic, signal_topic), float(delay_s)))
