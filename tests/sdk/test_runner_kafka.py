"""The runner on the real Kafka: SRC -> MA(3) -> SIGNAL (tests/sdk/runner_process.py), and a
runner process killed with SIGKILL mid-stream and restarted in the same group: downstream,
every bucket has exactly one output after dedupe by the dedupe key, none missing.

Node topics are made as the DAG Manager makes them (one partition), under a random prefix,
and deleted afterwards. Outputs are counted by reading the topics with a raw consumer.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from qmtl.data.v1 import record_pb2
from qmtl.runtime.endpoints import ServiceEndpoints
from qmtl.runtime.eventbus.kafka_groups import group_lag
from qmtl.runtime.eventbus.kafka_settings import KafkaEventBusSettings
from qmtl.runtime.recordbus.kafka import KafkaRecordBus
from qmtl.runtime.records import DedupeKey, bucket_seconds, dedupe_key
from qmtl.services.sdk.payloads import decode_payload
from qmtl.services.sdk.runner import Runner, source_record
from tests.eventbus_kafka import TopicPrefix, private_topics, read_all
from tests.polling import eventually
from tests.sdk.runner_process import closes, expected, pipeline

REPO = Path(__file__).resolve().parents[2]
NAMES = ("src", "ma", "signal")
SETTINGS = KafkaEventBusSettings(
    session_timeout_ms=6_000, heartbeat_interval_ms=500, fetch_wait_ms=100
)


@dataclass
class Topics:
    prefix: TopicPrefix

    @property
    def names(self) -> tuple[str, str, str]:
        src, ma, sig = (self.prefix(n) for n in NAMES)
        return src, ma, sig


@pytest.fixture
async def topics(endpoints: ServiceEndpoints) -> AsyncIterator[Topics]:
    prefix = TopicPrefix.fresh("runner")
    async with private_topics(endpoints.kafka_bootstrap, NAMES, prefix=prefix, partitions=1):
        yield Topics(prefix)


async def outputs_by_bucket(bootstrap: str, topic: str) -> dict[int, list[record_pb2.Record]]:
    """Every record of `topic`, read raw (no group), by bucket."""
    found: dict[int, list[record_pb2.Record]] = defaultdict(list)
    for raw in await read_all(bootstrap, topic):
        record = record_pb2.Record.FromString(raw.value)
        found[bucket_seconds(record)].append(record)
    return found


def unique_values(by_bucket: dict[int, list[record_pb2.Record]]) -> dict[int, Any]:
    """bucket -> value, after dedupe by the dedupe key; fails if a bucket has two distinct
    outputs (two dedupe keys)."""
    values: dict[int, Any] = {}
    for bucket, records in by_bucket.items():
        keys: set[DedupeKey] = {dedupe_key(r) for r in records}
        assert len(keys) == 1, f"bucket {bucket} has {len(keys)} distinct outputs: {keys}"
        values[bucket] = decode_payload(records[0].payload_type, records[0].payload)
    return values


async def test_the_pipeline_runs_on_kafka(endpoints: ServiceEndpoints, topics: Topics) -> None:
    bootstrap = endpoints.kafka_bootstrap
    p = pipeline()
    bars = closes(12)
    want_ma, want_signal = expected(bars)
    bus = await KafkaRecordBus.connect(bootstrap, client_id="runner-test", settings=SETTINGS)
    runner = Runner(p.plan(topics.names), bus, group=topics.prefix("group"))
    try:
        await runner.start()
        await runner.feed(p.src, bars)

        async def done() -> bool:
            return len(await outputs_by_bucket(bootstrap, topics.names[2])) == len(want_signal)

        await eventually(done, what="every signal output", within=60)
        assert runner.failure is None
    finally:
        await runner.stop()
        await bus.aclose()
    ma = await outputs_by_bucket(bootstrap, topics.names[1])
    sig = await outputs_by_bucket(bootstrap, topics.names[2])
    assert unique_values(ma) == want_ma
    assert unique_values(sig) == want_signal
    assert sum(len(r) for r in ma.values()) == len(want_ma)  # no duplicate at all here


@dataclass
class RunnerProcess:
    """tests/sdk/runner_process.py as its own Python process."""

    proc: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def spawn(cls, log: Path, *args: str) -> RunnerProcess:
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "tests.sdk.runner_process", *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        return cls(proc, log)

    def check_alive(self) -> None:
        code = self.proc.poll()
        if code is not None:
            tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-30:])
            raise AssertionError(f"runner exited early with {code}; its log:\n{tail}")

    def ready(self) -> bool:
        return self.log.exists() and "ready" in self.log.read_text(errors="replace")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)


BARS = 60
KILL_AFTER = 20  # MA outputs downstream before the kill (of 58; at 50 ms per MA call)


async def test_a_runner_killed_mid_stream_and_restarted_leaves_complete_unique_outputs(
    endpoints: ServiceEndpoints, topics: Topics, tmp_path: Path
) -> None:
    bootstrap = endpoints.kafka_bootstrap
    p = pipeline()
    bars = closes(BARS)
    want_ma, want_signal = expected(bars)
    src_topic, ma_topic, signal_topic = topics.names
    group = topics.prefix("group")
    processes: list[RunnerProcess] = []

    def spawn(name: str, delay: float) -> RunnerProcess:
        args = (bootstrap, group, *topics.names, str(delay))
        process = RunnerProcess.spawn(tmp_path / f"{name}.log", *args)
        processes.append(process)
        return process

    async def ready(process: RunnerProcess) -> None:
        async def up() -> bool:
            return process.ready()

        await eventually(up, what="the runner process to subscribe", within=60, watch=[process])

    try:
        first = spawn("first", 0.05)  # 50 ms per MA call: the stream takes seconds
        await ready(first)
        bus = await KafkaRecordBus.connect(bootstrap, client_id="runner-feed", settings=SETTINGS)
        try:
            await bus.produce(src_topic, [source_record(p.src, ts, v) for ts, v in bars])
        finally:
            await bus.aclose()

        async def some_outputs() -> bool:
            return len(await read_all(bootstrap, ma_topic)) >= KILL_AFTER

        await eventually(some_outputs, what=f"{KILL_AFTER} MA outputs", within=60, watch=[first])
        first.kill()
        assert first.proc.returncode == -signal.SIGKILL
        (lag,) = await group_lag(bootstrap, group, [src_topic])
        before = await outputs_by_bucket(bootstrap, ma_topic)
        # Killed mid-stream: the group committed part of the source, and part of the output
        # is missing.
        assert lag.committed is not None
        assert 0 < lag.committed < BARS, lag
        assert KILL_AFTER <= len(before) < len(want_ma)

        second = spawn("second", 0.0)
        await ready(second)

        async def complete() -> bool:
            return len(await outputs_by_bucket(bootstrap, signal_topic)) == len(want_signal)

        await eventually(complete, what="every signal bucket", within=90, watch=[second])

        async def all_committed() -> bool:
            now = await group_lag(bootstrap, group, [src_topic, ma_topic])
            return sum(lag.lag for lag in now) == 0

        await eventually(all_committed, what="the group to commit the stream", watch=[second])
        second.kill()
    finally:
        for process in processes:
            process.kill()

    ma = await outputs_by_bucket(bootstrap, ma_topic)
    sig = await outputs_by_bucket(bootstrap, signal_topic)
    assert unique_values(ma) == want_ma
    assert unique_values(sig) == want_signal
    extra = sum(len(r) for r in sig.values()) - len(want_signal)
    extra += sum(len(r) for r in ma.values()) - len(want_ma)
    print(f"killed with {lag.committed}/{BARS} bars committed; {extra} repeated records")
