"""HealthReporter: component states, the worst-of rule, readiness, timeouts and the cache."""

from __future__ import annotations

import asyncio

import pytest

from qmtl.common.v1 import health_pb2
from qmtl.runtime.health import PUBLIC_VIEW, Degraded, HealthReporter, worst
from qmtl.runtime.redact import public_message

OK, DEGRADED, DOWN = (
    health_pb2.HEALTH_STATE_OK,
    health_pb2.HEALTH_STATE_DEGRADED,
    health_pb2.HEALTH_STATE_DOWN,
)


def reporter(**kwargs: float) -> HealthReporter:
    return HealthReporter(
        "dag-manager", instance_id="host:1/abc", version="1.2.3", contract_version="1", **kwargs
    )


async def fine() -> None:
    return None


async def broken() -> None:
    raise ConnectionRefusedError("connection refused by 10.0.0.5:7687")


async def behind() -> None:
    raise Degraded("schema at version 2 of 3")


def states(health: health_pb2.ServiceHealth) -> dict[str, tuple[int, str]]:
    return {c.name: (c.state, c.detail) for c in health.components}


async def test_every_component_is_reported_with_its_adapter_latency_and_time() -> None:
    health = reporter()
    health.add_check("graph_store", fine, adapter="neo4j")
    health.add_check("event_bus", fine, adapter="kafka")
    health.mark_booted()
    snapshot = await health.snapshot()
    assert snapshot.service == "dag-manager"
    assert (snapshot.state, snapshot.ready) == (OK, True)
    assert [(c.name, c.adapter, c.state) for c in snapshot.components] == [
        ("graph_store", "neo4j", OK),
        ("event_bus", "kafka", OK),
    ]
    assert all(c.HasField("checked_at") and c.HasField("latency") for c in snapshot.components)
    assert (snapshot.instance_id, snapshot.version, snapshot.contract_version) == (
        "host:1/abc",
        "1.2.3",
        "1",
    )
    assert snapshot.HasField("started_at")


async def test_a_failing_required_component_is_down_and_the_service_not_ready() -> None:
    health = reporter()
    health.add_check("graph_store", broken, adapter="neo4j")
    health.add_check("event_bus", fine)
    health.mark_booted()
    snapshot = await health.snapshot()
    assert states(snapshot)["graph_store"] == (
        DOWN,
        "ConnectionRefusedError: connection refused by 10.0.0.5:7687",
    )
    assert (snapshot.state, snapshot.ready) == (DOWN, False)


async def test_a_failing_optional_component_only_degrades_and_stays_ready() -> None:
    health = reporter()
    health.add_check("callbacks", broken, required=False)
    health.add_check("neo4j-schema", behind, required=True)
    health.mark_booted()
    snapshot = await health.snapshot()
    assert states(snapshot)["callbacks"][0] == DEGRADED
    # Degraded is the check's own verdict: the backend answers, so even required is not DOWN.
    assert states(snapshot)["neo4j-schema"] == (DEGRADED, "schema at version 2 of 3")
    assert (snapshot.state, snapshot.ready) == (DEGRADED, True)


async def test_a_check_past_its_timeout_counts_as_not_answering() -> None:
    never = asyncio.Event()

    async def hangs() -> None:
        await never.wait()

    health = reporter()
    health.add_check("work_queue", hangs, timeout_s=0.05)
    health.mark_booted()
    snapshot = await health.snapshot()
    assert states(snapshot)["work_queue"] == (DOWN, "no answer within 0.05 s")
    assert not snapshot.ready


async def test_not_ready_until_booted_even_with_every_component_ok() -> None:
    health = reporter(max_age_s=0)
    health.add_check("graph_store", fine)
    before = await health.snapshot()
    assert (before.state, before.ready) == (OK, False)
    assert not health.liveness().ready
    health.mark_booted()
    assert (await health.snapshot()).ready
    assert health.liveness() == health_pb2.ServiceHealth(service="dag-manager", ready=True)


async def test_snapshots_within_max_age_share_one_round_of_checks() -> None:
    calls = 0

    async def counted() -> None:
        nonlocal calls
        calls += 1

    health = reporter(max_age_s=60)
    health.add_check("graph_store", counted)
    await asyncio.gather(*(health.snapshot() for _ in range(20)))
    assert calls == 1
    health.add_check("event_bus", fine)  # a new component invalidates the cached round
    assert len((await health.snapshot()).components) == 2
    assert calls == 2


def test_worst_orders_down_over_degraded_over_ok() -> None:
    assert worst([]) == OK
    assert worst([OK, DEGRADED, OK]) == DEGRADED
    assert worst([DEGRADED, DOWN, OK]) == DOWN


async def test_the_public_view_keeps_only_service_state_and_ready() -> None:
    health = reporter()
    health.add_check("graph_store", broken, adapter="neo4j")
    snapshot = await health.snapshot()
    public = public_message(snapshot, PUBLIC_VIEW)
    assert public == health_pb2.ServiceHealth(service="dag-manager", state=DOWN, ready=False)
    assert "10.0.0.5" not in str(public)


def test_a_check_needs_a_positive_timeout() -> None:
    with pytest.raises(ValueError, match="timeout_s"):
        reporter().add_check("x", fine, timeout_s=0)
