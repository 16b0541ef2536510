"""GrpcCaller against a real grpc.aio server: qmtl.runtime.serve on 127.0.0.1:0, gRPC only.

The shared RpcCaller cases (tests/grpc/rpc_caller_cases.py) run here over the wire; the tests
below cover what only a network caller meets: every rpc's method path and messages, tokens
per attempt, message size limits, an unreachable peer and a peer that comes up between two
attempts.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager

import pytest

from qmtl.dagmanager.v1.dag_manager_service_grpc import add_dag_manager_service_to_server
from qmtl.dagmanager.v1.dag_manager_service_handler import (
    DAG_MANAGER_SERVICE,
    DagManagerServiceBase,
)
from qmtl.dagmanager.v1.diff_messages_pb2 import DiffRequest
from qmtl.dagmanager.v1.node_messages_pb2 import GetNodeRequest, GetNodeResponse
from qmtl.runtime.auth import issue_token
from qmtl.runtime.client_retry import RetryPolicy
from qmtl.runtime.context import Context
from qmtl.runtime.errors import ErrorCode, QmtlError
from qmtl.runtime.graphstore import InMemoryGraphStore
from qmtl.runtime.grpc import GrpcCaller
from qmtl.runtime.rpc_caller import RpcCaller
from qmtl.runtime.serve import ServeConfig, Served, ServiceBinding
from qmtl.runtime.topicadmin import InMemoryTopicAdmin
from qmtl.services.dag_manager.handler import DagManagerHandler
from tests.dag_manager.dag_builders import DagBuilder
from tests.grpc.rpc_caller_cases import (
    ALL_SCOPES,
    CASES,
    DIFF,
    GET_NODE,
    REDO_DIFF,
    SUBJECT,
    Case,
    ScriptedDagManager,
    case_id,
    fails,
    fast_retries,
)
from tests.http.surface import SECRET, VERIFIER

BINDING = ServiceBinding(name="dag-manager", add_to_grpc_server=add_dag_manager_service_to_server)


@asynccontextmanager
async def serving(handler: object, *, port: int = 0) -> AsyncIterator[Served]:
    """`handler` served by qmtl.runtime.serve on a gRPC listener only (port 0: any free one)."""
    config = ServeConfig(
        public_port=None,
        internal_port=None,
        grpc_port=port,
        grace_seconds=0,
        handle_signals=False,
    )
    served = Served(handler, VERIFIER, BINDING, config=config)
    runner = asyncio.create_task(served.run())
    try:
        await served.wait_started()
        yield served
    finally:
        served.stop()
        await runner


def token_for(scopes: Sequence[str] | None) -> str | None:
    return None if scopes is None else issue_token(SECRET, SUBJECT, scopes)


@asynccontextmanager
async def connect(
    handler: object,
    *,
    scopes: Sequence[str] | None = ALL_SCOPES,
    default_timeout: float = 10.0,
    retry: RetryPolicy | None = None,
) -> AsyncIterator[RpcCaller]:
    async with serving(handler) as served:
        caller = GrpcCaller(
            f"127.0.0.1:{served.grpc_port}",
            token=token_for(scopes),
            service=DAG_MANAGER_SERVICE,
            default_timeout=default_timeout,
            retry=retry,
        )
        try:
            yield caller
        finally:
            await caller.aclose()


@pytest.mark.parametrize("case", CASES, ids=case_id)
async def test_shared_rpc_caller_case(case: Case) -> None:
    await case(connect)


@contextlib.contextmanager
def free_port() -> Iterator[int]:
    """A port nothing listens on (bound once to find it, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    yield port


# --- the wire ---------------------------------------------------------------------------------


async def test_every_rpc_reaches_the_handler_method_of_its_name() -> None:
    # The generated Base answers each rpc with E_UNIMPLEMENTED naming the rpc the server routed
    # the call to: the method path and both message encodings of every rpc are the contract's.
    every_scope = sorted({scope for rpc in DAG_MANAGER_SERVICE.rpcs for scope in rpc.access.scopes})
    base = DagManagerServiceBase()
    async with connect(base, scopes=every_scope, retry=RetryPolicy(max_attempts=1)) as caller:
        for rpc in DAG_MANAGER_SERVICE.rpcs:
            error = await fails(caller.call(rpc, rpc.request()))
            assert error.code == ErrorCode.ERROR_CODE_UNIMPLEMENTED, rpc.name
            assert error.details == {"rpc": rpc.full_name}


async def test_a_token_source_is_asked_for_a_token_on_every_attempt() -> None:
    handler = ScriptedDagManager()
    handler.failures["get_node"] = [QmtlError.unavailable("restarting")]
    subjects = iter(["service:gateway-1", "service:gateway-2", "service:gateway-3"])

    def rotating() -> str:
        return issue_token(SECRET, next(subjects), ["dag:read"])

    retry, _ = fast_retries()
    async with serving(handler) as served:
        caller = GrpcCaller(
            f"127.0.0.1:{served.grpc_port}",
            token=rotating,
            service=DAG_MANAGER_SERVICE,
            retry=retry,
        )
        try:
            await caller.call(GET_NODE, GetNodeRequest(node_id="x"))
            await caller.call(GET_NODE, GetNodeRequest(node_id="y"))
        finally:
            await caller.aclose()

    principals = [seen.ctx.principal for seen in handler.seen]
    assert [p.subject if p else None for p in principals] == [
        "service:gateway-1",
        "service:gateway-2",
        "service:gateway-3",
    ]


class BigReplies(DagManagerServiceBase):
    def __init__(self, size: int) -> None:
        self.size = size
        self.calls = 0

    async def get_node(self, request: GetNodeRequest, ctx: Context) -> GetNodeResponse:
        self.calls += 1
        reply = GetNodeResponse()
        reply.node.queue = "q" * self.size
        return reply


async def test_replies_up_to_the_servers_body_limit_arrive() -> None:
    # gRPC's own client limit is 4 MiB; the caller accepts what the server may send (16 MiB).
    size = 6 * 1024 * 1024
    async with connect(BigReplies(size)) as caller:
        reply = await caller.call(GET_NODE, GetNodeRequest(node_id="x"))
    assert len(reply.node.queue) == size


async def test_a_request_over_the_limit_is_refused_before_the_handler() -> None:
    handler = ScriptedDagManager()
    async with serving(handler) as served:
        caller = GrpcCaller(
            f"127.0.0.1:{served.grpc_port}",
            token=token_for(ALL_SCOPES),
            service=DAG_MANAGER_SERVICE,
            max_message_bytes=1024,
        )
        try:
            error = await fails(caller.call(DIFF, DiffRequest(strategy_id="s" * 4096)))
        finally:
            await caller.aclose()

    assert error.code == ErrorCode.ERROR_CODE_PAYLOAD_TOO_LARGE
    assert handler.seen == []


def test_construction_does_not_connect_nor_need_a_running_loop() -> None:
    with free_port() as port:
        started = time.monotonic()
        caller = GrpcCaller(f"127.0.0.1:{port}", token=None, service=DAG_MANAGER_SERVICE)
        assert time.monotonic() - started < 0.5
    assert "127.0.0.1" in repr(caller)


@pytest.mark.parametrize(
    "bad", [0, -1.0, float("inf"), float("nan")], ids=["zero", "negative", "inf", "nan"]
)
def test_an_unbounded_or_empty_default_timeout_is_refused(bad: float) -> None:
    with pytest.raises(QmtlError) as caught:
        GrpcCaller("127.0.0.1:1", token=None, service=DAG_MANAGER_SERVICE, default_timeout=bad)
    assert caught.value.code == ErrorCode.ERROR_CODE_INVALID_ARGUMENT


# --- an unreachable peer ----------------------------------------------------------------------


async def test_an_unreachable_peer_is_unavailable_after_bounded_retries() -> None:
    retry, sleeps = fast_retries(max_attempts=3)
    with free_port() as port:
        caller = GrpcCaller(
            f"127.0.0.1:{port}",
            token=token_for(ALL_SCOPES),
            service=DAG_MANAGER_SERVICE,
            retry=retry,
        )
        started = time.monotonic()
        try:
            read = await fails(caller.call(GET_NODE, GetNodeRequest(node_id="x")))
            read_sleeps = list(sleeps.waits)
            write = await fails(caller.call(REDO_DIFF, REDO_DIFF.request()))
        finally:
            await caller.aclose()
        elapsed = time.monotonic() - started

    assert read.code == write.code == ErrorCode.ERROR_CODE_UNAVAILABLE
    assert read.retryable
    assert len(read_sleeps) == 2  # three attempts, then the error
    assert sleeps.waits == read_sleeps  # the RedoDiff (not idempotent) was tried once
    assert elapsed < 5.0


async def test_an_idempotent_call_reaches_a_peer_that_came_up_during_the_backoff() -> None:
    handler = ScriptedDagManager()
    stack = contextlib.AsyncExitStack()
    waits: list[float] = []

    async def start_peer_then_wait(seconds: float) -> None:
        # The first attempt found nothing listening; the peer starts before the next one.
        if not waits:
            await stack.enter_async_context(serving(handler, port=port))
        waits.append(seconds)
        await asyncio.sleep(seconds)

    retry = RetryPolicy(
        max_attempts=20, initial_backoff=0.05, max_backoff=0.2, async_sleep=start_peer_then_wait
    )
    async with stack:
        with free_port() as port:
            caller = GrpcCaller(
                f"127.0.0.1:{port}",
                token=token_for(ALL_SCOPES),
                service=DAG_MANAGER_SERVICE,
                retry=retry,
            )
            try:
                node = await caller.call(GET_NODE, GetNodeRequest(node_id="x"), timeout=10)
            finally:
                await caller.aclose()

    assert node.node.queue == "q-x"
    assert waits  # the first attempt failed
    assert len(handler.calls("get_node")) == 1


# --- the real DAG Manager ---------------------------------------------------------------------


async def test_gateway_diffs_through_the_real_dag_manager_handler() -> None:
    # DagManagerHandler on in-memory adapters, served as a deployment serves it: a Diff and
    # the node it stored, read back, as Gateway's worker makes those calls.
    handler = DagManagerHandler(InMemoryGraphStore(), InMemoryTopicAdmin())
    builder = DagBuilder()
    source = builder.node("StreamInput", tags=["btc"], period=0, params={"s": "BTC"})
    async with connect(handler) as caller:
        first = await caller.call(DIFF, builder.request("s-1"))
        node = await caller.call(GET_NODE, GetNodeRequest(node_id=source))
        again = await caller.call(DIFF, builder.request("s-1"))

    assert list(first.result.new_node_ids) == [source]
    assert node.node.queue == first.result.queue_map.queues[source].queue
    assert list(again.result.new_node_ids) == []
    assert again.result.queue_map == first.result.queue_map
