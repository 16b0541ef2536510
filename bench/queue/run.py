"""Work-queue throughput: our Redis adapter against the minimal unsafe redis-py equivalent.

    python -m bench.queue.run [--jobs N] [--batch-jobs N] [--rounds R] [--max-processes P] [--quick]

Each job goes enqueue -> lease -> complete; ours in a busy worker's steady state, where
complete_and_lease finishes one job and leases the next in one round trip. The baseline does
the least that moves a job through Redis, with none of the guarantees (no lease deadline, no
idempotency, no retry, no dead letter): LPUSH onto a list, LMOVE to a processing list, LREM
from it. Both run in the same process, against the same Redis with the same fsync policy,
alternating round by round; the median of the rounds is reported, with the ratio ours /
baseline.

  one at a time   one job per call: enqueue + complete_and_lease (two round trips per job)
                  against the baseline's three
  scripts only    the floor under "one at a time": the same two Lua scripts per job, called
                  straight through redis-py with every argument prepared before the clock
                  starts (no adapter code on the path); what the guarantees cost in Redis
  batched         100 jobs per call (enqueue_many, lease_many, complete_many) against the
                  baseline pipelined by 100 (three pipelines of 100 commands)
  processes       1..P run_worker processes (no-op handler) draining a pre-filled queue,
                  to show how throughput scales with workers; each run also reports the
                  CPU per job of the workers and of Redis, and how busy the machine was
                  (2 workers and Redis share the 2 cores of the reference machine)
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
from dataclasses import dataclass, field
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
from qmtl.runtime.workqueue.job_record import prepare_entries
from qmtl.runtime.workqueue.model import to_ms
from qmtl.runtime.workqueue.redis_adapter import connection_retry
from qmtl.runtime.workqueue.redis_scripts import QueueScripts
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


async def scripts_only(queue: RedisWorkQueue, item: work_item_pb2.WorkItem, n: int) -> float:
    """Jobs per second of the enqueue and complete_and_lease scripts alone (see the docstring).

    Arguments are what the adapter sends (queue prefix, no caller clock, then each script's
    own), built before timing starts; only the round trips are timed.
    """
    scripts = QueueScripts.register(queue.client)
    prefix = queue.prefix
    run = uuid.uuid4().hex
    enqueue_keys = [prefix + "ready", prefix + "seq"]
    lease_keys = [prefix + "ready", prefix + "leased", prefix + "delayed"]
    settings = QueueSettings()
    window_ms, retention_ms = (
        to_ms(settings.idempotency_window),
        to_ms(settings.completed_retention),
    )
    take: list[str | int] = ["bench:floor", to_ms(LEASE_TTL), 1, settings.promote_batch]
    enqueues: list[list[str | int | bytes]] = []
    for i in range(n + 1):
        (entry,) = prepare_entries([(item, f"{run}-{i}")], settings.default_max_attempts)
        job_id = str(uuid.uuid4())
        stored = entry.item.stored_bytes(job_id, entry.key)
        enqueues.append(
            [
                prefix,
                "",
                window_ms,
                job_id,
                entry.key,
                stored,
                entry.max_attempts,
                entry.item.fingerprint,
            ]
        )
    await scripts.enqueue(keys=enqueue_keys, args=enqueues[0])
    reply = await scripts.lease(keys=lease_keys, args=[prefix, "", *take])
    job_id, token = reply[1], reply[2]
    started = time.perf_counter()
    for args in enqueues[1:]:
        await scripts.enqueue(keys=enqueue_keys, args=args)
        reply = await scripts.complete_and_lease(
            keys=lease_keys, args=[prefix, "", retention_ms, job_id, token, b"", *take]
        )
        job_id, token = reply[2], reply[3]
    return n / (time.perf_counter() - started)


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
    floor: list[float] = field(default_factory=list)
    """scripts_only's rates, for "one at a time" only."""

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
                    floor = await scripts_only(queue, item, count)
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
                if batch is None:
                    result.floor.append(floor)
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
        cpu = time.process_time()
        report = await run_worker(
            queue, _noop_handler, worker_id=f"bench-{os.getpid()}", settings=settings
        )
        done.put((report.completed, time.process_time() - cpu))
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


@dataclass(frozen=True)
class ProcessesRun:
    rate: float
    """Jobs per second, from the go signal until the queue is empty."""
    worker_us: float
    """CPU of all workers per job (they also idle-poll the empty queue after the drain, until
    stopped: a slight overcount)."""
    redis_us: float
    """CPU of the Redis server per job over the same span (its own INFO cpu)."""
    busy: float
    """Share of the machine's cores busy while draining (/proc/stat; anything running counts)."""


def _machine_ticks() -> tuple[int, int]:
    """(all, idle) jiffies since boot, summed over the cores (Linux /proc/stat)."""
    with open("/proc/stat", encoding="ascii") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    return sum(values), values[3] + values[4]


async def redis_cpu(url: str) -> float:
    client = connect(url)
    try:
        info = await client.info("cpu")
    finally:
        await client.aclose()
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def processes_run(args: argparse.Namespace, workers: int) -> ProcessesRun:
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
        redis_before, ticks_before = asyncio.run(redis_cpu(args.redis_url)), _machine_ticks()
        started = time.monotonic()
        go.set()
        finished = asyncio.run(drained_at(args.redis_url, name))
        ticks_after, redis_after = _machine_ticks(), asyncio.run(redis_cpu(args.redis_url))
        for proc in procs:
            os.kill(proc.pid or 0, signal.SIGTERM)
        reports = [done.get(timeout=60) for _ in procs]
        completed: int = sum(count for count, _ in reports)
        worker_cpu = sum(cpu for _, cpu in reports)
        for proc in procs:
            proc.join(timeout=60)
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.kill()
    if completed != args.process_jobs:
        raise SystemExit(f"{workers} workers completed {completed} of {args.process_jobs} jobs")
    total, idle = (after - before for after, before in zip(ticks_after, ticks_before, strict=True))
    return ProcessesRun(
        rate=completed / (finished - started),
        worker_us=worker_cpu / completed * 1e6,
        redis_us=(redis_after - redis_before) / completed * 1e6,
        busy=1 - idle / total if total else 0.0,
    )


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
    single = rows[0]
    floor = statistics.median(single.floor)
    floor_ratio = floor / statistics.median(single.baseline)
    print(
        f"{'scripts only':16}{floor:>12,.0f}{statistics.median(single.baseline):>12,.0f}"
        f"{floor_ratio:>8.2f}   (the floor under one at a time: the Lua scripts alone)"
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
    figures["scripts only"] = {"jobs_per_s": round(floor, 1), "ratio": round(floor_ratio, 3)}
    processes: dict[str, float] = {}
    usage: dict[str, dict[str, float]] = {}
    if args.max_processes >= 1:
        print()
        print(f"run_worker processes draining {args.process_jobs} pre-filled jobs (no-op handler):")
        print(f"  {'':14}{'jobs/s':>12}{'':8}{'worker CPU':>12}{'Redis CPU':>11}{'machine':>9}")
        first = None
        for workers in range(1, args.max_processes + 1):
            run = processes_run(args, workers)
            first = first or run.rate
            label = f"{workers} process{'es' if workers > 1 else ''}"
            print(
                f"  {label:14}{run.rate:>12,.0f}   x{run.rate / first:.2f}"
                f"{run.worker_us:>9.0f} us{run.redis_us:>8.0f} us{run.busy:>8.0%}"
            )
            processes[str(workers)] = round(run.rate, 1)
            usage[str(workers)] = {
                "worker_cpu_us_per_job": round(run.worker_us, 1),
                "redis_cpu_us_per_job": round(run.redis_us, 1),
                "machine_busy": round(run.busy, 3),
            }
        print(
            "  (CPU per job summed over the workers; machine: share of all cores busy while "
            "draining, whatever ran)"
        )
    figures["processes_jobs_per_s"] = processes
    figures["processes_cpu"] = usage
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
    data.append(
        Figure(
            "scripts only (floor of one at a time)",
            floor,
            statistics.median(single.baseline),
            "jobs/s",
            None,
        )
    )
    if "2" in processes:
        data.append(
            Figure(
                "2 worker processes over 1", processes["2"], processes["1"], "jobs/s", GOAL_SCALING
            )
        )
    # A quick run must not replace the figures of a full one.
    section = "queue-quick" if args.quick else "queue"
    print_figures(section, data)
    merge_report(RESULTS, section, figures, data)
    print(f"\nfigures merged into {RESULTS} under {section!r}")


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
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a small workload for development (300 / 3,000 jobs, 1 round, 1-2 processes)",
    )
    args = parser.parse_args()
    if args.quick:
        args.jobs, args.batch_jobs, args.rounds = 300, 3000, 1
        args.process_jobs, args.max_processes = 1000, 2
    if args.batch_jobs % args.batch_size:
        parser.error("--batch-jobs must be a multiple of --batch-size")
    return args


if __name__ == "__main__":
    main()
