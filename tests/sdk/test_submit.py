"""submit() through the generated Gateway client against `qmtl gateway --backend memory` as a
subprocess: a first strategy gets every node new and runs its processing nodes; a second one
sharing nodes gets them reused and runs only its own; the same DAG again is not an error (the
first strategy's diff comes back); a refused DAG and a missing scope raise the server's typed
error. The acknowledgement-then-poll path (HTTP 202) is driven by a scripted client: FAILED
raises the server's ErrorDetail, a strategy that never ends raises E_TIMEOUT after `wait`."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from qmtl.common.v1 import error_code_pb2, error_pb2
from qmtl.dag.v1 import diff_result_pb2, strategy_pb2
from qmtl.gateway.v1 import strategy_messages_pb2 as messages
from qmtl.gateway.v1.gateway_service_client import AsyncGatewayServiceClient
from qmtl.runtime.auth import issue_token
from qmtl.runtime.errors import QmtlError
from qmtl.services.sdk.authoring import Node, StreamInput
from qmtl.services.sdk.client import SubmissionFailed, SubmissionTimeout, submit
from qmtl.services.sdk.strategy import Strategy
from tests.serve.service_process import ServiceProcess

SECRET = "sdk-submit-test-secret"
SCOPES = ("strategies:submit", "strategies:read")
pytestmark = pytest.mark.asyncio(loop_scope="module")


def mean(view: Any) -> Any:
    return None


def cross(view: Any) -> Any:
    return None


def spread(view: Any) -> Any:
    return None


def strategies(asset: str) -> tuple[Strategy, Strategy, dict[str, Any]]:
    """Two strategies sharing a source and two averages; `asset` keeps tests apart."""
    price = StreamInput(tags=(asset, "price"), interval="60s", period=20, name="price")
    ma5 = Node(input=price, compute_fn=mean, period=5, name="ma5", tags=(asset,))
    ma20 = Node(input=price, compute_fn=mean, period=20, name="ma20", tags=(asset,))
    # A config of its own: the same node text in another test is another node.
    signal = Node(input=[ma5, ma20], compute_fn=cross, period=2, name="signal",
                  config={"asset": asset})  # fmt: skip
    other = Node(input=[ma5, ma20], compute_fn=spread, period=1, name="spread",
                 config={"asset": asset})  # fmt: skip
    nodes = {"price": price, "ma5": ma5, "ma20": ma20, "signal": signal, "spread": other}
    return Strategy(f"{asset}-crossover", [signal]), Strategy(f"{asset}-spread", [other]), nodes


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gateway() -> AsyncIterator[ServiceProcess]:
    process = ServiceProcess("gateway", "--backend", "memory", "--public-port", "0",
                             "--internal-port", "0", env={"QMTL_TOKEN_SECRET": SECRET})  # fmt: skip
    try:
        await process.start()
        await process.wait_ready()
        yield process
        process.check_alive()
        assert "Traceback" not in process.logs(), process.logs()
    finally:
        await process.close()


def client_of(gateway: ServiceProcess, *scopes: str) -> AsyncGatewayServiceClient:
    token = issue_token(SECRET.encode(), "test:sdk", scopes or SCOPES)
    return AsyncGatewayServiceClient(
        gateway.url("public"), internal=gateway.url("internal"), token=token
    )


async def test_a_first_strategy_gets_every_node_new_and_runs_its_processing_nodes(
    gateway: ServiceProcess,
) -> None:
    first, _, nodes = strategies("first")
    async with client_of(gateway) as client:
        submitted = await submit(first, client, wait=10)
    assert submitted.strategy_id
    assert not submitted.duplicate
    assert submitted.diff.strategy_id == submitted.strategy_id
    assert set(submitted.diff.new_node_ids) == {n.node_id for n in first.nodes}
    assert list(submitted.diff.reused_node_ids) == []
    assert submitted.plan.run == {nodes[n].node_id for n in ("ma5", "ma20", "signal")}
    assert set(submitted.plan.topics) == {n.node_id for n in first.nodes}
    # The first tag names the topic (domain.md §2.6).
    assert submitted.plan.topics[nodes["ma5"].node_id].startswith("first_Node_")


async def test_a_second_strategy_sharing_nodes_runs_only_its_own(
    gateway: ServiceProcess,
) -> None:
    first, second, nodes = strategies("shared")
    async with client_of(gateway) as client:
        one = await submit(first, client, wait=10)
        two = await submit(second, client, wait=10)
    shared = {nodes[n].node_id for n in ("price", "ma5", "ma20")}
    assert set(two.diff.reused_node_ids) == shared
    assert list(two.diff.new_node_ids) == [nodes["spread"].node_id]
    assert two.plan.run == {nodes["spread"].node_id}
    for node_id in shared:  # the second consumes the very topics the first produces to
        assert two.plan.topics[node_id] == one.plan.topics[node_id]


async def test_the_same_dag_again_answers_the_first_strategy_and_its_diff(
    gateway: ServiceProcess,
) -> None:
    first, _, _ = strategies("again")
    async with client_of(gateway) as client:
        one = await submit(first, client, wait=10)
        again = await submit(strategies("again")[0], client, wait=10)
    assert again.duplicate
    assert again.strategy_id == one.strategy_id
    assert again.diff == one.diff
    assert again.plan.run == one.plan.run


async def test_a_refused_dag_raises_the_servers_typed_error(
    gateway: ServiceProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, _, _ = strategies("refused")
    monkeypatch.setattr(first, "node_ids_crc32", lambda: 12345)
    async with client_of(gateway) as client:
        with pytest.raises(QmtlError) as caught:
            await submit(first, client, wait=10)
    assert caught.value.code == error_code_pb2.ERROR_CODE_CHECKSUM_MISMATCH
    assert 400 <= caught.value.status < 500  # answered by the server, not a transport error


async def test_a_token_without_the_submit_scope_is_refused(gateway: ServiceProcess) -> None:
    first, _, _ = strategies("scope")
    async with client_of(gateway, "strategies:read") as client:
        with pytest.raises(QmtlError) as caught:
            await submit(first, client, wait=10)
    assert caught.value.code == error_code_pb2.ERROR_CODE_PERMISSION_DENIED


# -- the 202 path, scripted ------------------------------------------------------------------


class Scripted:
    """A Gateway that acknowledges, then answers the given states in turn (the last repeats)."""

    def __init__(self, states: list[int], *, error: error_pb2.ErrorDetail | None = None,
                 diff: diff_result_pb2.DiffResult | None = None) -> None:  # fmt: skip
        self.states, self.error, self.diff = states, error, diff
        self.polls: list[float] = []
        self.requests: list[messages.SubmitStrategyRequest] = []

    async def submit_strategy(
        self,
        request: messages.SubmitStrategyRequest,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - the generated client's API
    ) -> messages.SubmitStrategyResponse:
        self.requests.append(request)
        return messages.SubmitStrategyResponse(
            strategy_id="s-1", state=strategy_pb2.STRATEGY_STATE_QUEUED
        )

    async def get_strategy_status(
        self,
        request: messages.GetStrategyStatusRequest,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - the generated client's API
    ) -> messages.GetStrategyStatusResponse:
        self.polls.append(time.monotonic())
        state = self.states[min(len(self.polls) - 1, len(self.states) - 1)]
        answer = messages.GetStrategyStatusResponse(strategy_id=request.strategy_id, state=state)
        if state == strategy_pb2.STRATEGY_STATE_FAILED and self.error is not None:
            answer.error.CopyFrom(self.error)
        return answer

    async def get_strategy(
        self,
        request: messages.GetStrategyRequest,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - the generated client's API
    ) -> messages.GetStrategyResponse:
        assert self.diff is not None
        answer = messages.GetStrategyResponse()
        answer.strategy.strategy_id = request.strategy_id
        answer.strategy.diff.CopyFrom(self.diff)
        return answer


def full_diff(strategy: Strategy) -> diff_result_pb2.DiffResult:
    diff = diff_result_pb2.DiffResult(strategy_id="s-1")
    for node in strategy.nodes:
        diff.queue_map.queues[node.node_id].queue = f"t_{node.name}"
        diff.new_node_ids.append(node.node_id)
    return diff


async def test_an_acknowledgement_is_polled_until_completed_with_growing_pauses() -> None:
    first, _, nodes = strategies("polled")
    states = [strategy_pb2.STRATEGY_STATE_QUEUED] * 2 + [
        strategy_pb2.STRATEGY_STATE_PROCESSING,
        strategy_pb2.STRATEGY_STATE_COMPLETED,
    ]
    gateway = Scripted(states, diff=full_diff(first))
    submitted = await submit(first, gateway, wait=10, idempotency_key="k-1")
    assert submitted.strategy_id == "s-1"
    assert submitted.plan.run == {nodes[n].node_id for n in ("ma5", "ma20", "signal")}
    assert len(gateway.polls) == 4
    pauses = [b - a for a, b in zip(gateway.polls, gateway.polls[1:], strict=False)]
    assert pauses[-1] > pauses[0]  # backoff, not a fixed beat
    sent = gateway.requests[0]
    assert sent.idempotency_key == "k-1"
    assert sent.wait_timeout.seconds == 10
    assert sent.node_ids_crc32 == first.node_ids_crc32()
    assert [n.node_id for n in sent.dag.nodes] == [n.node_id for n in first.nodes]


async def test_a_failed_strategy_raises_the_servers_error_detail() -> None:
    first, _, _ = strategies("failed")
    detail = error_pb2.ErrorDetail(code="E_QUEUE_CREATE_FAILED", message="broker said no")
    gateway = Scripted([strategy_pb2.STRATEGY_STATE_FAILED], error=detail)
    with pytest.raises(SubmissionFailed) as caught:
        await submit(first, gateway, wait=10)
    assert caught.value.code == error_code_pb2.ERROR_CODE_QUEUE_CREATE_FAILED
    assert caught.value.message == "broker said no"
    assert caught.value.strategy_id == "s-1"


async def test_a_strategy_that_does_not_end_within_wait_is_a_timeout() -> None:
    first, _, _ = strategies("slow")
    gateway = Scripted([strategy_pb2.STRATEGY_STATE_PROCESSING])
    started = time.monotonic()
    with pytest.raises(SubmissionTimeout) as caught:
        await submit(first, gateway, wait=0.3)
    assert 0.3 <= time.monotonic() - started < 2.0
    assert caught.value.code == error_code_pb2.ERROR_CODE_TIMEOUT
    assert caught.value.details == {"strategy_id": "s-1", "state": "STRATEGY_STATE_PROCESSING"}
    assert len(gateway.polls) >= 2


async def test_wait_must_be_positive() -> None:
    first, _, _ = strategies("zero")
    with pytest.raises(QmtlError) as caught:
        await submit(first, Scripted([]), wait=0)
    assert caught.value.code == error_code_pb2.ERROR_CODE_INVALID_ARGUMENT
