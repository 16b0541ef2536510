"""The TopicAdmin port: what the DAG Manager needs from the message broker's admin API.

Adapters: `InMemoryTopicAdmin` (embedded default and tests) and, with the event-bus issue, a
Kafka one; tests/contract/test_topicadmin_contract.py holds each to the same behaviour.

Guarantees every adapter keeps:
- names are checked against Kafka's rule before anything is sent (InvalidTopicError, nothing
  created or deleted);
- `ensure_topics` is idempotent: a topic that already exists counts as done and is left as it
  is (its partitions are never changed), so a retry after a partial failure is safe;
- `delete_topics` ignores unknown topics, so repeating a delete that half-failed is safe;
- broker failures raise TopicAdminError with `retryable` set when a later call may succeed.
See docs/operations/gc.md for how GC uses it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from .spec import TopicSpec


class TopicAdmin(Protocol):
    async def ensure_topics(self, specs: Sequence[TopicSpec]) -> list[str]:
        """Creates each spec's topic unless it exists; returns the names created, in the order
        given. The same name twice with different specs is an InvalidTopicError."""
        ...

    async def delete_topics(self, names: Sequence[str]) -> list[str]:
        """Deletes each existing topic; returns the names deleted, in the order given.
        Unknown names are ignored."""
        ...

    async def list_topics(self) -> dict[str, TopicSpec]:
        """Every topic, by name, with the spec it was created with."""
        ...

    async def aclose(self) -> None: ...
