"""The behaviour every RpcCaller shares, as cases run against each implementation.

tests/grpc/test_grpc_caller.py runs CASES with a GrpcCaller to a real grpc.aio server, and
tests/unit/test_inprocess_caller.py with an InProcessCaller on the same handler object: access
rules, error codes, deadlines, retries and message isolation must come out the same. A case
takes a `Connect`, which serves a handler and gives a caller to it holding a token (or, in
process, a principal) for `SUBJECT` with the given scopes (None: no token at all).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

import pytest
from google.protobuf.message import Message

from qmtl.dag.v1 import compute_node_pb2, diff_result_pb2
from qmtl.dagmanager.v1.dag_manager_service_handler import (
    DAG_MANAGER_SERVICE,
    DagManagerServiceBase,
)
from qmtl.dagmanager.v1.diff_messages_pb2 import DiffRequest, DiffResponse
from qmtl.dagmanager.v1.node_messages_pb2 import GetNodeRequest, GetNodeResponse
from qmtl.dagmanager.v1.status_messages_pb2 import GetStatusRequest, GetStatusResponse
from qmtl.gateway.v1.gateway_service_handler import GATEWAY_SERVICE
from qmtl.runtime.client_retry import RetryPolicy
from qmtl.runtime.context import Context
from qmtl.runtime.errors import ErrorCode, QmtlError
from qmtl.runtime.rpc_caller import RpcCaller
from qmtl.runtime.spec import RpcSpec

SUBJECT = "service:gateway"
ALL_SCOPES = ("dag:admin", "dag:diff", "dag:read")
# Typed here, so `call` returns the response type (ServiceSpec.rpc's answer is untyped).
DIFF: RpcSpec[DiffRequest, DiffResponse] = DAG_MANAGER_SERVICE.rpc("Diff")
GET_NODE: RpcSpec[GetNodeRequest, GetNodeResponse] = DAG_MANAGER_SERVICE.rpc("GetNode")
GET_STATUS: RpcSpec[GetStatusRequest, GetStatusResponse] = DAG_MANAGER_SERVICE.rpc("GetStatus")
TRIGGER_GC = DAG_MANAGER_SERVICE.rpc("TriggerGc")
REDO_DIFF = DAG_MANAGER_SERVICE.rpc("RedoDiff")
# Upper bound on any wait in a case: a hung call fails the test instead of hanging it.
PATIENCE = 10.0


class Connect(Protocol):
    """Serves `handler` and yields a caller to it, closed (and the server stopped) on exit."""

    def __call__(
        self,
        handler: object,
        *,
        scopes: Sequence[str] | None = ALL_SCOPES,
        default_timeout: float = 10.0,
        retry: RetryPolicy | None = None,
    ) -> AbstractAsyncContextManager[RpcCaller]: ...


@dataclass
class Seen:
    method: str
    request: Message
    ctx: Context


class ScriptedDagManager(DagManagerServiceBase):
    """Answers Diff, GetNode and GetStatus (TriggerGc stays E_UNIMPLEMENTED), recording calls.

    `failures[method]` are raised one per call, in order, before answering; `hold[method]` is
    awaited first. `cancelled` is set when a held call is cancelled; `replies` keeps every
    reply handed out.
    """

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.failures: dict[str, list[BaseException]] = {}
        self.hold: dict[str, asyncio.Event] = {}
        self.arrived = asyncio.Event()
        self.cancelled = asyncio.Event()
        self.replies: list[Message] = []  # every reply handed out, in order

    def calls(self, method: str) -> list[Seen]:
        return [seen for seen in self.seen if seen.method == method]

    async def _enter(self, method: str, request: Message, ctx: Context) -> None:
        self.seen.append(Seen(method, request, ctx))
        self.arrived.set()
        if method in self.hold:
            try:
                await self.hold[method].wait()
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
        pending = self.failures.get(method)
        if pending:
            raise pending.pop(0)

    def _reply(self, reply: Message) -> Message:
        self.replies.append(reply)
        return reply

    async def diff(self, request: DiffRequest, ctx: Context) -> DiffResponse:
        await self._enter("diff", request, ctx)
        result = diff_result_pb2.DiffResult(
            strategy_id=request.strategy_id, new_node_ids=["n-1", "n-2"]
        )
        reply = DiffResponse(result=result)
        self._reply(reply)
        return reply

    async def get_node(self, request: GetNodeRequest, ctx: Context) -> GetNodeResponse:
        await self._enter("get_node", request, ctx)
        reply = GetNodeResponse(node=compute_node_pb2.ComputeNode(queue=f"q-{request.node_id}"))
        self._reply(reply)
        return reply

    async def redo_diff(self, request: Message, ctx: Context) -> Message:
        await self._enter("redo_diff", request, ctx)
        reply: Message = REDO_DIFF.response()
        self._reply(reply)
        return reply

    async def get_status(self, request: GetStatusRequest, ctx: Context) -> GetStatusResponse:
        await self._enter("get_status", request, ctx)
        reply = GetStatusResponse(queue_count=3)
        self._reply(reply)
        return reply


class SleepLog:
    """RetryPolicy.async_sleep that records the waits and does not actually wait them."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(0)


def fast_retries(max_attempts: int = 3) -> tuple[RetryPolicy, SleepLog]:
    log = SleepLog()
    return RetryPolicy(max_attempts=max_attempts, initial_backoff=0.01, async_sleep=log), log


async def fails(call: Awaitable[object]) -> QmtlError:
    with pytest.raises(QmtlError) as caught:
        async with asyncio.timeout(PATIENCE):
            await call
    return caught.value


# --- the cases --------------------------------------------------------------------------------


async def calls_reach_the_handler_and_answer(connect: Connect) -> None:
    handler = ScriptedDagManager()
    async with connect(handler) as caller:
        diffed = await caller.call(DIFF, DiffRequest(strategy_id="s-1"))
        node = await caller.call(GET_NODE, GetNodeRequest(node_id="abc"))

    assert type(diffed) is DiffResponse
    assert (diffed.result.strategy_id, list(diffed.result.new_node_ids)) == ("s-1", ["n-1", "n-2"])
    assert node.node.queue == "q-abc"
    [seen] = handler.calls("diff")
    assert seen.request == DiffRequest(strategy_id="s-1")
    assert seen.ctx.principal is not None
    assert seen.ctx.principal.subject == SUBJECT
    assert seen.ctx.principal.scopes == frozenset(ALL_SCOPES)
    assert seen.ctx.transport == "grpc"


async def an_anonymous_rpc_needs_no_token(connect: Connect) -> None:
    handler = ScriptedDagManager()
    async with connect(handler, scopes=None) as caller:
        status = await caller.call(GET_STATUS, GetStatusRequest())

    # Internal callers get the whole reply: no public view on service-to-service calls.
    assert status.queue_count == 3
    [seen] = handler.seen
    assert seen.ctx.principal is None


async def no_token_is_unauthenticated(connect: Connect) -> None:
    handler = ScriptedDagManager()
    async with connect(handler, scopes=None) as caller:
        error = await fails(caller.call(DIFF, DiffRequest(strategy_id="s-1")))

    assert error.code == ErrorCode.ERROR_CODE_UNAUTHENTICATED
    assert error.wire_code == "E_UNAUTHENTICATED"
    assert handler.seen == []


async def a_token_without_the_scope_is_permission_denied(connect: Connect) -> None:
    handler = ScriptedDagManager()
    async with connect(handler, scopes=["dag:read"]) as caller:
        error = await fails(caller.call(DIFF, DiffRequest(strategy_id="s-1")))
        allowed = await caller.call(GET_NODE, GetNodeRequest(node_id="x"))

    assert error.code == ErrorCode.ERROR_CODE_PERMISSION_DENIED
    assert error.details["required_scopes"] == ["dag:diff"]
    assert SUBJECT in error.message
    assert handler.calls("diff") == []
    assert allowed.node.queue == "q-x"


async def a_handler_error_arrives_with_its_code_and_detail(connect: Connect) -> None:
    handler = ScriptedDagManager()
    handler.failures["get_node"] = [QmtlError.not_found("no node n-9", node_id="n-9")]
    retry, sleeps = fast_retries()
    async with connect(handler, retry=retry) as caller:
        error = await fails(caller.call(GET_NODE, GetNodeRequest(node_id="n-9")))

    assert (error.code, error.wire_code) == (ErrorCode.ERROR_CODE_NOT_FOUND, "E_NOT_FOUND")
    assert error.message == "no node n-9"
    assert error.details == {"node_id": "n-9"}
    assert error.retryable is False
    # Not retryable: asked once, although the rpc is idempotent.
    assert len(handler.calls("get_node")) == 1
    assert sleeps.waits == []


async def an_unexpected_handler_exception_is_internal_without_its_text(connect: Connect) -> None:
    handler = ScriptedDagManager()
    handler.failures["diff"] = [RuntimeError("secret database password in a traceback")]
    async with connect(handler) as caller:
        error = await fails(caller.call(DIFF, DiffRequest(strategy_id="s-1")))

    assert error.code == ErrorCode.ERROR_CODE_INTERNAL
    assert "secret" not in str(error)
    assert "secret" not in repr(error.details)


async def an_rpc_the_handler_lacks_is_unimplemented(connect: Connect) -> None:
    async with connect(ScriptedDagManager()) as caller:
        error = await fails(caller.call(TRIGGER_GC, TRIGGER_GC.request()))

    assert error.code == ErrorCode.ERROR_CODE_UNIMPLEMENTED
    assert error.details == {"rpc": TRIGGER_GC.full_name}


async def the_deadline_ends_the_call_and_cancels_the_handler(connect: Connect) -> None:
    handler = ScriptedDagManager()
    handler.hold["diff"] = asyncio.Event()  # never set: the handler outlives any deadline
    retry, sleeps = fast_retries()
    async with connect(handler, retry=retry) as caller:
        started = time.monotonic()
        error = await fails(caller.call(DIFF, DiffRequest(strategy_id="s-1"), timeout=0.3))
        elapsed = time.monotonic() - started
        async with asyncio.timeout(PATIENCE):
            await handler.cancelled.wait()

    assert error.code == ErrorCode.ERROR_CODE_TIMEOUT
    assert 0.3 <= elapsed < 0.3 + 2.0
    [seen] = handler.seen
    assert seen.ctx.deadline is not None
    assert seen.ctx.deadline - started <= 0.3 + 0.05
    assert sleeps.waits == []


async def a_call_without_timeout_has_the_default_deadline(connect: Connect) -> None:
    handler = ScriptedDagManager()
    handler.hold["get_node"] = asyncio.Event()
    async with connect(handler, default_timeout=0.4, retry=RetryPolicy(max_attempts=1)) as caller:
        started = time.monotonic()
        error = await fails(caller.call(GET_NODE, GetNodeRequest(node_id="x")))
        elapsed = time.monotonic() - started

    assert error.code == ErrorCode.ERROR_CODE_TIMEOUT
    assert 0.4 <= elapsed < 0.4 + 2.0
    [seen] = handler.seen
    assert seen.ctx.deadline is not None
    assert 0 < seen.ctx.deadline - started <= 0.4 + 0.05


async def an_idempotent_rpc_is_retried_after_retryable_errors(connect: Connect) -> None:
    handler = ScriptedDagManager()
    handler.failures["get_node"] = [QmtlError.unavailable("restarting")] * 2
    retry, sleeps = fast_retries(max_attempts=3)
    async with connect(handler, retry=retry) as caller:
        node = await caller.call(GET_NODE, GetNodeRequest(node_id="x"))

    assert node.node.queue == "q-x"
    assert len(handler.calls("get_node")) == 3
    assert len(sleeps.waits) == 2


async def retries_stop_at_max_attempts(connect: Connect) -> None:
    handler = ScriptedDagManager()
    handler.failures["get_node"] = [QmtlError.unavailable("down")] * 10
    retry, sleeps = fast_retries(max_attempts=3)
    async with connect(handler, retry=retry) as caller:
        error = await fails(caller.call(GET_NODE, GetNodeRequest(node_id="x")))

    assert error.code == ErrorCode.ERROR_CODE_UNAVAILABLE
    assert error.message == "down"
    assert len(handler.calls("get_node")) == 3
    assert len(sleeps.waits) == 2


async def a_non_idempotent_rpc_is_never_retried(connect: Connect) -> None:
    assert not REDO_DIFF.idempotent  # a POST without idempotency_level
    handler = ScriptedDagManager()
    handler.failures["redo_diff"] = [QmtlError.unavailable("restarting")]
    retry, sleeps = fast_retries(max_attempts=5)
    async with connect(handler, retry=retry) as caller:
        error = await fails(caller.call(REDO_DIFF, REDO_DIFF.request()))

    assert error.code == ErrorCode.ERROR_CODE_UNAVAILABLE
    assert error.retryable is True  # retryable, and still not retried: RedoDiff is a POST
    assert len(handler.calls("redo_diff")) == 1
    assert sleeps.waits == []


async def an_idempotent_post_is_retried(connect: Connect) -> None:
    assert DIFF.idempotent  # idempotency_level = IDEMPOTENT in the schema
    handler = ScriptedDagManager()
    handler.failures["diff"] = [QmtlError.unavailable("restarting")]
    retry, sleeps = fast_retries(max_attempts=5)
    async with connect(handler, retry=retry) as caller:
        reply = await caller.call(DIFF, DiffRequest(strategy_id="s-1"))

    assert reply.result.strategy_id == "s-1"
    assert len(handler.calls("diff")) == 2
    assert len(sleeps.waits) == 1


async def caller_and_handler_never_share_a_message(connect: Connect) -> None:
    handler = ScriptedDagManager()
    handler.hold["diff"] = asyncio.Event()
    request = DiffRequest(strategy_id="s-1")
    async with connect(handler) as caller:
        call = asyncio.ensure_future(caller.call(DIFF, request))
        async with asyncio.timeout(PATIENCE):
            await handler.arrived.wait()
        request.strategy_id = "changed while the call runs"
        handler.hold["diff"].set()
        async with asyncio.timeout(PATIENCE):
            reply = await call
        request.strategy_id = "changed after the call"
        [handed_out] = handler.replies
        assert isinstance(handed_out, DiffResponse)
        handed_out.result.strategy_id = "changed by the handler afterwards"

    [seen] = handler.seen
    assert seen.request == DiffRequest(strategy_id="s-1")
    assert reply.result.strategy_id == "s-1"


async def a_foreign_rpc_or_request_type_is_refused_before_sending(connect: Connect) -> None:
    handler = ScriptedDagManager()
    foreign = GATEWAY_SERVICE.rpcs[0]
    async with connect(handler) as caller:
        wrong_rpc = await fails(caller.call(foreign, foreign.request()))
        wrong_type = await fails(caller.call(DIFF, GetNodeRequest(node_id="x")))  # type: ignore[misc]
        bad_timeout = await fails(caller.call(GET_NODE, GetNodeRequest(), timeout=0))

    for error in (wrong_rpc, wrong_type, bad_timeout):
        assert error.code == ErrorCode.ERROR_CODE_INVALID_ARGUMENT
    assert foreign.full_name in wrong_rpc.message
    assert handler.seen == []


async def a_closed_caller_refuses_calls_without_retrying(connect: Connect) -> None:
    handler = ScriptedDagManager()
    retry, sleeps = fast_retries()
    async with connect(handler, retry=retry) as caller:
        await caller.aclose()
        error = await fails(caller.call(GET_NODE, GetNodeRequest(node_id="x")))

    assert error.code == ErrorCode.ERROR_CODE_UNAVAILABLE
    assert error.retryable is False
    assert "closed" in error.message
    assert handler.seen == []
    assert sleeps.waits == []


Case = Callable[[Connect], Awaitable[None]]
CASES: list[Case] = [
    calls_reach_the_handler_and_answer,
    an_anonymous_rpc_needs_no_token,
    no_token_is_unauthenticated,
    a_token_without_the_scope_is_permission_denied,
    a_handler_error_arrives_with_its_code_and_detail,
    an_unexpected_handler_exception_is_internal_without_its_text,
    an_rpc_the_handler_lacks_is_unimplemented,
    the_deadline_ends_the_call_and_cancels_the_handler,
    a_call_without_timeout_has_the_default_deadline,
    an_idempotent_rpc_is_retried_after_retryable_errors,
    retries_stop_at_max_attempts,
    a_non_idempotent_rpc_is_never_retried,
    an_idempotent_post_is_retried,
    caller_and_handler_never_share_a_message,
    a_foreign_rpc_or_request_type_is_refused_before_sending,
    a_closed_caller_refuses_calls_without_retrying,
]


def case_id(case: Case) -> str:
    return case.__name__
