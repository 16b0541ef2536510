"""Submitting a strategy through the Gateway's generated typed client: `submit()`.

`submit(strategy, client)` sends the DAG (`SubmitStrategy`, with `wait_timeout` so that a quick
diff comes back in the answer), and if the answer is only an acknowledgement (HTTP 202, state
QUEUED or PROCESSING) polls `GetStrategyStatus` with a growing interval until the strategy is
COMPLETED or FAILED, all within `wait` seconds. It returns the strategy id, the diff (which
nodes are new, which reused, every node's queue) and the RunPlan made from it.

A DAG that was already submitted (same set of node ids: the Gateway's `dag_hash`) is answered
E_DUPLICATE with the first strategy's id; for a quant that is not an error: it is the same
strategy, so `submit` returns that strategy's diff and plan (`Submitted.duplicate` is True) and
the process runs what the first submission would have run. Run one process per strategy: two
processes of one strategy would both compute its new nodes.

The client is an `AsyncGatewayServiceClient` (generated; docs/api/CLIENT.md) whose token has the
scopes `strategies:submit` and `strategies:read` (and `queues:read` for tag queries).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Protocol

from google.protobuf import duration_pb2

from qmtl.common.v1 import error_code_pb2, error_pb2
from qmtl.dag.v1 import diff_result_pb2, strategy_pb2
from qmtl.gateway.v1 import strategy_messages_pb2 as messages
from qmtl.runtime.errors import QmtlError

from .plan import plan_from_diff
from .runner.model import RunPlan
from .strategy import Strategy

COMPLETED = strategy_pb2.STRATEGY_STATE_COMPLETED
FAILED = strategy_pb2.STRATEGY_STATE_FAILED
# Status polling: the first check soon after the acknowledgement (a diff takes milliseconds on
# the embedded default), then ever less often, so a slow diff costs about one call a second.
FIRST_POLL_S = 0.05
POLL_GROWTH = 1.5
MAX_POLL_S = 1.0
# The Submit call may be held by the Gateway for up to `wait`; this much more lets its answer
# arrive before the client's own deadline passes.
ANSWER_MARGIN_S = 5.0
# Each status or strategy read is short; its own bound, inside the overall `wait`.
READ_TIMEOUT_S = 10.0


class GatewayCalls(Protocol):
    """The rpcs `submit` uses; `AsyncGatewayServiceClient` is one."""

    async def submit_strategy(
        self,
        request: messages.SubmitStrategyRequest,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - the generated client's API
    ) -> messages.SubmitStrategyResponse: ...

    async def get_strategy_status(
        self,
        request: messages.GetStrategyStatusRequest,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - the generated client's API
    ) -> messages.GetStrategyStatusResponse: ...

    async def get_strategy(
        self,
        request: messages.GetStrategyRequest,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - the generated client's API
    ) -> messages.GetStrategyResponse: ...


@dataclass(frozen=True)
class Submitted:
    """A strategy the Gateway has diffed: what to run and where every node's output goes."""

    strategy_id: str
    diff: diff_result_pb2.DiffResult
    plan: RunPlan
    # True when the same DAG had been submitted before: strategy_id is that first submission's.
    duplicate: bool = False


class SubmissionFailed(QmtlError):
    """The Gateway ended the submission FAILED; code, message and details are the server's
    ErrorDetail (e.g. E_QUEUE_CREATE_FAILED), `strategy_id` names the strategy."""

    strategy_id: str

    @classmethod
    def of(cls, strategy_id: str, detail: error_pb2.ErrorDetail) -> SubmissionFailed:
        if not detail.code:  # a FAILED state without its error: still a typed failure
            detail = error_pb2.ErrorDetail(
                code="E_INTERNAL", message="the strategy FAILED without an error detail"
            )
        error = cls.from_detail(detail)
        assert isinstance(error, cls)  # from_detail builds an instance of the class it is called on
        error.strategy_id = strategy_id
        error.details.setdefault("strategy_id", strategy_id)
        return error


class SubmissionTimeout(QmtlError):
    """The strategy was neither COMPLETED nor FAILED within `wait` seconds (E_TIMEOUT); it is
    still queued at the Gateway: `submit` the same strategy again later to pick it up."""

    def __init__(self, strategy_id: str, state: int, wait: float) -> None:
        state_name = strategy_pb2.StrategyState.Name(state)  # type: ignore[arg-type]
        super().__init__(
            error_code_pb2.ERROR_CODE_TIMEOUT,
            f"strategy {strategy_id} is still {state_name} after {wait:g}s",
            details={"strategy_id": strategy_id, "state": state_name},
        )
        self.strategy_id = strategy_id


def _request(
    strategy: Strategy, wait: float, idempotency_key: str | None
) -> messages.SubmitStrategyRequest:
    request = messages.SubmitStrategyRequest(
        name=strategy.name,
        node_ids_crc32=strategy.node_ids_crc32(),
        idempotency_key=idempotency_key or "",
        wait_timeout=duration_pb2.Duration(
            seconds=int(wait), nanos=round((wait - int(wait)) * 1e9)
        ),
    )
    request.dag.CopyFrom(strategy.to_dag())
    return request


async def submit(
    strategy: Strategy,
    client: GatewayCalls,
    *,
    wait: float = 30.0,
    idempotency_key: str | None = None,
) -> Submitted:
    """Submits `strategy` and returns its diff and RunPlan once the Gateway has diffed it.

    Raises SubmissionFailed (the server's error) when it ends FAILED, SubmissionTimeout when it
    has not ended within `wait` seconds, and the client's QmtlError for a refused submission
    (E_NODE_ID_MISMATCH, E_DAG_INVALID, ...: the message names the field).
    """
    if not wait > 0:
        raise QmtlError(
            error_code_pb2.ERROR_CODE_INVALID_ARGUMENT, f"wait must be positive, got {wait}"
        )
    deadline = time.monotonic() + wait
    duplicate = False
    try:
        answer = await client.submit_strategy(
            _request(strategy, wait, idempotency_key), timeout=wait + ANSWER_MARGIN_S
        )
        strategy_id = answer.strategy_id
        if answer.state == COMPLETED and answer.HasField("diff"):
            return Submitted(strategy_id, answer.diff, plan_from_diff(strategy, answer.diff))
    except QmtlError as exc:
        if exc.code != error_code_pb2.ERROR_CODE_DUPLICATE or "strategy_id" not in exc.details:
            raise
        strategy_id, duplicate = str(exc.details["strategy_id"]), True
    diff = await _diff_when_done(client, strategy_id, deadline, wait)
    return Submitted(strategy_id, diff, plan_from_diff(strategy, diff), duplicate=duplicate)


async def _diff_when_done(
    client: GatewayCalls, strategy_id: str, deadline: float, wait: float
) -> diff_result_pb2.DiffResult:
    """Polls the status until COMPLETED (then reads the diff) or FAILED, until `deadline`."""
    pause = FIRST_POLL_S
    while True:
        left = deadline - time.monotonic()
        status = await client.get_strategy_status(
            messages.GetStrategyStatusRequest(strategy_id=strategy_id),
            timeout=max(min(READ_TIMEOUT_S, left), 1.0),
        )
        if status.state == COMPLETED:
            record = await client.get_strategy(
                messages.GetStrategyRequest(strategy_id=strategy_id), timeout=READ_TIMEOUT_S
            )
            return record.strategy.diff
        if status.state == FAILED:
            raise SubmissionFailed.of(strategy_id, status.error)
        left = deadline - time.monotonic()
        if left <= 0:
            raise SubmissionTimeout(strategy_id, status.state, wait)
        await asyncio.sleep(min(pause, left))
        pause = min(pause * POLL_GROWTH, MAX_POLL_S)
