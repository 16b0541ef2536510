"""GetOverview: the work queue by state (dead letters included) and each backend's name,
adapter and state, without the check's detail (a failing check's message may carry an address)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from qmtl.common.v1 import error_pb2, health_pb2
from qmtl.gateway.v1 import overview_messages_pb2
from qmtl.runtime.health import HealthReporter
from qmtl.services.gateway.handler import GatewayHandler
from tests.gateway.gateway_support import GatewayEnv, ctx_for, gateway_env, submit_request

ADDRESS = "10.1.2.3:6379"


@pytest.fixture
async def env() -> AsyncIterator[GatewayEnv]:
    async for made in gateway_env():
        yield made


async def overview(handler: GatewayHandler) -> overview_messages_pb2.GetOverviewResponse:
    return await handler.get_overview(
        overview_messages_pb2.GetOverviewRequest(), ctx_for("GetOverview")
    )


async def test_the_work_queue_counts_follow_a_job_from_ready_to_dead(env: GatewayEnv) -> None:
    assert (await overview(env.handler)).work_queue == overview_messages_pb2.WorkQueueCounts()
    for seed in (1, 2):
        await env.handler.submit_strategy(submit_request(seed=seed), ctx_for("SubmitStrategy"))
    counts = (await overview(env.handler)).work_queue
    assert (counts.ready, counts.leased, counts.delayed, counts.dead) == (2, 0, 0, 0)

    lease = await env.queue.lease("worker-1", 30.0)
    assert lease is not None
    counts = (await overview(env.handler)).work_queue
    assert (counts.ready, counts.leased, counts.dead) == (1, 1, 0)

    error = error_pb2.ErrorDetail(message="diff refused")
    await env.queue.fail(lease.job_id, lease.token, error, retryable=False)
    counts = (await overview(env.handler)).work_queue
    assert (counts.ready, counts.leased, counts.delayed, counts.dead) == (1, 0, 0, 1)


async def test_backends_are_named_with_adapter_and_state_but_no_detail(env: GatewayEnv) -> None:
    async def refused() -> None:
        raise ConnectionError(f"connection refused by {ADDRESS}")

    reporter = HealthReporter("gateway", instance_id="gw-1", version="0.1.0", contract_version="v1")
    reporter.add_check("strategy_store", env.store.ping, adapter="memory")
    reporter.add_check("work_queue", refused, adapter="redis")
    reporter.mark_booted()
    handler = GatewayHandler(env.store, env.queue, env.caller, health=reporter)

    answer = await overview(handler)
    backends = {b.name: (b.adapter, b.state) for b in answer.backends}
    assert backends == {
        "strategy_store": ("memory", health_pb2.HEALTH_STATE_OK),
        "work_queue": ("redis", health_pb2.HEALTH_STATE_DOWN),
    }
    assert answer.state == health_pb2.HEALTH_STATE_DOWN
    assert not answer.ready
    detail = (await reporter.snapshot()).components
    assert any(ADDRESS in c.detail for c in detail)  # the check did say it...
    assert ADDRESS.encode() not in answer.SerializeToString()  # ...the overview does not


async def test_without_a_health_reporter_only_the_queue_is_reported(env: GatewayEnv) -> None:
    answer = await overview(env.handler)
    assert not answer.backends
    assert answer.state == health_pb2.HEALTH_STATE_UNSPECIFIED
    assert answer.HasField("work_queue")
