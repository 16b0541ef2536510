"""Parent-side helpers for the work-queue integration tests: worker processes and a private
Redis server."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis

from qmtl.runtime.workqueue import QueueSettings, RedisWorkQueue
from qmtl.work.v1 import work_item_pb2, work_type_pb2

REPO = Path(__file__).resolve().parents[2]
WORKER_SCRIPT = Path(__file__).with_name("workqueue_worker_process.py")
REDIS_SCRIPT = REPO / "scripts" / "services" / "redis.sh"


def job_of_kind(kind: str) -> work_item_pb2.WorkItem:
    """A job whose handler in workqueue_worker_process.py behaves as `kind` says."""
    return work_item_pb2.WorkItem(
        type=work_type_pb2.WORK_TYPE_OTHER, payload_type=f"qmtl.test.{kind}"
    )


@dataclass
class WorkerProcess:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        code = self.proc.poll()
        if code is not None:
            raise AssertionError(
                f"{self.name} exited early with {code}; its log:\n{self.log_tail()}"
            )

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    async def exit_code(self, within: float = 15.0) -> int:
        deadline = time.monotonic() + within
        while (code := self.proc.poll()) is None:
            if time.monotonic() > deadline:
                tail = self.log_tail()
                raise AssertionError(f"{self.name} still running after {within}s:\n{tail}")
            await asyncio.sleep(0.02)
        return code


@dataclass
class Spawner:
    """Starts worker processes against one queue and namespace; kills leftovers at the end."""

    redis_url: str
    queue: str
    ns: str
    log_dir: Path
    started: list[WorkerProcess] = field(default_factory=list)

    def spawn(self, role: str, name: str, *args: str) -> WorkerProcess:
        log = self.log_dir / f"{name}.log"
        cmd = [
            sys.executable,
            str(WORKER_SCRIPT),
            role,
            f"--redis-url={self.redis_url}",
            f"--queue={self.queue}",
            f"--ns={self.ns}",
            f"--worker-id={name}",
            *args,
        ]
        with log.open("wb") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
        worker = WorkerProcess(name, proc, log)
        self.started.append(worker)
        return worker

    def key(self, name: str) -> str:
        return f"{self.ns}:{name}"

    def kill_all(self) -> None:
        for worker in self.started:
            if worker.proc.poll() is None:
                worker.proc.kill()
            worker.proc.wait(timeout=10)


async def connect(url: str) -> redis.Redis:
    client = redis.Redis.from_url(url, socket_connect_timeout=3)
    try:
        await client.ping()
    except redis.ConnectionError as exc:
        await client.aclose()
        pytest.fail(
            f"Redis is not reachable at {url} ({exc}); start it with "
            "`make services-up` or `scripts/services/redis.sh start`"
        )
    return client


async def delete_prefixed(client: redis.Redis, prefixes: Sequence[str]) -> None:
    for prefix in prefixes:
        keys = [key async for key in client.scan_iter(match=prefix + "*", count=1000)]
        if keys:
            await client.delete(*keys)


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:12]}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PrivateRedis:
    """A Redis of our own, started by scripts/services/redis.sh on a free port with its own
    data directory, so a test may stop, kill and restart it without touching the shared one."""

    def __init__(self, base_dir: Path, appendfsync: str = "everysec") -> None:
        self.base_dir = base_dir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.env = {
            **os.environ,
            "QMTL_REDIS_PORT": str(self.port),
            "QMTL_SERVICES_DIR": str(base_dir),
            "QMTL_REDIS_APPENDFSYNC": appendfsync,
        }

    def _script(self, action: str) -> None:
        done = subprocess.run(
            ["bash", str(REDIS_SCRIPT), action],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            raise AssertionError(f"redis.sh {action} failed:\n{done.stdout}\n{done.stderr}")

    def start(self) -> None:
        self._script("start")

    def stop(self) -> None:
        self._script("stop")

    def kill_hard(self) -> None:
        """kill -9: no shutdown, no final fsync, no RDB save; only what is in the AOF remains."""
        pid = int((self.base_dir / "redis" / "server.pid").read_text().strip())
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while _port_open(self.port):
            if time.monotonic() > deadline:
                raise AssertionError(f"Redis pid {pid} still listening after SIGKILL")
            time.sleep(0.02)


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Harness:
    """A Redis queue for the test process, and a spawner for worker processes on the same
    queue and bookkeeping namespace."""

    client: redis.Redis
    queue: RedisWorkQueue
    spawner: Spawner

    def key(self, name: str) -> str:
        return self.spawner.key(name)

    async def count(self, list_name: str) -> int:
        return int(await self.client.llen(self.key(list_name)))

    async def hash_of_ints(self, name: str) -> dict[str, int]:
        raw = await self.client.hgetall(self.key(name))
        return {_text(k): int(v) for k, v in raw.items()}

    async def entries(self, list_name: str) -> list[str]:
        return [_text(v) for v in await self.client.lrange(self.key(list_name), 0, -1)]

    async def report(self, worker: str) -> dict[str, Any]:
        """The WorkerReport the worker process stored when run_worker returned."""
        raw = await self.client.hget(self.key("reports"), worker)
        assert raw is not None, f"{worker} left no report"
        report: dict[str, Any] = json.loads(raw)
        return report


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


# Matches the worker processes' defaults in workqueue_worker_process.py.
HARNESS_SETTINGS = QueueSettings(default_max_attempts=3)


@asynccontextmanager
async def queue_harness(redis_url: str, log_dir: Path) -> AsyncIterator[Harness]:
    client = await connect(redis_url)
    name = unique("itest")
    queue = RedisWorkQueue(client, name, HARNESS_SETTINGS)
    spawner = Spawner(redis_url, name, f"qmtl:test:{name}", log_dir)
    try:
        yield Harness(client, queue, spawner)
    finally:
        spawner.kill_all()
        await delete_prefixed(client, [queue.prefix, spawner.ns + ":"])
        await client.aclose()
