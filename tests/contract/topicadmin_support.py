"""The topic admins under contract.

Adding an adapter (Kafka, with the event-bus issue) is one entry in `TOPIC_ADMIN_ADAPTERS`
plus its branch in `open_topic_admin`. The suite is written for a shared broker: every test
names its topics under its own random prefix (`TopicNames`) and only looks at those; a broker
adapter's branch deletes whatever is left under the prefix afterwards. Specs use
replication factor 1 so a single-broker test cluster can hold them.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from qmtl.runtime.topicadmin import InMemoryTopicAdmin, TopicAdmin, TopicSpec

TOPIC_ADMIN_ADAPTERS = ["memory"]


@dataclass(frozen=True)
class TopicNames:
    """Topic names private to one test."""

    prefix: str

    def __call__(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def spec(self, name: str, *, partitions: int = 1, retention_ms: int = 60_000) -> TopicSpec:
        return TopicSpec(
            self(name), partitions, 1, retention_ms, {"retention.ms": str(retention_ms)}
        )

    def mine(self, names: Iterable[str]) -> set[str]:
        """The names among `names` that belong to this test."""
        return {name for name in names if name.startswith(self.prefix)}


@asynccontextmanager
async def open_topic_admin(adapter: str) -> AsyncIterator[tuple[TopicAdmin, TopicNames]]:
    names = TopicNames(f"contract-{uuid.uuid4().hex[:12]}.")
    if adapter == "memory":
        admin: TopicAdmin = InMemoryTopicAdmin()
    else:
        raise AssertionError(f"no topic admin adapter {adapter!r}")
    try:
        yield admin, names
    finally:
        await admin.aclose()
