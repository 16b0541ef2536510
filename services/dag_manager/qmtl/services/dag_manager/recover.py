"""The DAG Manager's `initialize_and_recover()` and its clean shutdown (docs/operations/boot.md).

The steps, in order, each logged with its duration and retried until it succeeds:
connect the graph store, the topic admin and the event bus; check the graph schema (a
warning and a DEGRADED component when behind, as boot.py does); ensure the event topics
exist; drain the outbox; write the clean-shutdown marker (one was there: the last run
crashed); publish ServiceRestarted. Then the relay runs in the background and the rpcs open.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from qmtl.events.v1 import event_pb2
from qmtl.runtime.alerts.model import (
    BOOT_CHECK_WARNING,
    FIRING,
    RESOLVED,
    WARNING,
    alert_event,
    raise_alert,
)
from qmtl.runtime.boot import (
    Backend,
    BootStep,
    MemoryMarker,
    ShutdownMarker,
    relayed_check,
)
from qmtl.runtime.eventbus import OPS_EVENTS, EventBus, event_topic_specs
from qmtl.runtime.graphstore import GraphStore
from qmtl.runtime.health import Degraded, HealthReporter
from qmtl.runtime.restart import Restart
from qmtl.runtime.topicadmin import TopicAdmin

from .boot import GraphSchemaCheck, check_graph_schema
from .config import SERVICE, DagManagerConfig

if TYPE_CHECKING:
    from neo4j import AsyncDriver

    from qmtl.runtime.graph_migrations import GraphNames

_log = logging.getLogger("qmtl.services.dag_manager.boot")


class Neo4jMarker:
    """The clean-shutdown marker as one `<prefix>ServiceMarker` node per service instance."""

    def __init__(self, driver: AsyncDriver, names: GraphNames, *, database: str | None = None):
        self._driver, self._database = driver, database
        self.label = names.service_marker

    async def mark_running(self, instance_id: str, *, started_at: float) -> bool:
        records, _, _ = await self._driver.execute_query(
            f"OPTIONAL MATCH (old:{self.label} {{service: $service, instance_id: $id}}) "
            "WITH count(old) > 0 AS crashed "
            f"MERGE (m:{self.label} {{service: $service, instance_id: $id}}) "
            "SET m.started_at = $started_at RETURN crashed",
            service=SERVICE,
            id=instance_id,
            started_at=started_at,
            database_=self._database,
        )
        return bool(records[0]["crashed"])

    async def clear(self, instance_id: str) -> None:
        await self._driver.execute_query(
            f"MATCH (m:{self.label} {{service: $service, instance_id: $id}}) DELETE m",
            service=SERVICE,
            id=instance_id,
            database_=self._database,
        )


@dataclass
class DagManagerBackends:
    """What the boot connects; the handler is built over it once every step has run."""

    store: Backend[GraphStore]
    topics: Backend[TopicAdmin]
    bus: Backend[EventBus]
    marker: Callable[[], ShutdownMarker]
    driver: Backend[AsyncDriver] | None = None  # the real backend's Neo4j driver


def memory_backends() -> DagManagerBackends:
    from qmtl.runtime.eventbus import InMemoryEventBus
    from qmtl.runtime.graphstore import InMemoryGraphStore
    from qmtl.runtime.topicadmin import InMemoryTopicAdmin

    async def store() -> GraphStore:
        return InMemoryGraphStore()

    async def topics() -> TopicAdmin:
        return InMemoryTopicAdmin()

    async def bus() -> EventBus:
        return InMemoryEventBus()

    marker = MemoryMarker()
    return DagManagerBackends(
        store=Backend("graph_store", "memory", store),
        topics=Backend("topic_admin", "memory", topics),
        bus=Backend("event_bus", "memory", bus),
        marker=lambda: marker,
    )


def real_backends(config: DagManagerConfig, *, client_id: str) -> DagManagerBackends:
    from neo4j import AsyncGraphDatabase

    from qmtl.runtime.eventbus.kafka import KafkaEventBus
    from qmtl.runtime.graphstore.neo4j import Neo4jGraphStore
    from qmtl.runtime.topicadmin.kafka import KafkaTopicAdmin

    names = config.graph_names

    async def open_driver() -> AsyncDriver:
        driver = AsyncGraphDatabase.driver(
            config.neo4j_uri,
            auth=(config.neo4j_user, config.neo4j_password),
            connection_timeout=5.0,
        )
        try:
            await driver.verify_connectivity()
        except BaseException:
            await driver.close()
            raise
        return driver

    async def ping_driver(driver: AsyncDriver) -> None:
        await driver.verify_connectivity()

    driver = Backend("neo4j", "neo4j", open_driver, ping=ping_driver)

    async def store() -> GraphStore:
        return Neo4jGraphStore(await driver.connect(), names=names)

    async def ping_store(_: GraphStore) -> None:
        await driver.check()

    async def topics() -> TopicAdmin:
        return await KafkaTopicAdmin.connect(config.kafka_bootstrap, client_id=client_id)

    async def ping_topics(admin: TopicAdmin) -> None:
        await admin.describe_topics([OPS_EVENTS])

    async def bus() -> EventBus:
        return await KafkaEventBus.connect(config.kafka_bootstrap, client_id=client_id)

    return DagManagerBackends(
        store=Backend("graph_store", "neo4j", store, ping=ping_store),
        topics=Backend("topic_admin", "kafka", topics, ping=ping_topics),
        bus=Backend("event_bus", "kafka", bus),
        marker=lambda: Neo4jMarker(driver.value, names),
        driver=driver,
    )


def boot_steps(
    config: DagManagerConfig,
    backends: DagManagerBackends,
    health: HealthReporter,
    state: Restart,
) -> list[BootStep]:
    """The DAG Manager's initialize_and_recover(), as the ordered steps run_boot runs."""
    for backend in (backends.store, backends.topics):
        health.add_check(backend.name, backend.check, adapter=backend.adapter)
    health.add_check(
        backends.bus.name, relayed_check(backends.bus, state), adapter=backends.bus.adapter
    )

    async def schema() -> None:
        if backends.driver is None:
            return  # the in-memory graph has no schema to migrate
        check = await check_graph_schema(
            backends.driver.value, names=config.graph_names, uri=config.neo4j_uri, logger=_log
        )
        detail = check.component.detail

        async def reported() -> None:
            if not check.ok:
                raise Degraded(detail)

        health.add_check(check.component.name, reported, required=False, adapter="neo4j")
        await raise_alert(backends.bus.value, schema_alert(config, state, check))

    async def event_topics() -> None:
        specs = event_topic_specs(replication=config.kafka_replication)
        created = await backends.topics.value.ensure_topics(specs)
        state.repaired_resources = len(created)

    steps = [b.step() for b in (backends.store, backends.topics, backends.bus)]
    return [
        *steps,
        BootStep("check graph schema", schema),
        BootStep("ensure event topics", event_topics),
        state.drain_step(lambda: backends.store.value, backends.bus),
        state.marker_step(backends.marker),
        state.announce_step(backends.bus),
    ]


def schema_alert(
    config: DagManagerConfig, state: Restart, check: GraphSchemaCheck
) -> event_pb2.Event:
    """BootCheckWarning for a graph schema behind (FIRING), or its RESOLVED once a boot finds
    it current (dropped by the dispatcher when nothing fired). Keyed by the graph, not the
    instance: every instance of one graph warns about the same thing."""
    graph = config.graph_prefix or "(default)"
    name = check.component.name
    firing = not check.ok
    return alert_event(
        BOOT_CHECK_WARNING,
        level=WARNING,
        state=FIRING if firing else RESOLVED,
        service=state.service,
        instance_id=state.instance_id,
        target_id=name,
        message=(
            f"graph schema check failed at boot: {check.reason}"
            + (f"; run `{check.command}`" if check.command else "")
            if firing
            else "graph schema check passed at boot"
        ),
        source=state.source,
        dedupe_key=f"{BOOT_CHECK_WARNING}:{state.service}:{name}:{graph}",
        idempotency_key=(
            f"boot_check:{state.instance_id}:{name}:{state.started_at:.6f}:"
            f"{'firing' if firing else 'resolved'}"
        ),
        attributes={"check": name, "graph_prefix": config.graph_prefix, "command": check.command},
        clock=state.clock,
    )


async def shut_down(backends: DagManagerBackends, state: Restart) -> None:
    """Clean shutdown: stop the relay, remove the marker, close the backends. Each part is
    tried on its own: a backend that fails to close must not keep the marker in place."""
    await state.wind_down(backends.marker)
    for backend in (backends.bus, backends.topics, backends.store):
        value = backend.take()
        if value is not None:
            try:
                await value.aclose()
            except Exception:
                _log.warning("closing %s failed", backend.name, exc_info=True)
    if backends.driver is not None:
        driver = backends.driver.take()
        if driver is not None:
            await driver.close()
