"""A runner's node states reach the Gateway as ReportNodeStatus calls (sdk.reporting)."""

from __future__ import annotations

from qmtl.dag.v1 import node_status_pb2
from qmtl.gateway.v1 import node_status_messages_pb2 as messages
from qmtl.services.sdk.reporting import MAX_STATES_PER_CALL, node_status_reporter


class Recording:
    def __init__(self) -> None:
        self.requests: list[messages.ReportNodeStatusRequest] = []
        self.timeouts: list[float | None] = []

    async def report_node_status(
        self,
        request: messages.ReportNodeStatusRequest,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - the generated client's API
    ) -> messages.ReportNodeStatusResponse:
        self.requests.append(request)
        self.timeouts.append(timeout)
        return messages.ReportNodeStatusResponse(accepted=len(request.node_states))


def _states(count: int) -> list[node_status_pb2.NodeState]:
    running = node_status_pb2.NODE_STATUS_RUNNING
    return [node_status_pb2.NodeState(node_id=f"n{i}", status=running) for i in range(count)]


async def test_a_report_is_one_call_for_the_strategy_with_a_deadline() -> None:
    gateway = Recording()
    await node_status_reporter(gateway, "s-1")(_states(3))
    [request] = gateway.requests
    assert request.strategy_id == "s-1"
    assert [s.node_id for s in request.node_states] == ["n0", "n1", "n2"]
    assert gateway.timeouts[0] is not None


async def test_a_report_over_the_gateways_bound_is_split() -> None:
    gateway = Recording()
    await node_status_reporter(gateway, "s-1")(_states(MAX_STATES_PER_CALL + 5))
    assert [len(r.node_states) for r in gateway.requests] == [MAX_STATES_PER_CALL, 5]
