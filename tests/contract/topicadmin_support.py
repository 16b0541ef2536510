"""The topic admins under contract.

Adding an adapter is one entry in `TOPIC_ADMIN_ADAPTERS` plus its branch in
`open_topic_admin`. The suite is written for a shared broker: every test names its topics
under its own random prefix (`TopicNames`) and only looks at those; the Kafka branch deletes
whatever is left under the prefix afterwards. Specs use replication factor 1 so a
single-broker test cluster can hold them, and name their cleanup policy, so both adapters
list exactly the spec that was ensured.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from qmtl.runtime.endpoints import ServiceEndpoints
from qmtl.runtime.topicadmin import InMemoryTopicAdmin, TopicAdmin, TopicSpec
from qmtl.runtime.topicadmin.kafka import KafkaTopicAdmin, RetryPolicy

TOPIC_ADMIN_ADAPTERS = ["memory", "kafka"]

# The shared test broker is a single node; the in-memory admin pretends the same cluster.
CONTRACT_BROKERS = 1

# Short waits: a contract test that needs retries against a healthy broker should fail fast.
CONTRACT_RETRY = RetryPolicy(attempts=5, initial_backoff=0.05, max_backoff=0.5)


@dataclass(frozen=True)
class TopicNames:
    """Topic names private to one test."""

    prefix: str

    def __call__(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def spec(
        self,
        name: str,
        *,
        partitions: int = 1,
        retention_ms: int = 60_000,
        cleanup: str = "delete",
        replication: int = 1,
    ) -> TopicSpec:
        config = {"retention.ms": str(retention_ms), "cleanup.policy": cleanup}
        return TopicSpec(self(name), partitions, replication, retention_ms, config)

    def mine(self, names: Iterable[str]) -> set[str]:
        """The names among `names` that belong to this test."""
        return {name for name in names if name.startswith(self.prefix)}


async def connect_kafka(bootstrap: str | None = None, *, client_id: str) -> KafkaTopicAdmin:
    address = bootstrap or ServiceEndpoints.from_env().kafka_bootstrap
    return await KafkaTopicAdmin.connect(address, client_id=client_id, retry=CONTRACT_RETRY)


async def delete_mine(admin: TopicAdmin, names: TopicNames) -> None:
    """Deletes every topic under the test's prefix (the cleanup of a shared broker)."""
    leftovers = names.mine(await admin.list_topics())
    if leftovers:
        await admin.delete_topics(sorted(leftovers))


@asynccontextmanager
async def open_topic_admin(adapter: str) -> AsyncIterator[tuple[TopicAdmin, TopicNames]]:
    names = TopicNames(f"contract-{uuid.uuid4().hex[:12]}.")
    admin: TopicAdmin
    if adapter == "memory":
        admin = InMemoryTopicAdmin(brokers=CONTRACT_BROKERS)
    elif adapter == "kafka":
        admin = await connect_kafka(client_id="topicadmin-contract")
    else:
        raise AssertionError(f"no topic admin adapter {adapter!r}")
    try:
        yield admin, names
    finally:
        try:
            if adapter == "kafka":
                await delete_mine(admin, names)
        finally:
            await admin.aclose()
