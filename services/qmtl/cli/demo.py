"""`qmtl demo`: the whole platform on one command, with two strategies that share nodes.

`--backend memory` (the default; `make demo`): one process and no server. The Gateway, with its
DAG Manager embedded, is served in this process on free ports of 127.0.0.1, exactly as
`qmtl gateway --backend memory` serves it; the SDK submits through the generated HTTP client to
those ports, and the runners use the in-memory record bus. Nothing survives the process.

`--backend real` (`make demo BACKEND=real`, which starts Redis, Kafka and Neo4j first): the demo
starts `qmtl dagmanager --backend real` and `qmtl gateway --backend real` as subprocesses on
free ports, in a namespace of this run (a Neo4j label prefix, migrated first, a Redis key prefix
and work queue, and a first tag `demo<hex>` that starts every topic name), runs the runners on
Kafka, stops both processes at the end and deletes the namespace (its Neo4j labels, Redis keys
and Kafka topics); `--keep` leaves it on the servers, named in the report, for inspection.

The strategies, data and report are qmtl.services.sdk.demo. Exit 0 after the report; 1 if any
step failed (one line on stderr naming it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import re
import secrets
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from qmtl.cli.registry import Command

if TYPE_CHECKING:
    from qmtl.runtime.recordbus import RecordBus

# The demo's own token: submit and read strategies, look tag queries up, report node status.
DEMO_SCOPES = ("strategies:submit", "strategies:read", "queues:read", "strategies:report")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
STARTUP_S = 60.0
_URL = re.compile(r"(public|internal|grpc)=(?:http://)?([0-9.]+):(\d+)")


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Run the platform end to end: submit a sample strategy (price -> MA(5), MA(20) -> "
        "crossover), feed it a bundled price series, then a second strategy sharing the moving "
        "averages, and print the queue map (new/reused), the signals, the compute calls per "
        "node and the timings."
    )
    parser.add_argument(
        "--backend", choices=("memory", "real"), default="memory",
        help="memory: everything in this process (default); real: qmtl dagmanager + qmtl "
        "gateway subprocesses on the running Redis, Kafka and Neo4j (make services-up)",
    )  # fmt: skip
    parser.add_argument(
        "--keep", action="store_true",
        help="--backend real: leave this run's namespace (graph, Redis keys, topics) on the "
        "servers instead of deleting it",
    )  # fmt: skip
    parser.add_argument(
        "--log-level", choices=LOG_LEVELS, default="ERROR",
        help="level of the services' logs on stderr (default ERROR: the report only)",
    )  # fmt: skip


@dataclass(frozen=True)
class GatewayUrls:
    public: str
    internal: str


class _Lines(io.StringIO):
    """The stdout of the in-process Gateway: its `listening` / `ready` lines, kept."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = asyncio.Event()

    @property
    def text(self) -> str:
        return self.getvalue()

    def write(self, text: str) -> int:
        written = super().write(text)
        self.changed.set()
        return written


def _urls(line: str) -> dict[str, int]:
    return {name: int(port) for name, _, port in _URL.findall(line)}


async def _ready_line(lines: _Lines, serving: asyncio.Task[int]) -> str:
    async with asyncio.timeout(STARTUP_S):
        while True:
            for line in lines.text.splitlines():
                if line.startswith("qmtl gateway: ready"):
                    return line
            if serving.done():
                raise RuntimeError(f"the Gateway stopped while starting:\n{lines.text}")
            lines.changed.clear()
            waiter = asyncio.ensure_future(lines.changed.wait())
            await asyncio.wait({waiter, serving}, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()


@contextlib.asynccontextmanager
async def memory_gateway(secret: bytes) -> AsyncIterator[GatewayUrls]:
    """`qmtl gateway --backend memory` in this process, on free ports, until the block ends."""
    from qmtl.cli.gateway import EmbeddedDagManager
    from qmtl.services.gateway.app import serve_gateway
    from qmtl.services.gateway.config import GatewayConfig

    config = GatewayConfig(
        public_port=0, internal_port=0, token_secret=secret, grace_seconds=1.0,
        instance_id=f"demo-{uuid.uuid4().hex[:8]}",
    )  # fmt: skip
    lines = _Lines()
    serving = asyncio.create_task(serve_gateway(config, EmbeddedDagManager(), out=lines))
    try:
        ports = _urls(await _ready_line(lines, serving))
        yield GatewayUrls(
            f"http://127.0.0.1:{ports['public']}", f"http://127.0.0.1:{ports['internal']}"
        )
    finally:
        serving.cancel()  # serve_and_boot stops the listeners, the worker and the backends
        with contextlib.suppress(asyncio.CancelledError):
            await serving


class _Subprocess:
    """A `qmtl <command>` started by the demo; its stderr (logs) kept in memory."""

    def __init__(self, command: str, *args: str, env: dict[str, str]) -> None:
        self.command, self.args, self.env = command, args, env
        self.proc: asyncio.subprocess.Process | None = None
        self.ports: dict[str, int] = {}
        self.stderr = b""

    async def start(self) -> None:
        import os

        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "qmtl.cli", self.command, *self.args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, **self.env},
        )  # fmt: skip
        self.ports = _urls(await self._line("listening"))
        await self._line("ready")

    async def _line(self, word: str) -> str:
        assert self.proc is not None
        assert self.proc.stdout is not None
        prefix = f"qmtl {self.command}: {word}"
        try:
            async with asyncio.timeout(STARTUP_S):
                while True:
                    raw = await self.proc.stdout.readline()
                    if not raw:
                        raise RuntimeError(await self._died())
                    if raw.decode().startswith(prefix):
                        return raw.decode().strip()
        except TimeoutError:
            raise RuntimeError(
                f"qmtl {self.command} printed no `{word}` line in {STARTUP_S:g}s"
            ) from None

    async def _died(self) -> str:
        assert self.proc is not None
        assert self.proc.stderr is not None
        status = await self.proc.wait()
        tail = (await self.proc.stderr.read()).decode(errors="replace").strip().splitlines()[-5:]
        return f"qmtl {self.command} exited with {status}: " + " / ".join(tail)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                async with asyncio.timeout(30):
                    await self.proc.wait()
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


async def _migrate(prefix: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "qmtl.cli", "migrate", "--label-prefix", prefix,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"qmtl migrate --label-prefix {prefix} failed: {(out + err).decode()}")


@dataclass(frozen=True)
class RealNamespace:
    """Where one `--backend real` run writes on the shared servers."""

    unique: str

    @property
    def graph_prefix(self) -> str:
        return f"Demo{self.unique}"

    @property
    def redis_prefix(self) -> str:
        return f"qmtl:demo:{self.unique}:"

    @property
    def queue_name(self) -> str:
        return f"demo{self.unique}"

    @property
    def asset(self) -> str:
        """The first tag of every demo node, hence the start of every topic name."""
        return f"demo{self.unique}"

    def describe(self) -> str:
        return (
            f"Neo4j label prefix {self.graph_prefix}, Redis keys {self.redis_prefix}* and "
            f"qmtl:wq:{{{self.queue_name}}}:*, topics {self.asset}_*"
        )


async def delete_namespace(namespace: RealNamespace) -> None:
    """Removes the run's graph, Redis keys and node topics (and nothing of anyone else's)."""
    import redis.asyncio as redis
    from neo4j import AsyncGraphDatabase

    from qmtl.runtime.endpoints import ServiceEndpoints
    from qmtl.runtime.graph_migrations import GraphNames
    from qmtl.runtime.graph_migrations.prefixed import drop_prefixed_graph
    from qmtl.runtime.topicadmin.kafka import KafkaTopicAdmin

    endpoints = ServiceEndpoints.from_env()
    driver = AsyncGraphDatabase.driver(
        endpoints.neo4j_uri, auth=(endpoints.neo4j_user, endpoints.neo4j_password)
    )
    try:
        await drop_prefixed_graph(driver, GraphNames(namespace.graph_prefix))
    finally:
        await driver.close()
    client = redis.Redis.from_url(endpoints.redis_url)
    try:
        # The work queue keeps its keys under `qmtl:wq:{<queue name>}:` (hash-tagged).
        for prefix in (namespace.redis_prefix, f"qmtl:wq:{{{namespace.queue_name}}}:"):
            keys = [key async for key in client.scan_iter(match=prefix + "*", count=1000)]
            if keys:
                await client.delete(*keys)
    finally:
        await client.aclose()
    admin = await KafkaTopicAdmin.connect(endpoints.kafka_bootstrap, client_id="qmtl-demo")
    try:
        topics = [t for t in await admin.list_topics() if t.startswith(f"{namespace.asset}_")]
        await admin.delete_topics(topics)
    finally:
        await admin.aclose()


@contextlib.asynccontextmanager
async def real_gateway(secret: bytes, namespace: RealNamespace) -> AsyncIterator[GatewayUrls]:
    """`qmtl dagmanager` + `qmtl gateway`, `--backend real`, in this run's namespace."""
    env = {"QMTL_TOKEN_SECRET": secret.decode()}
    free = ("--public-port", "0", "--internal-port", "0")
    prefix = namespace.graph_prefix
    await _migrate(prefix)
    dagmanager = _Subprocess(
        "dagmanager", "--backend", "real", *free, "--grpc-port", "0", "--graph-prefix", prefix,
        env=env,
    )  # fmt: skip
    gateway: _Subprocess | None = None
    try:
        await dagmanager.start()
        gateway = _Subprocess(
            "gateway", "--backend", "real", *free,
            "--dag-manager", f"127.0.0.1:{dagmanager.ports['grpc']}",
            "--redis-prefix", namespace.redis_prefix, "--queue-name", namespace.queue_name,
            env=env,
        )  # fmt: skip
        await gateway.start()
        yield GatewayUrls(
            f"http://127.0.0.1:{gateway.ports['public']}",
            f"http://127.0.0.1:{gateway.ports['internal']}",
        )
    finally:
        if gateway is not None:
            await gateway.stop()
        await dagmanager.stop()


async def _bus(backend: str) -> RecordBus:
    if backend == "memory":
        from qmtl.runtime.recordbus import InMemoryRecordBus

        return InMemoryRecordBus()
    from qmtl.runtime.endpoints import ServiceEndpoints
    from qmtl.runtime.recordbus.kafka import KafkaRecordBus

    return await KafkaRecordBus.connect(
        ServiceEndpoints.from_env().kafka_bootstrap, client_id="qmtl-demo"
    )


async def _demo(backend: str, keep: bool) -> int:
    from qmtl.gateway.v1.gateway_service_client import AsyncGatewayServiceClient
    from qmtl.runtime.auth import issue_token
    from qmtl.services.sdk.demo import Timings, run_demo

    out = sys.stdout
    secret = secrets.token_hex(32).encode()
    namespace = RealNamespace(uuid.uuid4().hex[:8])
    timings = Timings()
    what = {
        "memory": "Gateway + embedded DAG Manager in this process",
        "real": "qmtl dagmanager + qmtl gateway subprocesses on Neo4j, Redis and Kafka",
    }[backend]
    print(f"qmtl demo (--backend {backend}): {what}", file=out, flush=True)
    if backend == "real":
        print(f"  namespace of this run: {namespace.describe()}", file=out, flush=True)
    stack = contextlib.AsyncExitStack()
    async with stack:
        if backend == "real" and not keep:
            stack.push_async_callback(delete_namespace, namespace)
        async with timings.stage("start services", out):
            opened = (
                memory_gateway(secret) if backend == "memory" else real_gateway(secret, namespace)
            )
            urls = await stack.enter_async_context(opened)
        print(f"  Gateway: public {urls.public}, internal {urls.internal}", file=out, flush=True)
        token = issue_token(secret, "demo:quant", DEMO_SCOPES)
        client = await stack.enter_async_context(
            AsyncGatewayServiceClient(urls.public, internal=urls.internal, token=token)
        )
        bus = await _bus(backend)
        stack.push_async_callback(bus.aclose)
        asset = "demo" if backend == "memory" else namespace.asset
        await run_demo(client, bus, out=out, asset=asset, timings=timings)
    return 0


def _run(args: argparse.Namespace) -> int:
    from qmtl.cli.service_options import configure_logging
    from qmtl.runtime.errors import QmtlError

    configure_logging(args.log_level)
    started = time.perf_counter()
    try:
        status = asyncio.run(_demo(args.backend, args.keep))
    except QmtlError as exc:
        print(f"qmtl demo: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # one line naming what failed, not a traceback
        print(f"qmtl demo: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"qmtl demo: done in {time.perf_counter() - started:.1f} s", flush=True)
    return status


COMMAND = Command(
    name="demo",
    help="run two sample strategies end to end and print what was reused (--backend memory|real)",
    configure=_configure,
    run=_run,
)
