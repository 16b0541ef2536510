"""Work-queue throughput: our Redis adapter against the minimal unsafe redis-py equivalent.

    python -m bench.queue.run [--jobs N] [--batch-jobs N] [--rounds R] [--max-processes P]

Each job goes enqueue -> lease -> complete; ours in a busy worker's steady state, where
complete_and_lease finishes one job and leases the next in one round trip. The baseline does
the least that moves a job through Redis, with none of the guarantees (no lease deadline, no
idempotency, no retry, no dead letter): LPUSH onto a list, LMOVE to a processing list, LREM
from it. Both run in the same process, against the same Redis with the same fsync policy,
alternating round by round; the median of the rounds is reported, with the ratio ours /
baseline.

  one at a time   one job per call: enqueue + complete_and_lease (two round trips per job)
                  against the baseline's three
  batched         100 jobs per call (enqueue_many, lease_many, complete_many) against the
                  baseline pipelined by 100 (three pipelines of 100 commands)
  processes       1..P run_worker processes (no-op handler) draining a pre-filled queue,
                  to show how throughput scales with workers
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing as mp
import os
import platform
import signal
import statistics
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from multiprocessing.synchronize import Event as MpEvent
from typing import Any

import redis.asyncio as redis

from bench.results import RESULTS, Figure, merge_report, print_figures
from qmtl.runtime.endpoints import ServiceEndpoints
from qmtl.runtime.workqueue import (
    Completion,
    QueueSettings,
    RedisWorkQueue,
    WorkerSettings,
    run_worker,
)
from qmtl.runtime.workqueue.redis_adapter import connection_retry
from qmtl.work.v1 import work_item_pb2, work_type_pb2

LEASE_TTL = 60.0
GOALS = {"one at a time": 0.8, "batched by 100": 0.5}
# Throughput of 2 run_worker processes over 1 (issue 16: >= 1.6x).
GOAL_SCALING = 1.6


def make_item(payload_bytes: int) -> work_item_pb2.WorkItem:
    return work_item_pb2.WorkItem(
        type=work_type_pb2.WORK_TYPE_OTHER,
        payload_type="qmtl.bench.Payload",
        payload=os.urandom(payload_bytes),
    )


def connect(url: str) -> redis.Redis:
    # The same client settings as the adapter's own from_url, so both sides pay the same.
    return redis.Redis.from_url(url, decode_responses=False, retry=connection_retry())


async def delete_prefix(client: redis.Redis, prefix: str) -> None:
    keys = [key async for key in client.scan_iter(match=prefix + "*", count=1000)]
    for start in range(0, len(keys), 1000):
        await client.delete(*keys[start : start + 1000])


# -- the two contenders --------------------------------------------------------------------------


async def ours_one_at_a_time(queue: RedisWorkQueue, item: work_item_pb2.WorkItem, n: int) -> None:
    run = uuid.uuid4().hex
    await queue.enqueue(item, f"{run}-0")
    lease = await queue.lease("bench", LEASE_TTL)
    for i in range(1, n + 1):
        assert lease is not None
        if i < n:
            await queue.enqueue(item, f"{run}-{i}")
            answer = await queue.complete_and_lease(
                lease.job_id, lease.token, b"", "bench", LEASE_TTL
            )
            lease = answer.next_lease
        else:
            await queue.complete(lease.job_id, lease.token, b"")


async def ours_batched(
    queue: RedisWorkQueue, item: work_item_pb2.WorkItem, n: int, batch: int
) -> None:
    run = uuid.uuid4().hex
    for start in range(0, n, batch):
        await queue.enqueue_many([(item, f"{run}-{i}") for i in range(start, start + batch)])
        leases = await queue.lease_many("bench", LEASE_TTL, batch)
        assert len(leases) == batch
        await queue.complete_many([Completion(lease.job_id, lease.token) for lease in leases])


async def baseline_one_at_a_time(client: redis.Redis, prefix: str, raw: bytes, n: int) -> None:
    queue, processing = prefix + "queue", prefix + "processing"
    for _ in range(n):
        await client.lpush(queue, raw)
        job = await client.lmove(queue, processing, "RIGHT", "LEFT")
        await client.lrem(processing, 1, job)  # type: ignore[arg-type]  # bytes, as pushed


async def baseline_batched(
    client: redis.Redis, prefix: str, raw: bytes, n: int, batch: int
) -> None:
    queue, processing = prefix + "queue", prefix + "processing"
    for _ in range(0, n, batch):
        async with client.pipeline(transaction=False) as pipe:
            for _ in range(batch):
                pipe.lpush(queue, raw)
            await pipe.execute()
        async with client.pipeline(transaction=False) as pipe:
            for _ in range(batch):
                pipe.lmove(queue, processing, "RIGHT", "LEFT")
            jobs = await pipe.execute()
        async with client.pipeline(transaction=False) as pipe:
            for job in jobs:
                pipe.lrem(processing, 1, job)
            await pipe.execute()


# -- measuring -----------------------------------------------------------------------------------


@dataclass
class Comparison:
    name: str
    ours: list[float]
    baseline: list[float]

    @property
    def ratio(self) -> float:
        return statistics.median(self.ours) / statistics.median(self.baseline)


async def timed(n: int, run: Awaitable[None]) -> float:
    """Jobs per second of `run`, a coroutine that moves `n` jobs (created, not yet started)."""
    started = time.perf_counter()
    await run
    return n / (time.perf_counter() - started)


async def compare(args: argparse.Namespace, name: str, n: int, batch: int | None) -> Comparison:
    client = connect(args.redis_url)
    item = make_item(args.payload_bytes)
    raw = item.SerializeToString()
    result = Comparison(name, [], [])
    try:
        for round_no in range(args.rounds + 1):  # round 0 warms up both sides, not counted
            queue = RedisWorkQueue(client, f"bench-{uuid.uuid4().hex[:12]}", QueueSettings())
            base_prefix = f"qmtl:bench:{uuid.uuid4().hex[:12]}:"
            count = n if round_no else max(n // 10, batch or 1)
            try:
                if batch is None:
                    base = await timed(
                        count, baseline_one_at_a_time(client, base_prefix, raw, count)
                    )
                    ours = await timed(count, ours_one_at_a_time(queue, item, count))
                else:
                    base = await timed(
                        count, baseline_batched(client, base_prefix, raw, count, batch)
                    )
                    ours = await timed(count, ours_batched(queue, item, count, batch))
            finally:
                await delete_prefix(client, queue.prefix)
                await delete_prefix(client, base_prefix)
            if round_no:
                result.ours.append(ours)
                result.baseline.append(base)
    finally:
        await client.aclose()
    return result


# -- worker processes ----------------------------------------------------------------------------


async def _noop_handler(item: work_item_pb2.WorkItem) -> bytes:
    return b""


def worker_process(url: str, name: str, ready: Any, go: MpEvent, done: Any) -> None:
    """One run_worker process with a handler that does nothing; stops on SIGTERM."""

    # The two-step shutdown logs each stop request; the benchmark's own output is the report.
    logging.getLogger("qmtl.runtime.workqueue").setLevel(logging.ERROR)

    async def work() -> None:
        client = connect(url)
        queue = RedisWorkQueue(client, name, QueueSettings())
        await client.ping()
        ready.put(os.getpid())
        await asyncio.to_thread(go.wait)
        settings = WorkerSettings(lease_ttl=LEASE_TTL, poll_interval=0.01, reap_interval=5.0)
        report = await run_worker(
            queue, _noop_handler, worker_id=f"bench-{os.getpid()}", settings=settings
        )
        done.put(report.completed)
        await client.aclose()

    asyncio.run(work())


async def fill(url: str, name: str, n: int, item: work_item_pb2.WorkItem) -> None:
    client = connect(url)
    queue = RedisWorkQueue(client, name, QueueSettings())
    run = uuid.uuid4().hex
    for start in range(0, n, 500):
        await queue.enqueue_many([(item, f"{run}-{i}") for i in range(start, min(n, start + 500))])
    await client.aclose()


async def drained_at(url: str, name: str) -> float:
    """When the queue has no ready or leased job left (polled every 10 ms)."""
    client = connect(url)
    queue = RedisWorkQueue(client, name, QueueSettings())
    while True:
        stats = await queue.stats()
        if not (stats.ready or stats.leased):
            break
        await asyncio.sleep(0.01)  # the state lives in Redis: poll it
    finished = time.monotonic()
    await delete_prefix(client, queue.prefix)
    await client.aclose()
    return finished


def processes_run(args: argparse.Namespace, workers: int) -> float:
    ctx = mp.get_context("spawn")
    name = f"bench-procs-{uuid.uuid4().hex[:12]}"
    asyncio.run(fill(args.redis_url, name, args.process_jobs, make_item(args.payload_bytes)))
    ready, done, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [
        ctx.Process(target=worker_process, args=(args.redis_url, name, ready, go, done))
        for _ in range(workers)
    ]
    try:
        for proc in procs:
            proc.start()
        for _ in procs:
            ready.get(timeout=60)
        started = time.monotonic()
        go.set()
        finished = asyncio.run(drained_at(args.redis_url, name))
        for proc in procs:
            os.kill(proc.pid or 0, signal.SIGTERM)
        completed: int = sum(done.get(timeout=60) for _ in procs)
        for proc in procs:
            proc.join(timeout=60)
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.kill()
    if completed != args.process_jobs:
        raise SystemExit(f"{workers} workers completed {completed} of {args.process_jobs} jobs")
    return completed / (finished - started)


# -- report --------------------------------------------------------------------------------------


async def describe_server(url: str) -> str:
    client = connect(url)
    try:
        info = await client.info("server")
        config = await client.config_get("appendonly", "appendfsync")
    finally:
        await client.aclose()
    return (
        f"Redis {info['redis_version']} at {url} (appendonly {config['appendonly']}, "
        f"appendfsync {config['appendfsync']})"
    )


def main() -> None:
    args = parse_args()
    print("QMTL work queue benchmark: enqueue -> lease -> complete, jobs per second")
    print(asyncio.run(describe_server(args.redis_url)))
    print(
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"{len(make_item(args.payload_bytes).SerializeToString())}-byte WorkItem, "
        f"median of {args.rounds} rounds after a warm-up"
    )
    print()
    rows = [
        asyncio.run(compare(args, "one at a time", args.jobs, None)),
        asyncio.run(compare(args, "batched by 100", args.batch_jobs, args.batch_size)),
    ]
    print(f"{'':16}{'ours':>12}{'baseline':>12}{'ratio':>8}   goal")
    for row in rows:
        goal = GOALS[row.name]
        verdict = "met" if row.ratio >= goal else "NOT MET"
        print(
            f"{row.name:16}{statistics.median(row.ours):>12,.0f}"
            f"{statistics.median(row.baseline):>12,.0f}{row.ratio:>8.2f}   "
            f">= {goal:.2f} {verdict}"
        )
    figures: dict[str, object] = {
        row.name: {
            "ours_jobs_per_s": round(statistics.median(row.ours), 1),
            "baseline_jobs_per_s": round(statistics.median(row.baseline), 1),
            "ratio": round(row.ratio, 3),
            "goal": GOALS[row.name],
        }
        for row in rows
    }
    processes: dict[str, float] = {}
    if args.max_processes >= 1:
        print()
        print(f"run_worker processes draining {args.process_jobs} pre-filled jobs (no-op handler):")
        single = None
        for workers in range(1, args.max_processes + 1):
            rate = processes_run(args, workers)
            single = single or rate
            label = f"{workers} process{'es' if workers > 1 else ''}"
            print(f"  {label:14}{rate:>12,.0f}   x{rate / single:.2f}")
            processes[str(workers)] = round(rate, 1)
    figures["processes_jobs_per_s"] = processes
    data = [
        Figure(
            row.name,
            statistics.median(row.ours),
            statistics.median(row.baseline),
            "jobs/s",
            GOALS[row.name],
        )
        for row in rows
    ]
    if "2" in processes:
        data.append(
            Figure(
                "2 worker processes over 1", processes["2"], processes["1"], "jobs/s", GOAL_SCALING
            )
        )
    print_figures("queue", data)
    merge_report(RESULTS, "queue", figures, data)
    print(f"\nfigures merged into {RESULTS} under 'queue'")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--redis-url", default=ServiceEndpoints.from_env().redis_url)
    parser.add_argument("--jobs", type=int, default=4000, help="jobs per one-at-a-time round")
    parser.add_argument("--batch-jobs", type=int, default=40000, help="jobs per batched round")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--payload-bytes", type=int, default=200)
    parser.add_argument("--process-jobs", type=int, default=8000)
    parser.add_argument("--max-processes", type=int, default=4, help="0 skips the process runs")
    args = parser.parse_args()
    if args.batch_jobs % args.batch_size:
        parser.error("--batch-jobs must be a multiple of --batch-size")
    return args


if __name__ == "__main__":
    main()
