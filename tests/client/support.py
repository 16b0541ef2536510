"""A DagManagerService whose answers each test scripts, served by its generated apps.

The client tests call it through the generated typed clients: over httpx's ASGI transport
(async) and over uvicorn on 127.0.0.1 (sync and async). The handler subclasses the generated
Base class, so rpcs a test does not script answer E_UNIMPLEMENTED.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from qmtl.common.v1.paging_pb2 import PageInfo
from qmtl.dag.v1.compute_node_pb2 import ComputeNode
from qmtl.dagmanager.v1 import dag_manager_service_http as http
from qmtl.dagmanager.v1.dag_manager_service_client import (
    AsyncDagManagerServiceClient,
    DagManagerServiceClient,
)
from qmtl.dagmanager.v1.dag_manager_service_handler import DagManagerServiceBase
from qmtl.dagmanager.v1.gc_messages_pb2 import TriggerGcRequest, TriggerGcResponse
from qmtl.dagmanager.v1.node_messages_pb2 import (
    GetNodeRequest,
    GetNodeResponse,
    ListNodesRequest,
    ListNodesResponse,
)
from qmtl.dagmanager.v1.queue_messages_pb2 import GetQueuesByTagRequest, GetQueuesByTagResponse
from qmtl.runtime.auth import HmacTokenVerifier, issue_token
from qmtl.runtime.client_retry import RetryPolicy
from qmtl.runtime.errors import QmtlError

SECRET = b"tests-client-secret"
VERIFIER = HmacTokenVerifier(SECRET)
TOKEN = issue_token(SECRET, "test:client", ["dag:read", "dag:diff", "dag:admin"])


def node(index: int) -> ComputeNode:
    return ComputeNode(queue=f"q-{index:04d}", strategy_count=index)


@dataclass
class ScriptedDagManager(DagManagerServiceBase):
    """Raises the scripted failures of an rpc, one per call, then answers.

    `nodes` is what ListNodes pages through (page tokens are offsets); `repeat_token` makes
    it answer the same next_page_token forever. GetQueuesByTag hangs until `release` is set.
    """

    failures: dict[str, list[BaseException]] = field(default_factory=dict)
    calls: list[tuple[str, Any]] = field(default_factory=list)
    nodes: list[ComputeNode] = field(default_factory=list)
    repeat_token: str = ""
    release: threading.Event = field(default_factory=threading.Event)

    def _enter(self, rpc: str, request: Any) -> None:
        self.calls.append((rpc, request))
        pending = self.failures.get(rpc, [])
        if pending:
            raise pending.pop(0)

    def count(self, rpc: str) -> int:
        return sum(1 for name, _ in self.calls if name == rpc)

    async def get_node(self, request: GetNodeRequest, ctx: Any) -> GetNodeResponse:
        self._enter("get_node", request)
        if request.node_id == "missing":
            raise QmtlError.not_found("no such node", node_id=request.node_id)
        return GetNodeResponse(node=ComputeNode(queue=request.node_id))

    async def trigger_gc(self, request: TriggerGcRequest, ctx: Any) -> TriggerGcResponse:
        self._enter("trigger_gc", request)
        return TriggerGcResponse()

    async def list_nodes(self, request: ListNodesRequest, ctx: Any) -> ListNodesResponse:
        self._enter("list_nodes", request)
        start = int(request.page.page_token or "0")
        size = request.page.page_size or 50
        end = min(start + size, len(self.nodes))
        following = self.repeat_token or (str(end) if end < len(self.nodes) else "")
        info = PageInfo(next_page_token=following, total_size=len(self.nodes))
        return ListNodesResponse(nodes=self.nodes[start:end], page_info=info)

    async def get_queues_by_tag(
        self, request: GetQueuesByTagRequest, ctx: Any
    ) -> GetQueuesByTagResponse:
        self._enter("get_queues_by_tag", request)
        # The server side of a timeout test: hang until the test is over. A thread event,
        # since uvicorn serves on a loop of its own; polled, so that cancelling the call
        # (the ASGI transport's deadline) ends it at once.
        while not self.release.is_set():  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        return GetQueuesByTagResponse()


@dataclass
class Apps:
    handler: ScriptedDagManager
    public: FastAPI
    internal: FastAPI


def build_apps() -> Apps:
    handler = ScriptedDagManager()
    return Apps(
        handler,
        http.create_dag_manager_service_public_app(handler, VERIFIER),
        http.create_dag_manager_service_internal_app(handler, VERIFIER),
    )


@dataclass
class Recorder:
    """Stands in for time.sleep / asyncio.sleep in a RetryPolicy: records each wait."""

    waits: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)

    async def async_sleep(self, seconds: float) -> None:
        self.waits.append(seconds)

    def policy(self, **options: Any) -> RetryPolicy:
        options.setdefault("jitter", 0.0)
        return RetryPolicy(sleep=self.sleep, async_sleep=self.async_sleep, **options)


def asgi_client(apps: Apps, **options: Any) -> AsyncDagManagerServiceClient:
    public = httpx.AsyncClient(transport=httpx.ASGITransport(app=apps.public), base_url="http://p")
    internal = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=apps.internal), base_url="http://i"
    )
    options.setdefault("token", TOKEN)
    return AsyncDagManagerServiceClient(public, internal, **options)


def sync_client(server: ServedApps, **options: Any) -> DagManagerServiceClient:
    options.setdefault("token", TOKEN)
    return DagManagerServiceClient(server.public_url, server.internal_url, **options)


def free_port() -> int:
    """A port nothing listens on (bound once and released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class ServerThread:
    """An app served by uvicorn on 127.0.0.1 in a thread of its own.

    The socket is bound and listening before uvicorn starts, so a client may connect at once
    (the kernel queues it) and no test waits for the server to come up.
    """

    def __init__(self, app: FastAPI) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.server = uvicorn.Server(
            uvicorn.Config(app, log_level="warning", lifespan="off", loop="asyncio")
        )
        self.thread = threading.Thread(
            target=lambda: asyncio.run(self.server.serve(sockets=[self.sock])), daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def start(self) -> ServerThread:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


@dataclass
class ServedApps:
    apps: Apps
    public_url: str
    internal_url: str
