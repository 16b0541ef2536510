"""InMemoryTopicAdmin: topics as a dict, with failures on demand for testing callers.

Each call checks all of its input before changing anything and never awaits in between, so
under asyncio each call is atomic. `fail_next` makes the next calls raise TopicAdminError,
which is how tests reach a caller's broker-failure paths (GC's store-first ordering, the
diff's retry) without a broker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .errors import InvalidTopicError, Operation, TopicAdminError
from .spec import TopicSpec, check_topic_name, check_topic_spec


@dataclass(slots=True)
class _Failure:
    remaining: int
    retryable: bool
    operation: Operation | None


class InMemoryTopicAdmin:
    def __init__(self) -> None:
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
        wanted: dict[str, TopicSpec] = {}
        for index, spec in enumerate(specs):
            check_topic_spec(spec, field_path=f"specs[{index}]")
            earlier = wanted.setdefault(spec.name, spec)
            if earlier != spec:
                raise InvalidTopicError(
                    f"topic {spec.name!r} is given twice with different specs",
                    field=f"specs[{index}]",
                    topic=spec.name,
                )
        self._maybe_fail("create", list(wanted))
        created = [name for name in wanted if name not in self._topics]
        for name in created:
            self._topics[name] = wanted[name]
        return created

    async def delete_topics(self, names: Sequence[str]) -> list[str]:
        self._check_open("delete")
        for index, name in enumerate(names):
            try:
                check_topic_name(name, field_path=f"names[{index}]")
            except InvalidTopicError as exc:
                raise InvalidTopicError(
                    exc.message, field=exc.field, topic=name, operation="delete"
                ) from None
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
