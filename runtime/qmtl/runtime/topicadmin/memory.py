"""InMemoryTopicAdmin: topics as a dict, with failures on demand for testing callers.

Each call checks all of its input before changing anything and never awaits in between, so
under asyncio each call is atomic. `fail_next` makes the next calls raise TopicAdminError,
which is how tests reach a caller's broker-failure paths (GC's store-first ordering, the
diff's retry) without a broker. `brokers` pretends a cluster of that size, so replication is
clamped as a real one clamps it (None, the default: no clamping).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import InvalidTopicError, Operation, TopicAdminError, TopicConfigMismatchError
from .spec import TopicSpec
from .verify import check_matches, check_names, clamped_replication, effective_config, wanted_specs


@dataclass(slots=True)
class _Failure:
    remaining: int
    retryable: bool
    operation: Operation | None


class InMemoryTopicAdmin:
    def __init__(self, *, brokers: int | None = None) -> None:
        if brokers is not None and brokers < 1:
            raise InvalidTopicError(
                f"a cluster has at least 1 broker, got {brokers}",
                field="brokers",
                topic="",
                operation="connect",
            )
        self._brokers = brokers
        self._topics: dict[str, TopicSpec] = {}
        self._failure: _Failure | None = None
        self._closed = False

    def fail_next(
        self, n: int = 1, *, retryable: bool = True, operation: Operation | None = None
    ) -> None:
        """Makes the next `n` calls (of `operation` only, if given) raise TopicAdminError
        with that `retryable`, changing nothing. Input is still validated first. `n` <= 0
        cancels a pending injection."""
        self._failure = _Failure(n, retryable, operation) if n > 0 else None

    async def ensure_topics(self, specs: Sequence[TopicSpec]) -> list[str]:
        self._check_open("create")
        wanted = wanted_specs(specs)
        self._maybe_fail("create", list(wanted))
        created = [name for name in wanted if name not in self._topics]
        mismatch: TopicConfigMismatchError | None = None
        for name, spec in wanted.items():
            existing = self._topics.get(name)
            if existing is None:
                continue
            try:
                check_matches(spec, existing, effective_config(existing), brokers=self._brokers)
            except TopicConfigMismatchError as exc:
                mismatch = mismatch or exc
        for name in created:
            spec = wanted[name]
            replication = clamped_replication(spec.replication_factor, self._brokers)
            self._topics[name] = dataclasses.replace(spec, replication_factor=replication)
        if mismatch is not None:
            raise mismatch
        return created

    async def delete_topics(self, names: Sequence[str]) -> list[str]:
        self._check_open("delete")
        check_names(names, "delete")
        self._maybe_fail("delete", names)
        deleted: list[str] = []
        for name in names:
            if self._topics.pop(name, None) is not None:
                deleted.append(name)
        return deleted

    async def list_topics(self) -> dict[str, TopicSpec]:
        self._check_open("list")
        self._maybe_fail("list", ())
        return dict(self._topics)

    async def describe_topics(self, names: Sequence[str]) -> dict[str, TopicSpec]:
        self._check_open("describe")
        check_names(names, "describe")
        self._maybe_fail("describe", names)
        return {name: self._topics[name] for name in names if name in self._topics}

    async def aclose(self) -> None:
        self._closed = True

    def _check_open(self, operation: Operation) -> None:
        if self._closed:
            raise TopicAdminError("the topic admin is closed", operation=operation, retryable=False)

    def _maybe_fail(self, operation: Operation, topics: Sequence[str]) -> None:
        failure = self._failure
        if failure is None or (failure.operation not in (None, operation)):
            return
        failure.remaining -= 1
        if failure.remaining <= 0:
            self._failure = None
        raise TopicAdminError(
            f"injected broker failure on {operation}",
            operation=operation,
            topics=topics,
            retryable=failure.retryable,
        )
