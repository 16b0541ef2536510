"""Callbacks end to end (issue 11, "Callbacks"): jobs on the real Redis work queue, a real
worker loop, real HTTP to a uvicorn receiver that verifies every request with the shipped
helper, and the in-memory event bus catching the AlertRaised."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import redis.asyncio as redis

from qmtl.events.v1 import event_pb2, strategy_events_pb2
from qmtl.runtime.callbacks import SigningKey
from qmtl.runtime.callbacks.delivery import (
    ALERT_NAME,
    CallbackDeliverer,
    enqueue_callback,
    make_client,
    static_key,
)
from qmtl.runtime.endpoints import ServiceEndpoints
from qmtl.runtime.eventbus import OPS_EVENTS, InMemoryEventBus, decode
from qmtl.runtime.workqueue import (
    BackoffPolicy,
    QueueSettings,
    RedisWorkQueue,
    Shutdown,
    WorkerReport,
    WorkerSettings,
    run_worker,
)
from qmtl.work.v1 import work_item_pb2, work_state_pb2
from tests.polling import eventually

from .callback_receiver import Receiver, Step, serving
from .workqueue_support import free_port

KEY = SigningKey("k1", b"integration-secret-0123456789abcdef")
MAX_ATTEMPTS = 3
# Short backoffs keep the retries quick; the queue still decides when each retry is due.
SETTINGS = QueueSettings(backoff=BackoffPolicy(base=0.05, cap=0.2, jitter=0.5))
WORKER = WorkerSettings(lease_ttl=10.0, poll_interval=0.01, reap_interval=0.5)

COMPLETED = work_state_pb2.WORK_STATE_COMPLETED
DEAD = work_state_pb2.WORK_STATE_DEAD


def strategy_event(strategy_id: str = "s-1") -> event_pb2.Event:
    event = event_pb2.Event(
        id=str(uuid.uuid4()),
        type="qmtl.gateway.strategy_state_changed",
        source="qmtl/gateway/test",
        subject=f"strategies/{strategy_id}",
        idempotency_key=f"state:{strategy_id}:1",
        strategy_state_changed=strategy_events_pb2.StrategyStateChanged(strategy_id=strategy_id),
    )
    event.time.GetCurrentTime()
    return event


@dataclass
class Plane:
    queue: RedisWorkQueue
    bus: InMemoryEventBus

    async def state(self, job_id: str) -> work_item_pb2.WorkItem:
        item = await self.queue.get(job_id)
        assert item is not None
        return item

    async def settled(self, job_id: str, state: int) -> work_item_pb2.WorkItem:
        async def reached() -> bool:
            return (await self.state(job_id)).state == state

        await eventually(reached, what=f"job {job_id} to reach state {state}")
        return await self.state(job_id)

    def alerts(self) -> list[event_pb2.Event]:
        return [decode(r.value, r.headers) for r in self.bus.records(OPS_EVENTS)]


@pytest.fixture
async def plane(endpoints: ServiceEndpoints) -> AsyncIterator[Plane]:
    """A queue with its own key prefix on the shared Redis, deleted afterwards; a Redis that
    does not answer fails the test rather than skipping it."""
    client = redis.Redis.from_url(endpoints.redis_url, socket_connect_timeout=3)
    try:
        await client.ping()
    except redis.ConnectionError as exc:
        await client.aclose()
        pytest.fail(f"Redis is not reachable at {endpoints.redis_url} ({exc}); `make services-up`")
    queue = RedisWorkQueue(client, f"callbacks-{uuid.uuid4().hex}", SETTINGS)
    bus = InMemoryEventBus()
    try:
        yield Plane(queue, bus)
    finally:
        await bus.aclose()
        keys = [key async for key in client.scan_iter(match=queue.prefix + "*", count=1000)]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def run_deliveries(
    plane: Plane,
    url: str,
    events: list[event_pb2.Event],
    *,
    http_timeout: float = 5.0,
) -> tuple[list[str], Shutdown, asyncio.Task[WorkerReport]]:
    """Enqueues one callback per event and starts a worker delivering them."""
    job_ids = [
        (await enqueue_callback(plane.queue, "s-1", url, e, max_attempts=MAX_ATTEMPTS)).job_id
        for e in events
    ]
    client = make_client(timeout=http_timeout, connect_timeout=http_timeout)
    deliverer = CallbackDeliverer(client, static_key(KEY), plane.bus)
    shutdown = Shutdown()

    async def work() -> WorkerReport:
        try:
            return await run_worker(
                plane.queue,
                deliverer,
                worker_id="callbacks-test",
                settings=WORKER,
                shutdown=shutdown,
                handle_signals=False,
            )
        finally:
            await client.aclose()

    return job_ids, shutdown, asyncio.create_task(work())


async def stop(shutdown: Shutdown, worker: asyncio.Task[WorkerReport]) -> WorkerReport:
    shutdown.request()
    return await worker


async def deliver(
    plane: Plane, plan: list[Step], expect: int, *, http_timeout: float = 5.0
) -> tuple[Receiver, work_item_pb2.WorkItem, WorkerReport, event_pb2.Event]:
    """One callback against a receiver following `plan`, run until the job is terminal."""
    receiver = Receiver({"k1": KEY.secret}, plan)
    event = strategy_event()
    async with serving(receiver) as url:
        [job_id], shutdown, worker = await run_deliveries(
            plane, url, [event], http_timeout=http_timeout
        )
        try:

            async def terminal() -> bool:
                return (await plane.state(job_id)).state in (COMPLETED, DEAD)

            await eventually(terminal, what="the callback job to finish")
            item = await plane.state(job_id)
            assert item.state == expect, item
        finally:
            report = await stop(shutdown, worker)
    return receiver, item, report, event


async def test_a_callback_is_delivered_and_verified(plane: Plane) -> None:
    receiver, item, report, event = await deliver(plane, [200], COMPLETED)
    assert receiver.statuses() == [200]
    assert receiver.accepted == [event]
    assert item.attempts == 1
    assert report.completed == 1
    assert plane.alerts() == []


async def test_failing_twice_then_succeeding_delivers_once_on_the_third_try(plane: Plane) -> None:
    receiver, item, report, event = await deliver(plane, [503, 503, 200], COMPLETED)
    assert receiver.statuses() == [503, 503, 200]
    assert [r.event_id for r in receiver.received] == [event.id] * 3
    assert receiver.accepted == [event]
    assert item.attempts == 3
    assert (report.retried, report.completed, report.dead_lettered) == (2, 1, 0)
    assert plane.alerts() == []


async def test_always_failing_is_dead_lettered_after_n_with_one_alert(plane: Plane) -> None:
    receiver, item, report, event = await deliver(plane, [500] * 10, DEAD)
    assert receiver.statuses() == [500] * MAX_ATTEMPTS
    assert receiver.accepted == []
    assert item.attempts == MAX_ATTEMPTS
    assert item.error.code == "E_CALLBACK_DELIVERY"
    assert "HTTP 500" in item.error.message
    assert (report.retried, report.dead_lettered) == (MAX_ATTEMPTS - 1, 1)
    assert (await plane.queue.stats()).dead == 1
    [alert] = plane.alerts()
    assert alert.alert_raised.name == ALERT_NAME
    assert alert.alert_raised.target_id == "s-1"
    assert alert.alert_raised.attributes["event_id"] == event.id
    assert alert.correlation_id == item.id


async def test_a_receiver_that_never_answers_is_retried_after_the_timeout(plane: Plane) -> None:
    receiver, item, _report, event = await deliver(
        plane, ["hang", 200], COMPLETED, http_timeout=1.0
    )
    assert receiver.statuses() == [0, 200]
    assert receiver.accepted == [event]
    assert item.attempts == 2
    assert "timed out" in item.error.message


async def test_a_receiver_with_another_secret_refuses_and_the_job_dies_at_once(
    plane: Plane,
) -> None:
    receiver = Receiver({"k1": b"another-secret-0123456789abcdef0123"})
    async with serving(receiver) as url:
        [job_id], shutdown, worker = await run_deliveries(plane, url, [strategy_event()])
        try:
            item = await plane.settled(job_id, DEAD)
        finally:
            await stop(shutdown, worker)
    assert [(r.status, r.refusal) for r in receiver.received] == [(401, "mismatch")]
    assert item.attempts == 1
    assert len(plane.alerts()) == 1


async def test_a_refused_connection_is_retried_then_dead_lettered(plane: Plane) -> None:
    url = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    [job_id], shutdown, worker = await run_deliveries(plane, url, [strategy_event()])
    try:
        item = await plane.settled(job_id, DEAD)
    finally:
        report = await stop(shutdown, worker)
    assert item.attempts == MAX_ATTEMPTS
    assert "connection failed" in item.error.message
    assert (report.retried, report.dead_lettered) == (MAX_ATTEMPTS - 1, 1)
    assert len(plane.alerts()) == 1


async def test_the_same_event_enqueued_twice_is_delivered_once(plane: Plane) -> None:
    receiver = Receiver({"k1": KEY.secret})
    event = strategy_event()
    async with serving(receiver) as url:
        job_ids, shutdown, worker = await run_deliveries(plane, url, [event, event])
        try:
            assert job_ids[0] == job_ids[1]
            await plane.settled(job_ids[0], COMPLETED)
        finally:
            report = await stop(shutdown, worker)
    assert receiver.statuses() == [200]
    assert report.completed == 1
