"""The boot building blocks: ordered steps with durations and retries, Backend, BootGate,
the in-memory clean-shutdown marker and the ServiceRestarted event."""

from __future__ import annotations

import asyncio
import logging

import pytest

from qmtl.dagmanager.v1.dag_manager_service_handler import DAG_MANAGER_SERVICE
from qmtl.dagmanager.v1.diff_messages_pb2 import DiffRequest, DiffResponse
from qmtl.dagmanager.v1.status_messages_pb2 import GetStatusRequest, GetStatusResponse
from qmtl.runtime.auth import issue_token
from qmtl.runtime.boot import (
    Backend,
    BootGate,
    BootPolicy,
    BootStep,
    MemoryMarker,
    NotConnectedError,
    Recovery,
    relayed_check,
    restarted_event,
    run_boot,
    serve_and_boot,
    token_verifier,
)
from qmtl.runtime.errors import ErrorCode, QmtlError
from qmtl.runtime.eventbus import OPS_EVENTS, topic_for_event_type
from qmtl.runtime.health import Degraded
from qmtl.runtime.serve import ServeError
from tests.polling import eventually

FAST = BootPolicy(initial_backoff_s=0.001, max_backoff_s=0.002)


class Fatal(Exception):
    pass


async def test_steps_run_in_order_and_each_is_logged_with_its_duration(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ran: list[str] = []

    def step(name: str) -> BootStep:
        async def run() -> None:
            ran.append(name)

        return BootStep(name, run)

    with caplog.at_level(logging.INFO):
        durations = await run_boot([step("connect"), step("drain"), step("announce")], policy=FAST)
    assert ran == ["connect", "drain", "announce"]
    assert list(durations) == ran
    assert [r.getMessage().rsplit(" in ", 1)[0] for r in caplog.records] == [
        "boot: connect ok",
        "boot: drain ok",
        "boot: announce ok",
    ]
    assert all(r.getMessage().endswith(" ms") for r in caplog.records)


async def test_a_failing_step_is_retried_until_it_succeeds_and_later_steps_wait() -> None:
    attempts = 0
    ran: list[str] = []

    async def flaky() -> None:
        nonlocal attempts
        attempts += 1
        if attempts < 4:
            raise ConnectionError("neo4j down")

    async def after() -> None:
        ran.append(f"after {attempts}")

    await run_boot([BootStep("connect", flaky), BootStep("after", after)], policy=FAST)
    assert ran == ["after 4"]


async def test_a_fatal_error_ends_the_boot_at_once() -> None:
    attempts = 0

    async def refused() -> None:
        nonlocal attempts
        attempts += 1
        raise Fatal("redis without AOF under the production profile")

    with pytest.raises(Fatal):
        await run_boot([BootStep("durability", refused)], policy=BootPolicy(fatal=(Fatal,)))
    assert attempts == 1


def test_backoff_doubles_up_to_the_cap() -> None:
    policy = BootPolicy(initial_backoff_s=0.5, max_backoff_s=4)
    assert [policy.backoff(n) for n in range(1, 6)] == [0.5, 1, 2, 4, 4]
    with pytest.raises(ValueError, match="backoff"):
        BootPolicy(initial_backoff_s=0)


async def test_a_backend_health_check_names_the_last_error_until_connected() -> None:
    fail = True
    pinged: list[str] = []

    async def open_it() -> str:
        if fail:
            raise OSError("connection refused to 127.0.0.1:1")
        return "conn"

    async def ping(value: str) -> None:
        pinged.append(value)

    backend = Backend("graph_store", "neo4j", open_it, ping=ping)
    with pytest.raises(NotConnectedError, match="connecting"):
        await backend.check()
    with pytest.raises(OSError, match="connection refused"):
        await backend.connect()
    with pytest.raises(NotConnectedError, match=r"OSError: connection refused to 127\.0\.0\.1:1"):
        await backend.check()
    fail = False
    await run_boot([backend.step()], policy=FAST)
    await backend.check()
    assert (backend.value, pinged) == ("conn", ["conn"])
    assert backend.take() == "conn"
    assert not backend.connected


class Core:
    async def diff(self, request: DiffRequest, ctx: object) -> DiffResponse:
        return DiffResponse()


class Status:
    async def get_status(self, request: GetStatusRequest, ctx: object) -> GetStatusResponse:
        return GetStatusResponse()


async def test_the_gate_answers_unavailable_until_opened_except_the_always_rpcs() -> None:
    gate = BootGate(DAG_MANAGER_SERVICE, always_handler=Status(), always=("GetStatus",))
    with pytest.raises(QmtlError) as refused:
        await gate.diff(DiffRequest(), None)  # type: ignore[attr-defined]
    assert refused.value.code is ErrorCode.ERROR_CODE_UNAVAILABLE
    assert "starting" in refused.value.message
    assert await gate.get_status(GetStatusRequest(), None) == GetStatusResponse()  # type: ignore[attr-defined]
    gate.open(Core())
    assert await gate.diff(DiffRequest(), None) == DiffResponse()  # type: ignore[attr-defined]
    assert await gate.get_status(GetStatusRequest(), None) == GetStatusResponse()  # type: ignore[attr-defined]


def test_the_gate_refuses_an_rpc_the_service_lacks() -> None:
    with pytest.raises(ValueError, match="NoSuchRpc"):
        BootGate(DAG_MANAGER_SERVICE, always_handler=Status(), always=("NoSuchRpc",))


async def test_the_memory_marker_tells_a_second_boot_without_a_clean_stop() -> None:
    marker = MemoryMarker()
    assert not await marker.mark_running("h:1", started_at=1.0)
    assert await marker.mark_running("h:1", started_at=2.0)  # no clear in between: a crash
    await marker.clear("h:1")
    assert not await marker.mark_running("h:1", started_at=3.0)
    assert not await marker.mark_running("h:2", started_at=3.0)  # keyed by instance


def test_the_restarted_event_carries_the_recovery_on_the_ops_topic() -> None:
    recovery = Recovery(
        crash_detected=True, replayed_events=3, recovered_work_items=2, repaired_resources=6
    )
    event = restarted_event(
        "gateway",
        "h:8081",
        recovery,
        started_at=1700000000.5,
        source="qmtl/gateway/h:8081",
        clock=lambda: 1700000001.25,
    )
    assert topic_for_event_type(event.type) == OPS_EVENTS
    assert (event.subject, event.source) == ("services/gateway", "qmtl/gateway/h:8081")
    payload = event.service_restarted
    assert (payload.service, payload.instance_id, payload.crash_detected) == (
        "gateway",
        "h:8081",
        True,
    )
    assert (payload.replayed_events, payload.recovered_work_items) == (3, 2)
    assert payload.repaired_resources == 6
    assert payload.started_at.ToNanoseconds() == 1700000000_500000000
    assert (event.time.seconds, event.time.nanos) == (1700000001, 250000000)
    again = restarted_event("gateway", "h:8081", recovery, started_at=1700000000.5, source="x")
    assert again.idempotency_key == event.idempotency_key  # one boot, one restart
    assert again.id != event.id


class FakeListeners:
    """Listening for serve_and_boot: `run` serves until `stop`, or fails at start."""

    def __init__(self, *, fail_start: bool = False) -> None:
        self.fail_start = fail_start
        self._stop = asyncio.Event()
        self._started = asyncio.Event()

    async def run(self) -> None:
        if self.fail_start:
            raise ServeError("the public listener cannot bind 127.0.0.1:80")
        self._started.set()
        await self._stop.wait()

    async def wait_started(self) -> None:
        await asyncio.sleep(0)
        if self.fail_start:
            raise ServeError("serving stopped before every listener started")
        await self._started.wait()

    def stop(self) -> None:
        self._stop.set()


async def test_serve_and_boot_stops_with_1_when_the_boot_fails_for_good() -> None:
    listeners, closed = FakeListeners(), []

    async def boot() -> None:
        raise Fatal("redis without AOF")

    async def shut_down() -> None:
        closed.append("shut down")

    assert await serve_and_boot(listeners, boot=boot, shut_down=shut_down) == 1
    assert closed == ["shut down"]


async def test_a_stop_during_the_boot_cancels_it_and_still_shuts_down_with_0() -> None:
    listeners, events = FakeListeners(), []
    waiting = asyncio.Event()

    async def boot() -> None:
        events.append("booting")
        try:
            await waiting.wait()  # a backend that never comes
        except asyncio.CancelledError:
            events.append("cancelled")
            raise

    async def shut_down() -> None:
        events.append("shut down")

    task = asyncio.create_task(serve_and_boot(listeners, boot=boot, shut_down=shut_down))

    async def booting() -> bool:
        return events == ["booting"]

    await eventually(booting, what="the boot to start")
    listeners.stop()
    assert await task == 0
    assert events == ["booting", "cancelled", "shut down"]


async def test_a_listener_that_cannot_start_is_raised_naming_it_and_nothing_boots() -> None:
    booted = []

    async def boot() -> None:
        booted.append(1)

    async def shut_down() -> None:
        booted.append(2)

    with pytest.raises(ServeError, match=r"cannot bind 127\.0\.0\.1:80"):
        await serve_and_boot(FakeListeners(fail_start=True), boot=boot, shut_down=shut_down)
    assert booted == []


async def test_without_a_secret_the_verifier_accepts_no_token_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        verifier = token_verifier(b"")
    assert "every authenticated rpc will answer 401" in caplog.text
    with pytest.raises(QmtlError) as refused:
        await verifier.verify(issue_token(b"a guess", "x", ["dag:diff"]))
    assert refused.value.code is ErrorCode.ERROR_CODE_UNAUTHENTICATED
    signed = token_verifier(b"s3cret", "k1")
    principal = await signed.verify(issue_token(b"s3cret", "svc", ["dag:diff"], key_id="k1"))
    assert principal.scopes == frozenset({"dag:diff"})


class FailingRelay:
    failures = 0


class RelayState:
    def __init__(self) -> None:
        self.relay: FailingRelay | None = None


async def test_the_event_bus_check_degrades_while_its_relay_keeps_failing() -> None:
    async def open_bus() -> str:
        return "bus"

    bus: Backend[str] = Backend("event_bus", "kafka", open_bus)
    state = RelayState()
    check = relayed_check(bus, state)
    with pytest.raises(NotConnectedError):
        await check()
    await bus.connect()
    await check()  # connected, no relay yet: fine
    state.relay = FailingRelay()
    await check()
    state.relay.failures = 3
    with pytest.raises(Degraded, match="failed its last 3 drain"):
        await check()
