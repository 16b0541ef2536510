"""The service processes the submit bench drives: `qmtl dagmanager` and `qmtl gateway`, started
as an operator starts them (tests/serve/service_process.py: ports 0, the startup line, the
`ready` line), in a namespace of the bench's own on the shared servers, removed afterwards."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import redis.asyncio as redis
from neo4j import AsyncDriver

from bench.graph.graphdb import connect, drop_graph
from qmtl.runtime.endpoints import ServiceEndpoints
from qmtl.runtime.graph_migrations import GraphNames
from tests.serve.service_process import QMTL, REPO, ServiceProcess

from .workload import cpu_seconds

SECRET = "bench-submit-secret"
FREE_HTTP = ("--public-port", "0", "--internal-port", "0")
TICKS = os.sysconf("SC_CLK_TCK")
MAX_WAIT_S = 120  # --max-wait of the Gateways: a submission waits out the backlog


class BenchSetupError(Exception):
    """A service that would not start or a namespace that could not be prepared."""


@dataclass
class Namespace:
    unique: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    @property
    def redis_prefix(self) -> str:
        return f"bench:submit:{self.unique}:"

    @property
    def queue_name(self) -> str:
        return f"benchsubmit{self.unique}"

    @property
    def graph(self) -> GraphNames:
        return GraphNames(f"Bsub{self.unique}")


def process_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        return cpu_seconds(stat.read(), TICKS)


class Topology:
    """Some DAG Managers and Gateways (`--backend real`), or one memory-backend Gateway."""

    def __init__(self, namespace: Namespace) -> None:
        self.namespace = namespace
        self.dag_managers: list[ServiceProcess] = []
        self.gateways: list[ServiceProcess] = []

    @property
    def processes(self) -> list[ServiceProcess]:
        return [*self.dag_managers, *self.gateways]

    def cpu_seconds(self) -> float:
        return sum(process_cpu_seconds(p.proc.pid) for p in self.processes)

    async def start_real(self, pairs: int) -> None:
        """`pairs` DAG Managers and as many Gateways, Gateway i calling DAG Manager i."""
        ns = self.namespace
        for index in range(pairs):
            dm = await _start(
                "dagmanager", *FREE_HTTP, "--grpc-port", "0", "--backend", "real",
                "--graph-prefix", ns.graph.prefix, "--instance-id", f"bench-{ns.unique}-dm{index}",
            )  # fmt: skip
            self.dag_managers.append(dm)
        for index, dm in enumerate(self.dag_managers):
            gw = await _start(
                "gateway", *FREE_HTTP, "--backend", "real", "--redis-prefix", ns.redis_prefix,
                "--queue-name", ns.queue_name, "--dag-manager", dm.grpc_target,
                "--max-wait", str(MAX_WAIT_S), "--instance-id", f"bench-{ns.unique}-gw{index}",
            )  # fmt: skip
            self.gateways.append(gw)

    async def start_memory(self) -> None:
        gw = await _start("gateway", *FREE_HTTP, "--backend", "memory",
                          "--max-wait", str(MAX_WAIT_S))  # fmt: skip
        self.gateways.append(gw)

    async def stop(self) -> None:
        for process in reversed(self.processes):
            await process.stop()
            await process.close()
        self.dag_managers.clear()
        self.gateways.clear()

    async def close(self) -> None:
        """After a failure: nothing left running."""
        for process in self.processes:
            await process.close()


async def _start(command: str, *args: str) -> ServiceProcess:
    process = ServiceProcess(command, *args, env={"QMTL_TOKEN_SECRET": SECRET,
                                                  "QMTL_LOG_LEVEL": "WARNING"})  # fmt: skip
    try:
        await process.start()
        await process.wait_ready(within=120)
    except AssertionError as exc:
        await process.close()
        raise BenchSetupError(str(exc)) from None
    return process


async def migrate(names: GraphNames) -> None:
    proc = await asyncio.create_subprocess_exec(
        str(QMTL), "migrate", "--label-prefix", names.prefix,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=REPO,
    )  # fmt: skip
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise BenchSetupError(f"qmtl migrate --label-prefix {names.prefix}:\n{out.decode()}")


async def remove_namespace(
    namespace: Namespace, graphs: Sequence[GraphNames], topics: Sequence[str]
) -> None:
    """Deletes the bench's Redis keys, Neo4j labels and node topics."""
    endpoints = ServiceEndpoints.from_env()
    client = redis.Redis.from_url(endpoints.redis_url)
    try:
        for pattern in (namespace.redis_prefix, f"qmtl:wq:{{{namespace.queue_name}}}:"):
            keys = [key async for key in client.scan_iter(match=pattern + "*", count=1000)]
            if keys:
                await client.delete(*keys)
    finally:
        await client.aclose()
    driver: AsyncDriver = connect(endpoints)
    try:
        for names in graphs:
            await drop_graph(driver, names)
            await driver.execute_query(f"MATCH (m:{names.label('ServiceMarker')}) DELETE m")
    finally:
        await driver.close()
    if topics:
        from qmtl.runtime.topicadmin.kafka import KafkaTopicAdmin

        admin = await KafkaTopicAdmin.connect(endpoints.kafka_bootstrap)
        try:
            await admin.delete_topics(list(topics))
        finally:
            await admin.aclose()
