"""The scrape-time sources of /metrics (work-queue depth, outbox backlog, health) and the
counters of the work queue, the relay and the boot: what a scrape shows, and that a down or
silent backend leaves the scrape answering with `qmtl_scrape_source_up 0`."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Sequence

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from qmtl.events.v1 import event_pb2
from qmtl.runtime import metrics
from qmtl.runtime.boot import Recovery, restarted_event
from qmtl.runtime.endpoints import ServiceEndpoints
from qmtl.runtime.eventbus import OPS_EVENTS
from qmtl.runtime.eventbus.errors import EventBusError
from qmtl.runtime.graphstore.outbox import OutboxEntry
from qmtl.runtime.health import Degraded, HealthReporter
from qmtl.runtime.metrics import (
    MetricsEndpoint,
    health_source,
    observe_boot,
    outbox_backlog_source,
    queue_depth_source,
)
from qmtl.runtime.outbox import OutboxRelay
from qmtl.runtime.outbox.memory_store import MemoryOutbox
from qmtl.runtime.workqueue import InMemoryWorkQueue, QueueSettings, RedisWorkQueue
from qmtl.work.v1 import work_item_pb2, work_type_pb2
from tests.integration.workqueue_support import free_port
from tests.polling import eventually


def item(max_attempts: int = 0) -> work_item_pb2.WorkItem:
    return work_item_pb2.WorkItem(
        type=work_type_pb2.WORK_TYPE_OTHER,
        payload_type="qmtl.test.Payload",
        payload=b"p",
        max_attempts=max_attempts,
    )


def event(n: int) -> event_pb2.Event:
    return restarted_event(
        "metrics-test", f"instance-{n}", Recovery(), started_at=time.time(), source="test"
    )


def scraped(text: bytes) -> dict[str, list[tuple[dict[str, str], float]]]:
    return {
        family.name: [(s.labels, s.value) for s in family.samples]
        for family in text_string_to_metric_families(text.decode())
    }


def endpoint(timeout_s: float = 2.0) -> MetricsEndpoint:
    # An empty registry of its own: only the scrape-time families, whatever else ran before.
    return MetricsEndpoint(CollectorRegistry(), timeout_s=timeout_s)


def sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


async def test_queue_depth_is_read_per_state_at_scrape() -> None:
    queue = InMemoryWorkQueue()
    for n in range(3):
        await queue.enqueue(item(), f"key-{n}")
    await queue.lease("worker", 30.0)
    scrape = endpoint()
    scrape.add_source("workqueue", queue_depth_source(queue, "gateway"))
    found = scraped(await scrape.render())
    assert sorted((labels["state"], value) for labels, value in found["qmtl_workqueue_jobs"]) == [
        ("dead", 0.0),
        ("delayed", 0.0),
        ("leased", 1.0),
        ("ready", 2.0),
    ]
    assert found["qmtl_scrape_source_up"] == [({"source": "workqueue"}, 1.0)]


@pytest.fixture
async def silent_redis_url() -> AsyncIterator[str]:
    """A listener that accepts every connection and never answers, like a paused Redis."""
    held: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        while await reader.read(65536):
            pass

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    try:
        yield f"redis://127.0.0.1:{server.sockets[0].getsockname()[1]}/0"
    finally:
        for writer in held:
            writer.close()
        server.close()


@pytest.mark.parametrize("redis", ["down", "silent"])
async def test_a_down_or_silent_redis_leaves_the_scrape_answering(
    redis: str, silent_redis_url: str
) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0" if redis == "down" else silent_redis_url
    # The queue's own call timeout is longer than the scrape's: the scrape's bound must hold.
    queue = RedisWorkQueue.from_url(url, "metrics-test", QueueSettings(call_timeout=5.0))
    healthy = InMemoryWorkQueue()
    await healthy.enqueue(item(), "key")
    scrape = endpoint(timeout_s=0.5)
    scrape.add_source("workqueue", queue_depth_source(queue, "gateway"))
    scrape.add_source("other", queue_depth_source(healthy, "other"))
    try:
        started = time.monotonic()
        found = scraped(await scrape.render())
        took = time.monotonic() - started
    finally:
        await queue.aclose()
    assert took < 3.0
    assert sorted(found["qmtl_scrape_source_up"], key=lambda s: s[0]["source"]) == [
        ({"source": "other"}, 1.0),
        ({"source": "workqueue"}, 0.0),
    ]
    # Only the healthy queue's depth: the down one is left out, not reported as empty.
    assert {labels["queue"] for labels, _ in found["qmtl_workqueue_jobs"]} == {"other"}


class _PendingOnly:
    """An outbox with no outbox_size (like the graph store's): counted from its pending page."""

    def __init__(self, outbox: MemoryOutbox) -> None:
        self._outbox = outbox

    async def outbox_pending(self, limit: int = 100) -> Sequence[OutboxEntry]:
        return await self._outbox.outbox_pending(limit)


async def test_outbox_backlog_counts_the_entries_not_yet_relayed() -> None:
    outbox = MemoryOutbox()
    await outbox.append(OPS_EVENTS, [event(1), event(2)])
    scrape = endpoint()
    scrape.add_source("outbox", outbox_backlog_source(outbox))
    scrape.add_source("pending", outbox_backlog_source(_PendingOnly(outbox)))
    text = (await scrape.render()).decode()
    assert text.count("qmtl_outbox_backlog 2.0") == 2


class _DownBus:
    async def publish(self, topic: str, events: Sequence[event_pb2.Event]) -> None:
        raise EventBusError("broker away", operation="publish", topics=(topic,))


async def test_a_failing_relay_drain_is_counted() -> None:
    outbox = MemoryOutbox()
    await outbox.append(OPS_EVENTS, [event(3)])
    relay = OutboxRelay(outbox, _DownBus())
    before = sample("qmtl_outbox_relay_failures_total")
    relay.start()
    try:

        async def counted() -> bool:
            return sample("qmtl_outbox_relay_failures_total") > before

        await eventually(counted, what="the relay failure counted", within=5.0)
    finally:
        await relay.stop()
    assert await outbox.outbox_size() == 1


async def test_health_reports_readiness_components_and_the_tag_index() -> None:
    reporter = HealthReporter("dag-manager", instance_id="i", version="v", contract_version="1")

    async def ok() -> None:
        return None

    async def not_migrated() -> None:
        raise Degraded("TAG index not ONLINE")

    reporter.add_check("graph_store", ok)
    reporter.add_check(metrics.TAG_INDEX_COMPONENT, not_migrated, required=False)
    reporter.mark_booted()
    scrape = endpoint()
    scrape.add_source("health", health_source(reporter))
    found = scraped(await scrape.render())
    assert found["qmtl_ready"] == [({}, 1.0)]
    assert sorted(found["qmtl_health_component_ok"], key=lambda s: s[0]["component"]) == [
        ({"component": "graph_store"}, 1.0),
        ({"component": "neo4j-schema"}, 0.0),
    ]
    assert found["qmtl_neo4j_tag_index_online"] == [({}, 0.0)]


async def test_reaped_leases_and_dead_letters_are_counted() -> None:
    now = [1000.0]
    queue = InMemoryWorkQueue(clock=lambda: now[0])
    await queue.enqueue(item(max_attempts=5), "retried")
    await queue.enqueue(item(max_attempts=1), "last-attempt")
    assert len(await queue.lease_many("worker", 1.0, 2)) == 2
    returned = sample("qmtl_workqueue_lease_expiries_total", outcome="returned")
    expired_dead = sample("qmtl_workqueue_lease_expiries_total", outcome="dead_lettered")
    dead = sample("qmtl_workqueue_dead_letters_total", reason="lease_expired")
    now[0] += 5.0
    reaped = await queue.reap_expired()
    assert (reaped.returned, reaped.dead_lettered) == (1, 1)
    assert sample("qmtl_workqueue_lease_expiries_total", outcome="returned") == returned + 1
    assert (
        sample("qmtl_workqueue_lease_expiries_total", outcome="dead_lettered") == expired_dead + 1
    )
    assert sample("qmtl_workqueue_dead_letters_total", reason="lease_expired") == dead + 1


def test_a_boot_keeps_one_timestamp_series_named_by_its_crash_detected() -> None:
    service = "metrics-test-boot"
    restarts = sample("qmtl_restarts_total", service=service, crash_detected="true")
    observe_boot(service, 0.25, crash_detected=False)
    observe_boot(service, 0.5, crash_detected=True)
    assert sample("qmtl_boot_duration_seconds", service=service) == 0.5
    assert (
        metrics.REGISTRY.get_sample_value(
            "qmtl_boot_timestamp_seconds", {"service": service, "crash_detected": "false"}
        )
        is None
    )
    assert sample("qmtl_boot_timestamp_seconds", service=service, crash_detected="true") > 0
    assert sample("qmtl_restarts_total", service=service, crash_detected="true") == restarts + 1


async def test_queue_depth_and_redis_call_latency_on_the_real_redis(
    endpoints: ServiceEndpoints,
) -> None:
    name = f"test-metrics-{uuid.uuid4().hex}"  # keys qmtl:wq:{<name>}:*, deleted below
    queue = RedisWorkQueue.from_url(endpoints.redis_url, name)
    timed = sample("qmtl_redis_call_duration_seconds_count", outcome="ok")
    try:
        await queue.enqueue(item(), "key-1")
        await queue.enqueue(item(), "key-2")
        scrape = endpoint()
        scrape.add_source("workqueue", queue_depth_source(queue, name))
        found = scraped(await scrape.render())
    finally:
        keys = [key async for key in queue.client.scan_iter(match=f"{queue.prefix}*")]
        if keys:
            await queue.client.delete(*keys)
        await queue.aclose()
    assert found["qmtl_scrape_source_up"] == [({"source": "workqueue"}, 1.0)]
    ready = [v for labels, v in found["qmtl_workqueue_jobs"] if labels["state"] == "ready"]
    assert ready == [2.0]
    # Two enqueues and the stats read went through workqueue.redis_calls.bounded.
    assert sample("qmtl_redis_call_duration_seconds_count", outcome="ok") >= timed + 3
