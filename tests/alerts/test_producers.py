"""The AlertRaised producers: a backend down beyond the grace (and its recovery), a crash found
at boot, a dead-lettered diff job (in the outbox with its FAILED state), a graph schema behind
at boot, a dead callback job."""

from __future__ import annotations

import pytest

from qmtl.common.v1 import health_pb2
from qmtl.runtime.alerts.backend_down import BackendDownAlerts, check_interval
from qmtl.runtime.alerts.model import (
    BOOT_CHECK_WARNING,
    CRITICAL,
    FIRING,
    RESOLVED,
    SERVICE_CRASHED,
    WARNING,
    WORK_ITEM_DEAD_LETTERED,
)
from qmtl.runtime.errors import QmtlError
from qmtl.runtime.eventbus import OPS_EVENTS, InMemoryEventBus
from qmtl.runtime.health import DOWN, OK, DownWatch, HealthReporter
from qmtl.runtime.restart import Restart
from qmtl.services.dag_manager.boot import GraphSchemaCheck
from qmtl.services.dag_manager.config import DagManagerConfig
from qmtl.services.dag_manager.recover import schema_alert
from tests.gateway.gateway_support import FAILED, gateway_env, submit_request
from tests.polling import eventually

DEGRADED = health_pb2.HEALTH_STATE_DEGRADED


def health(**states: int) -> health_pb2.ServiceHealth:
    return health_pb2.ServiceHealth(
        components=[health_pb2.ComponentHealth(name=n, state=s) for n, s in states.items()]
    )


def test_a_component_is_reported_once_past_the_grace_and_back_once() -> None:
    watch = DownWatch(grace_s=60)
    assert watch.observe(health(redis=DOWN), 0) == []
    assert watch.observe(health(redis=DOWN), 59.9) == []
    [down] = watch.observe(health(redis=DOWN), 60)
    assert (down.component, down.down, down.since) == ("redis", True, 0)
    assert watch.observe(health(redis=DOWN), 500) == []
    [up] = watch.observe(health(redis=OK), 501)
    assert (up.component, up.down) == ("redis", False)
    assert watch.observe(health(redis=OK), 502) == []


def test_a_blip_shorter_than_the_grace_is_never_reported() -> None:
    watch = DownWatch(grace_s=60)
    for t in range(0, 600, 30):  # down 30 s, up, down again: never 60 s in a row
        state = DOWN if (t // 30) % 2 == 0 else OK
        assert watch.observe(health(neo4j=state, kafka=OK), t) == []
    assert watch.reported == frozenset()


def test_the_check_interval_follows_the_grace() -> None:
    assert (check_interval(3), check_interval(60), check_interval(0)) == (1.0, 5.0, 0.5)


async def test_backend_down_alerts_fire_and_resolve_on_the_bus() -> None:
    bus = InMemoryEventBus()
    reporter = HealthReporter("gateway", instance_id="gw-1", version="1", contract_version="1",
                              max_age_s=0)  # fmt: skip
    up = {"value": True}

    async def check() -> None:
        if not up["value"]:
            raise ConnectionError("connection refused")

    reporter.add_check("dag_manager", check, required=False, adapter="grpc")
    received = []

    async def collect(delivery) -> None:  # type: ignore[no-untyped-def]
        received.append(delivery.event)

    await bus.subscribe([OPS_EVENTS], "test", collect)
    alerts = BackendDownAlerts(reporter, bus, service="gateway", instance_id="gw-1",
                               source="qmtl/gateway", grace_s=0.2, interval_s=0.02)  # fmt: skip
    alerts.start()
    try:
        up["value"] = False

        async def fired() -> bool:
            return len(received) == 1

        await eventually(fired, what="the FIRING alert")
        up["value"] = True

        async def resolved() -> bool:
            return len(received) == 2

        await eventually(resolved, what="the RESOLVED alert")
    finally:
        await alerts.stop()
        await bus.aclose()
    firing, resolve = (e.alert_raised for e in received)
    assert firing.name == resolve.name == "BackendDown"
    assert (firing.state, resolve.state) == (FIRING, RESOLVED)
    assert firing.dedupe_key == resolve.dedupe_key == "BackendDown:gateway:gw-1:dag_manager"
    assert firing.level == WARNING  # an optional backend: DEGRADED
    assert "ConnectionError: connection refused" in firing.message
    assert (firing.service, firing.instance_id, firing.runbook) == (
        "gateway",
        "gw-1",
        "backenddown",
    )
    assert received[0].type == "qmtl.ops.alert_raised"
    assert received[0].idempotency_key != received[1].idempotency_key


class Marker:
    def __init__(self, crashed: bool) -> None:
        self.crashed = crashed

    async def mark_running(self, instance_id: str, *, started_at: float) -> bool:
        return self.crashed

    async def clear(self, instance_id: str) -> None:
        return None


async def test_a_crash_found_at_boot_raises_service_crashed_once_per_boot() -> None:
    published: list = []

    class Bus:
        async def publish(self, topic: str, events: list) -> None:  # type: ignore[type-arg]
            published.extend((topic, e) for e in events)

    for crashed in (False, True):
        state = Restart("dag_manager", "dm-1", "qmtl/dag-manager/dm-1", started_at=1700000000.5)
        await state.mark(Marker(crashed))  # type: ignore[arg-type]
        await state.announce(Bus())  # type: ignore[arg-type]
    types = [e.WhichOneof("payload") for _, e in published]
    assert types == ["service_restarted", "service_restarted", "alert_raised"]
    topic, event = published[-1]
    alert = event.alert_raised
    assert topic == OPS_EVENTS
    assert (alert.name, alert.state, alert.level) == (SERVICE_CRASHED, FIRING, CRITICAL)
    assert alert.dedupe_key == "ServiceCrashed:dag_manager:dm-1:1700000000.500000"
    assert event.idempotency_key == "service_crashed:dm-1:1700000000.500000"
    assert (alert.service, alert.instance_id) == ("dag_manager", "dm-1")


async def test_a_dead_lettered_diff_job_writes_its_alert_with_the_failed_state() -> None:
    async for env in gateway_env(diff_max_attempts=2):
        env.dag_manager.failures = [QmtlError.unavailable(f"down {n}") for n in range(5)]
        env.worker()
        response, _ = await env.submit(submit_request())
        await env.wait_for_state(response.strategy_id, FAILED)
        # Written by the same store write as FAILED: there once FAILED is.
        [event] = [e for e in await env.outbox_events() if e.HasField("alert_raised")]
        alert = event.alert_raised
        assert (alert.name, alert.state) == (WORK_ITEM_DEAD_LETTERED, FIRING)
        assert alert.target_id == response.strategy_id
        assert alert.dedupe_key == f"WorkItemDeadLettered:{response.work_item_id}"
        assert alert.attributes["attempts"] == "2"
        assert "E_UNAVAILABLE down 1" in alert.message
        assert (alert.service, alert.instance_id) == ("gateway", "w1")
        assert event.correlation_id == response.work_item_id


def test_a_schema_behind_at_boot_is_a_boot_check_warning_and_current_resolves_it() -> None:
    config = DagManagerConfig(graph_prefix="T1")
    state = Restart("dag-manager", "dm-1", "qmtl/dag-manager/dm-1", started_at=5.0)
    component = health_pb2.ComponentHealth(name="neo4j-schema", state=DEGRADED)
    behind = GraphSchemaCheck(
        ok=False,
        reason="migration 2 not applied",
        command="qmtl migrate --label-prefix T1",
        component=component,
    )
    fired = schema_alert(config, state, behind).alert_raised
    assert (fired.name, fired.state, fired.level) == (BOOT_CHECK_WARNING, FIRING, WARNING)
    assert "run `qmtl migrate --label-prefix T1`" in fired.message
    assert fired.dedupe_key == "BootCheckWarning:dag-manager:neo4j-schema:T1"
    current = GraphSchemaCheck(ok=True, reason="", command="", component=component)
    resolved = schema_alert(config, state, current).alert_raised
    assert (resolved.state, resolved.dedupe_key) == (RESOLVED, fired.dedupe_key)


async def test_a_dead_callback_job_alert_carries_the_new_fields() -> None:
    from qmtl.runtime.callbacks.delivery import CallbackDeliveryError
    from tests.unit.test_callback_delivery import Fixture, job, status

    fixture = Fixture(status(503))
    fixture.deliverer.instance_id = "gw-1"
    with pytest.raises(CallbackDeliveryError, match="HTTP 503"):
        await fixture.deliverer(job(attempts=3, max_attempts=3))
    [event] = fixture.alerts()
    alert = event.alert_raised
    assert (alert.name, alert.state, alert.runbook) == (
        "CallbackDeadLettered",
        FIRING,
        "callbackdeadlettered",
    )
    assert alert.dedupe_key == "CallbackDeadLettered:job-1"
    assert (alert.service, alert.instance_id) == ("gateway", "gw-1")
