"""InProcessCaller: the embedded caller runs the shared RpcCaller cases on the handler object.

The same cases GrpcCaller passes over a real server (tests/grpc/rpc_caller_cases.py) run here
without a network: access, errors, deadlines, retries and message isolation must not tell the
two apart. The tests below cover what is particular to calling in process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import pytest
from google.protobuf.message import Message

from qmtl.dagmanager.v1.dag_manager_service_handler import DAG_MANAGER_SERVICE
from qmtl.dagmanager.v1.diff_messages_pb2 import DiffRequest, DiffResponse
from qmtl.dagmanager.v1.node_messages_pb2 import GetNodeRequest
from qmtl.runtime.auth import Principal
from qmtl.runtime.client_retry import RetryPolicy
from qmtl.runtime.context import Context
from qmtl.runtime.errors import ErrorCode, QmtlError
from qmtl.runtime.inprocess import InProcessCaller
from qmtl.runtime.pipeline import Next
from qmtl.runtime.rpc_caller import RpcCaller
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
)


def principal_for(scopes: Sequence[str] | None) -> Principal | None:
    return None if scopes is None else Principal(SUBJECT, frozenset(scopes))


@asynccontextmanager
async def connect(
    handler: object,
    *,
    scopes: Sequence[str] | None = ALL_SCOPES,
    default_timeout: float = 10.0,
    retry: RetryPolicy | None = None,
) -> AsyncIterator[RpcCaller]:
    caller = InProcessCaller(
        handler,
        DAG_MANAGER_SERVICE,
        principal=principal_for(scopes),
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


async def test_the_request_mutated_after_the_call_leaves_the_handlers_copy_alone() -> None:
    handler = ScriptedDagManager()
    request = DiffRequest(strategy_id="s-1")
    caller = InProcessCaller(handler, DAG_MANAGER_SERVICE, principal=principal_for(ALL_SCOPES))
    reply = await caller.call(DIFF, request)
    request.strategy_id = "mutated"
    request.dag.meta.version = "v2"

    [seen] = handler.seen
    assert seen.request is not request
    assert seen.request == DiffRequest(strategy_id="s-1")
    assert reply is not handler.replies[0]


class Tagging:
    """An interceptor that records each call it sees and can refuse RedoDiff."""

    def __init__(self, refuse: bool = False) -> None:
        self.seen: list[str] = []
        self.refuse = refuse

    async def __call__(self, request: Message, ctx: Context, call_next: Next) -> Message:
        self.seen.append(ctx.rpc.name)
        if self.refuse and ctx.rpc is REDO_DIFF:
            raise QmtlError.unavailable("maintenance", retry_after=1)
        return await call_next(request, ctx)


async def test_interceptors_run_around_the_handler_as_on_the_transports() -> None:
    handler = ScriptedDagManager()
    tagging = Tagging(refuse=True)
    caller = InProcessCaller(
        handler,
        DAG_MANAGER_SERVICE,
        principal=principal_for(ALL_SCOPES),
        interceptors=[tagging],
    )
    node = await caller.call(GET_NODE, GetNodeRequest(node_id="x"))
    error = await fails(caller.call(REDO_DIFF, REDO_DIFF.request()))

    assert node.node.queue == "q-x"
    assert tagging.seen == ["GetNode", "RedoDiff"]
    assert error.code == ErrorCode.ERROR_CODE_UNAVAILABLE
    assert error.retry_after == 1
    assert handler.calls("redo_diff") == []


async def test_a_refused_call_never_reaches_the_interceptors() -> None:
    tagging = Tagging()
    caller = InProcessCaller(
        ScriptedDagManager(),
        DAG_MANAGER_SERVICE,
        principal=principal_for(["dag:read"]),
        interceptors=[tagging],
    )
    error = await fails(caller.call(DIFF, DiffRequest(strategy_id="s-1")))
    assert error.code == ErrorCode.ERROR_CODE_PERMISSION_DENIED
    assert tagging.seen == []


async def test_the_handler_sees_the_principal_and_no_headers() -> None:
    handler = ScriptedDagManager()
    principal = principal_for(["dag:diff"])
    caller = InProcessCaller(handler, DAG_MANAGER_SERVICE, principal=principal)
    await caller.call(DIFF, DiffRequest(strategy_id="s-1"))

    [seen] = handler.seen
    assert seen.ctx.principal == principal
    assert dict(seen.ctx.headers) == {}
    assert seen.ctx.rpc is DIFF


class WrongReply(ScriptedDagManager):
    async def diff(self, request: DiffRequest, ctx: Context) -> DiffResponse:
        return GetNodeRequest(node_id="not a DiffResponse")  # type: ignore[return-value]


async def test_a_reply_of_the_wrong_type_is_an_internal_error() -> None:
    caller = InProcessCaller(WrongReply(), DAG_MANAGER_SERVICE, principal=principal_for(ALL_SCOPES))
    error = await fails(caller.call(DIFF, DiffRequest(strategy_id="s-1")))
    assert error.code == ErrorCode.ERROR_CODE_INTERNAL


def test_an_unbounded_default_timeout_is_refused() -> None:
    with pytest.raises(QmtlError) as caught:
        InProcessCaller(
            ScriptedDagManager(),
            DAG_MANAGER_SERVICE,
            principal=None,
            default_timeout=float("inf"),
        )
    assert caught.value.code == ErrorCode.ERROR_CODE_INVALID_ARGUMENT
