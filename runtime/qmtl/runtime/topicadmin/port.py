"""The TopicAdmin port: what the DAG Manager needs from the message broker's admin API.

Adapters: `InMemoryTopicAdmin` (embedded default and tests) and `KafkaTopicAdmin`;
tests/contract/test_topicadmin_contract.py holds each to the same behaviour.

Guarantees every adapter keeps:
- names are checked against Kafka's rule before anything is sent (InvalidTopicError, nothing
  created or deleted);
- `ensure_topics` is idempotent: a topic that already exists counts as done when it matches
  the spec (partitions, replication clamped to the cluster, every broker setting the spec
  names) and is never changed; one that does not match is a TopicConfigMismatchError naming
  both, so a retry after a partial failure is safe and a stale topic is never reused silently;
- replication is clamped to the cluster's size: a spec asking for 3 replicas on one broker
  gets 1, and that difference is not a mismatch;
- `delete_topics` ignores unknown topics, so repeating a delete that half-failed is safe;
- listing and describing show what the broker holds: partitions, replication (clamped),
  `retention.ms` and `cleanup.policy`. The `qmtl.*` metadata keys are never sent to a broker:
  Kafka lists neither them nor unset settings other than those two (it fills in its default
  cleanup policy); the in-memory adapter lists the spec as created, `qmtl.*` keys included;
- broker failures raise TopicAdminError with `retryable` set when a later call may succeed.
See docs/operations/topics.md for the settings and docs/operations/gc.md for how GC uses it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from .spec import TopicSpec


class TopicAdmin(Protocol):
    async def ensure_topics(self, specs: Sequence[TopicSpec]) -> list[str]:
        """Creates each spec's topic unless it exists; returns the names created, in the order
        given. The same name twice with different specs is an InvalidTopicError; an existing
        topic with other settings is a TopicConfigMismatchError (the others are still made)."""
        ...

    async def delete_topics(self, names: Sequence[str]) -> list[str]:
        """Deletes each existing topic; returns the names deleted, in the order given.
        Unknown names are ignored."""
        ...

    async def list_topics(self) -> dict[str, TopicSpec]:
        """Every topic, by name, as the broker holds it."""
        ...

    async def describe_topics(self, names: Sequence[str]) -> dict[str, TopicSpec]:
        """The named topics that exist, as the broker holds them; unknown names are left out."""
        ...

    async def aclose(self) -> None: ...
