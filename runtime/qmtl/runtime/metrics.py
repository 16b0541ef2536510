"""Every Prometheus metric of a qmtl process, defined in one place (docs/operations/metrics.md).

Two kinds:
- Counters and histograms bumped where things happen (the request interceptor, the gRPC
  caller, the work queue, the event bus, the outbox relay, the Neo4j and Redis call helpers,
  the boot). They live in `REGISTRY`, this process's own registry rather than
  prometheus-client's global default, so nothing a library registers globally leaks into a
  scrape and a test can read exact values from it.
- Gauges read at scrape time from a backend (work-queue depth, outbox backlog, health), as
  async `ScrapeSource`s of a `MetricsEndpoint`. Each runs under a timeout and never raises out
  of the scrape: a down Redis makes `qmtl_scrape_source_up{source="workqueue"}` 0 and leaves
  the other families intact, since a scrape that fails hides exactly the outage it should show.

Labels stay bounded: rpc full names (never paths with ids), transports, wire codes, event
topics (a fixed set), states and outcomes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from typing import Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector

from qmtl.common.v1 import health_pb2

__all__ = [
    "CONTENT_TYPE",
    "REGISTRY",
    "MetricsEndpoint",
    "ScrapeSource",
    "count_reaped",
    "health_source",
    "observe_boot",
    "outbox_backlog_source",
    "queue_depth_source",
]

_log = logging.getLogger(__name__)

# The text format every Prometheus 2.x reads (Debian's is 2.42); every qmtl name fits it.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
DEFAULT_SOURCE_TIMEOUT_S = 2.0

REGISTRY = CollectorRegistry(auto_describe=True)
# process_start_time_seconds, CPU, memory, open fds: a restart shows as a new start time.
ProcessCollector(registry=REGISTRY)

# From sub-millisecond in-memory calls to a diff of a large DAG on a loaded Neo4j.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

# -- served calls (qmtl.runtime.interceptors.RequestMetrics) --------------------------------------
REQUESTS = Counter(
    "qmtl_requests",
    "Calls that reached the pipeline's interceptors, by rpc, transport and outcome code.",
    ["rpc", "transport", "code"],
    registry=REGISTRY,
)
REQUEST_SECONDS = Histogram(
    "qmtl_request_duration_seconds",
    "Time from the interceptor to the handler's answer, by rpc, transport and outcome code.",
    ["rpc", "transport", "code"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)

# -- outgoing gRPC calls (qmtl.runtime.grpc.client.GrpcCaller) ------------------------------------
CLIENT_REQUESTS = Counter(
    "qmtl_grpc_client_requests",
    "Outgoing gRPC calls (retries included in one call), by rpc and outcome code.",
    ["rpc", "code"],
    registry=REGISTRY,
)
CLIENT_SECONDS = Histogram(
    "qmtl_grpc_client_request_duration_seconds",
    "Outgoing gRPC call time, retries included, by rpc and outcome code.",
    ["rpc", "code"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)

# -- work queue (qmtl.runtime.workqueue) ----------------------------------------------------------
LEASE_EXPIRIES = Counter(
    "qmtl_workqueue_lease_expiries",
    "Expired leases reclaimed by a reap: returned to READY, or dead-lettered out of attempts.",
    ["outcome"],
    registry=REGISTRY,
)
DEAD_LETTERS = Counter(
    "qmtl_workqueue_dead_letters",
    "Jobs moved to DEAD by this process: a failed job out of attempts or not retryable "
    "(reason=failed), or an expired lease out of attempts (reason=lease_expired).",
    ["reason"],
    registry=REGISTRY,
)
REDIS_SECONDS = Histogram(
    "qmtl_redis_call_duration_seconds",
    "Redis calls of the work queue (workqueue.redis_calls.bounded), by outcome.",
    ["outcome"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)

# -- events and outbox ----------------------------------------------------------------------------
EVENTS_PUBLISHED = Counter(
    "qmtl_events_published",
    "Events acknowledged by Kafka, by event topic.",
    ["topic"],
    registry=REGISTRY,
)
EVENT_PUBLISH_FAILURES = Counter(
    "qmtl_event_publish_failures",
    "Event publishes that failed after their retries, by event topic.",
    ["topic"],
    registry=REGISTRY,
)
OUTBOX_RELAYED = Counter(
    "qmtl_outbox_relayed_events", "Outbox entries the relay published and acked.", registry=REGISTRY
)
OUTBOX_RELAY_FAILURES = Counter(
    "qmtl_outbox_relay_failures",
    "Relay drains that failed (the bus or the store was down); the entries stay pending.",
    registry=REGISTRY,
)

# -- Neo4j (qmtl.runtime.graphstore.neo4j_tx) -----------------------------------------------------
NEO4J_SECONDS = Histogram(
    "qmtl_neo4j_transaction_duration_seconds",
    "Neo4j transactions of the graph store, retries included, by access mode and outcome.",
    ["mode", "outcome"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)

# -- boot (qmtl.runtime.boot) ---------------------------------------------------------------------
BOOT_STEP_SECONDS = Gauge(
    "qmtl_boot_step_duration_seconds",
    "Seconds the last boot's step took, retries included.",
    ["step"],
    registry=REGISTRY,
)
BOOT_SECONDS = Gauge(
    "qmtl_boot_duration_seconds",
    "Seconds from the listeners accepting to the service taking traffic, last boot.",
    ["service"],
    registry=REGISTRY,
)
BOOT_TIMESTAMP = Gauge(
    "qmtl_boot_timestamp_seconds",
    "Unix time the last boot finished; crash_detected says whether the previous run of this "
    'instance crashed (changes() of the crash_detected="true" series counts crash restarts).',
    ["service", "crash_detected"],
    registry=REGISTRY,
)
RESTARTS = Counter(
    "qmtl_restarts",
    "Boots finished by this process (ServiceRestarted), by crash_detected.",
    ["service", "crash_detected"],
    registry=REGISTRY,
)


def count_reaped(returned: int, dead_lettered: int) -> None:
    """Records one reap of expired leases (called by each WorkQueue adapter's reap_expired)."""
    if returned:
        LEASE_EXPIRIES.labels("returned").inc(returned)
    if dead_lettered:
        LEASE_EXPIRIES.labels("dead_lettered").inc(dead_lettered)
        DEAD_LETTERS.labels("lease_expired").inc(dead_lettered)


def observe_boot(service: str, seconds: float, *, crash_detected: bool) -> None:
    """Records a finished boot (called once per boot by the service's process)."""
    crashed = "true" if crash_detected else "false"
    BOOT_SECONDS.labels(service=service).set(seconds)
    # One series per process: the one of the label value it did not boot with goes.
    other = "false" if crash_detected else "true"
    if (service, other) in _boot_series():
        BOOT_TIMESTAMP.remove(service, other)
    BOOT_TIMESTAMP.labels(service=service, crash_detected=crashed).set(time.time())
    RESTARTS.labels(service=service, crash_detected=crashed).inc()


def _boot_series() -> set[tuple[str, ...]]:
    return {
        (sample.labels["service"], sample.labels["crash_detected"])
        for family in BOOT_TIMESTAMP.collect()
        for sample in family.samples
    }


# -- scrape-time sources ---------------------------------------------------------------------------

ScrapeSource = Callable[[], Awaitable[Iterable[Metric]]]
"""Reads a backend when /metrics is scraped and returns the metric families it found."""


class _Families(Collector):
    def __init__(self, families: Sequence[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


class MetricsEndpoint:
    """What a process's /metrics answers: `registry` plus its scrape sources, read now.

    Each source runs under `timeout_s`, all at once; one that fails or is late is left out
    and reported by `qmtl_scrape_source_up{source} 0`, never by a failed scrape.
    """

    def __init__(
        self,
        registry: CollectorRegistry = REGISTRY,
        *,
        timeout_s: float = DEFAULT_SOURCE_TIMEOUT_S,
    ) -> None:
        self.registry = registry
        self.timeout_s = timeout_s
        self._sources: dict[str, ScrapeSource] = {}

    def add_source(self, name: str, source: ScrapeSource) -> None:
        """Adds (or replaces) the source `name`, the `source` label of its up gauge."""
        self._sources[name] = source

    async def render(self) -> bytes:
        names = list(self._sources)
        results = await asyncio.gather(*(self._read(name) for name in names))
        up = GaugeMetricFamily(
            "qmtl_scrape_source_up",
            "1 when the scrape-time source answered within its timeout, else 0.",
            labels=["source"],
        )
        families: list[Metric] = [up]
        for name, found in zip(names, results, strict=True):
            up.add_metric([name], 0.0 if found is None else 1.0)
            families.extend(found or ())
        scraped = CollectorRegistry(auto_describe=False)
        scraped.register(_Families(families))
        return generate_latest(self.registry) + generate_latest(scraped)

    async def _read(self, name: str) -> list[Metric] | None:
        try:
            async with asyncio.timeout(self.timeout_s):
                return list(await self._sources[name]())
        except TimeoutError:
            _log.warning("metrics: source %s did not answer within %gs", name, self.timeout_s)
        except Exception as exc:  # a down backend: reported by the up gauge, not raised
            _log.warning("metrics: source %s failed: %s: %s", name, type(exc).__name__, exc)
        return None


class _QueueStats(Protocol):  # workqueue.QueueStats, without importing the Redis adapter
    @property
    def ready(self) -> int: ...
    @property
    def leased(self) -> int: ...
    @property
    def delayed(self) -> int: ...
    @property
    def dead(self) -> int: ...


class _StatsQueue(Protocol):
    async def stats(self) -> _QueueStats: ...


def queue_depth_source(queue: _StatsQueue, name: str) -> ScrapeSource:
    """`qmtl_workqueue_jobs{queue, state}` from `queue.stats()` (WorkQueue.stats)."""

    async def read() -> list[Metric]:
        stats = await queue.stats()
        jobs = GaugeMetricFamily(
            "qmtl_workqueue_jobs", "Jobs in the work queue by state.", labels=["queue", "state"]
        )
        for state in ("ready", "leased", "delayed", "dead"):
            jobs.add_metric([name, state], float(getattr(stats, state)))
        return [jobs]

    return read


class _Outbox(Protocol):
    async def outbox_pending(self, limit: int = ...) -> Sequence[object]: ...


def outbox_backlog_source(store: _Outbox, *, cap: int = 1000) -> ScrapeSource:
    """`qmtl_outbox_backlog`: entries written but not yet relayed.

    The store's `outbox_size()` when it has one (Redis), else the pending entries up to `cap`
    (a backlog past it is stuck either way, and counting further would cost a big read)."""

    async def read() -> list[Metric]:
        size: Callable[[], Awaitable[int]] | None = getattr(store, "outbox_size", None)
        count = await size() if size is not None else len(await store.outbox_pending(cap))
        return [
            GaugeMetricFamily(
                "qmtl_outbox_backlog",
                "Outbox entries not yet published to Kafka.",
                value=float(count),
            )
        ]

    return read


class _Health(Protocol):
    async def snapshot(self) -> health_pb2.ServiceHealth: ...


TAG_INDEX_COMPONENT = "neo4j-schema"


def health_source(reporter: _Health) -> ScrapeSource:
    """`qmtl_ready`, `qmtl_health_component_ok{component}` and, on a Neo4j DAG Manager,
    `qmtl_neo4j_tag_index_online` (its `neo4j-schema` boot check: migrated, TAG index ONLINE)."""

    async def read() -> list[Metric]:
        health = await reporter.snapshot()
        ready = GaugeMetricFamily(
            "qmtl_ready", "1 when /ready answers 200.", value=1.0 if health.ready else 0.0
        )
        ok = GaugeMetricFamily(
            "qmtl_health_component_ok",
            "1 when the component's health check is OK, 0 when degraded or down.",
            labels=["component"],
        )
        families: list[Metric] = [ready, ok]
        for component in health.components:
            healthy = 1.0 if component.state == health_pb2.HEALTH_STATE_OK else 0.0
            ok.add_metric([component.name], healthy)
            if component.name == TAG_INDEX_COMPONENT:
                families.append(
                    GaugeMetricFamily(
                        "qmtl_neo4j_tag_index_online",
                        "1 when the graph is migrated and its TAG index is ONLINE.",
                        value=healthy,
                    )
                )
        return families

    return read
