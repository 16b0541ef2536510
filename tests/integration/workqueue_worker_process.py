"""A real worker process for the work-queue integration tests: `python <this file> ROLE ...`.

Roles:
  worker        run_worker until SIGTERM; the job's payload_type picks what the handler does
  lease-once    wait for the go signal, try one lease, report what it got
  enqueue-once  wait for the go signal, enqueue one job under --key, report the answer

Bookkeeping lives in Redis under --ns so the test can observe it: `ready` (processes up),
`go` (the start signal), `results`, `started` (jobs whose handler began), `runs` and
`effects` (hashes keyed by idempotency key), `reports` (each worker's final counts).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
from dataclasses import asdict

import redis.asyncio as redis

from qmtl.runtime.workqueue import (
    BackoffPolicy,
    Handler,
    JobFailedError,
    QueueSettings,
    RedisWorkQueue,
    WorkerSettings,
    run_worker,
)
from qmtl.work.v1 import work_item_pb2, work_type_pb2

# The side effect every handler applies, made idempotent by the job's idempotency key: the key
# joins the `applied` set and bumps `effects` only if it was not already there, atomically.
APPLY_ONCE = """
if redis.call('SADD', KEYS[1], ARGV[1]) == 1 then
  redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
end
"""
GO_TIMEOUT_S = 60


class Bookkeeping:
    def __init__(self, client: redis.Redis, ns: str) -> None:
        self.client = client
        self.ns = ns

    def key(self, name: str) -> str:
        return f"{self.ns}:{name}"

    async def count_run(self, key: str) -> int:
        return int(await self.client.hincrby(self.key("runs"), key, 1))

    async def apply_effect(self, key: str) -> None:
        await self.client.eval(APPLY_ONCE, 2, self.key("applied"), self.key("effects"), key)

    async def announce(self, what: str, value: str) -> None:
        await self.client.rpush(self.key(what), value)

    async def wait_for_go(self) -> None:
        if await self.client.blpop([self.key("go")], timeout=GO_TIMEOUT_S) is None:
            raise SystemExit("no go signal")


def make_handler(books: Bookkeeping) -> Handler:
    async def handle(item: work_item_pb2.WorkItem) -> bytes:
        key = item.idempotency_key
        runs = await books.count_run(key)
        kind = item.payload_type.removeprefix("qmtl.test.")
        if kind == "Poison":
            raise JobFailedError(f"poison run {runs}", code="E_TEST_POISON", retryable=True)
        await books.apply_effect(key)
        if kind == "CrashOnce" and runs == 1:
            await books.announce("started", f"{key} {os.getpid()}")
            await asyncio.Event().wait()  # hang until killed
        if kind == "Hang":
            await books.announce("started", key)
            await asyncio.Event().wait()
        if kind == "Gate":
            await books.announce("started", key)
            await books.client.blpop([books.key(f"gate:{key}")], timeout=GO_TIMEOUT_S)
        return f"done {key}".encode()

    return handle


def queue_settings(args: argparse.Namespace) -> QueueSettings:
    backoff = BackoffPolicy(base=args.backoff_base, cap=args.backoff_base * 8, jitter=0.5)
    return QueueSettings(default_max_attempts=args.max_attempts, backoff=backoff)


async def main(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.INFO, format=f"{args.worker_id} %(levelname)s %(message)s")
    client = redis.Redis.from_url(args.redis_url)
    books = Bookkeeping(client, args.ns)
    queue = RedisWorkQueue(client, args.queue, queue_settings(args))
    try:
        if args.role == "worker":
            await books.announce("ready", args.worker_id)
            settings = WorkerSettings(
                lease_ttl=args.lease_ttl, poll_interval=0.01, reap_interval=args.reap_interval
            )
            report = await run_worker(
                queue, make_handler(books), worker_id=args.worker_id, settings=settings
            )
            await client.hset(books.key("reports"), args.worker_id, json.dumps(asdict(report)))
        elif args.role == "lease-once":
            await books.announce("ready", args.worker_id)
            await books.wait_for_go()
            lease = await queue.lease(args.worker_id, 30.0)
            await books.announce("results", lease.job_id if lease else "-")
        elif args.role == "enqueue-once":
            await books.announce("ready", args.worker_id)
            await books.wait_for_go()
            item = work_item_pb2.WorkItem(
                type=work_type_pb2.WORK_TYPE_OTHER, payload_type="qmtl.test.Effect"
            )
            result = await queue.enqueue(item, args.key)
            await books.announce("results", f"{result.job_id} {int(result.created)}")
    finally:
        await client.aclose()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", choices=["worker", "lease-once", "enqueue-once"])
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--ns", required=True)
    parser.add_argument("--worker-id", required=True)
    parser.add_argument("--key", default="")
    parser.add_argument("--lease-ttl", type=float, default=2.0)
    parser.add_argument("--reap-interval", type=float, default=0.1)
    parser.add_argument("--backoff-base", type=float, default=0.01)
    parser.add_argument("--max-attempts", type=int, default=3)
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
