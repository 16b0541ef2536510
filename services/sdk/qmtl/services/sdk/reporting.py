"""Node states from a runner to the Gateway: the runner's `report` callback as
`ReportNodeStatus` calls, so `GetStrategyStatus.node_states` shows what runs and what failed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from qmtl.dag.v1 import node_status_pb2
from qmtl.gateway.v1 import node_status_messages_pb2 as messages

from .runner.runner import Reporter

# A report is small and best effort (the runner logs a failure and goes on): a short deadline
# keeps a slow Gateway from holding up the data plane.
REPORT_TIMEOUT_S = 5.0
# The Gateway's bound per call (ReportNodeStatusRequest.node_states).
MAX_STATES_PER_CALL = 1_000


class NodeStatusCalls(Protocol):
    """The rpc a reporter uses; `AsyncGatewayServiceClient` is one."""

    async def report_node_status(
        self,
        request: messages.ReportNodeStatusRequest,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - the generated client's API
    ) -> messages.ReportNodeStatusResponse: ...


def node_status_reporter(client: NodeStatusCalls, strategy_id: str) -> Reporter:
    """A `Runner(report=...)` that sends each report to the Gateway for `strategy_id`
    (needs the `strategies:report` scope), in calls of at most MAX_STATES_PER_CALL states."""

    async def report(states: Sequence[node_status_pb2.NodeState]) -> None:
        for start in range(0, len(states), MAX_STATES_PER_CALL):
            request = messages.ReportNodeStatusRequest(
                strategy_id=strategy_id,
                node_states=states[start : start + MAX_STATES_PER_CALL],
            )
            await client.report_node_status(request, timeout=REPORT_TIMEOUT_S)

    return report
