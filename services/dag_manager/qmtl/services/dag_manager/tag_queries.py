"""Tag queries: which queues answer `(tags, interval, match_mode)` now, versioned across instances.

Every answer is hashed (its etag) and recorded in the graph store with `record_answer`, which
bumps the query's version only when the hash differs from the one stored. The version therefore
lives next to the graph, so every DAG Manager instance (and a restarted one) agrees on it, and
an unchanged answer keeps its version and raises no event. A new version's QueueUpdated is
written into the outbox by the same `record_answer` transaction (`announce=`), so the version
and its announcement cannot be separated by a crash; the relay publishes it
(docs/operations/outbox.md). Which queries are refreshed after a change, and what a consumer
may rely on, is in docs/operations/dag-manager.md.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence

from qmtl.dag.v1 import queue_pb2
from qmtl.events.v1 import event_pb2, queue_events_pb2
from qmtl.runtime.errors import QmtlError
from qmtl.runtime.graphstore import GraphStore, GraphStoreError, OutboxMessage, TaggedQueue

from .events import DEFAULT_SOURCE, make_event
from .relay import NoRelay, OutboxNotify, outbox_message
from .tag_query_rules import ANY, TagQueryKey, answer_etag, normalise_query
from .touched import Touched

QueueUpdated = queue_events_pb2.QueueUpdated

# Queries one instance remembers having resolved, for the refresh after a change (least
# recently resolved forgotten first). Bounds memory; only the best-effort part of the refresh
# depends on it, the single-tag announcements do not (see the docs).
MAX_TRACKED_QUERIES = 10_000
# Reads of one answer per resolve when the graph keeps changing under it (see `_record`).
MAX_RECORD_ATTEMPTS = 3


def descriptors(queues: Sequence[TaggedQueue]) -> list[queue_pb2.QueueDescriptor]:
    return [
        queue_pb2.QueueDescriptor(
            queue=q.topic,
            is_global=q.is_global,
            node_id=q.node_id,
            interval=q.interval,
            tags=sorted(q.tags),
        )
        for q in sorted(queues, key=lambda q: q.topic)
    ]


class TagQueryService:
    def __init__(
        self,
        store: GraphStore,
        relay: OutboxNotify | None = None,
        *,
        clock: Callable[[], float] = time.time,
        source: str = DEFAULT_SOURCE,
        max_tracked: int = MAX_TRACKED_QUERIES,
    ) -> None:
        self._store = store
        self._relay = relay if relay is not None else NoRelay()
        self._clock = clock
        self._source = source
        self._max_tracked = max_tracked
        self._tracked: OrderedDict[str, TagQueryKey] = OrderedDict()
        # Queries a refresh could not re-answer (the store failed); retried by the next one.
        self._stale: set[TagQueryKey] = set()

    @property
    def tracked(self) -> list[TagQueryKey]:
        return list(self._tracked.values())

    @property
    def stale(self) -> int:
        return len(self._stale)

    async def resolve(
        self, tags: Sequence[str], interval: int, match_mode: int, *, field_prefix: str = ""
    ) -> QueueUpdated:
        """The current answer of a query with its version; announces it if it is a new version.

        E_VALIDATION (with the field path) for a malformed query, the store's typed error
        (E_UNAVAILABLE, ...) if the graph cannot answer.
        """
        key = normalise_query(tags, interval, match_mode, field_prefix=field_prefix)
        self._track(key)
        update, changed = await self._record(key)
        if changed and announced(key):
            await self._relay.announced()
        return update

    async def answer(
        self, tags: Sequence[str], interval: int, match_mode: int, *, field_prefix: str = ""
    ) -> list[queue_pb2.QueueDescriptor]:
        """The current answer only, unversioned: a read, for GetQueuesByTag. The query is
        remembered for later refreshes like a resolved one."""
        key = normalise_query(tags, interval, match_mode, field_prefix=field_prefix)
        self._track(key)
        return descriptors(await self._lookup(key))

    def track(self, tags: Sequence[str], interval: int, match_mode: int) -> bool:
        """Remembers a query (e.g. a diffed DAG's tag-query node) for later refreshes; False,
        tracking nothing, if the query is malformed."""
        try:
            self._track(normalise_query(tags, interval, match_mode))
        except QmtlError:
            return False
        return True

    async def refresh(self, keys: Iterable[TagQueryKey]) -> list[QueueUpdated]:
        """Re-answers each query and announces those whose answer changed (in key order);
        returns the announced answers (any-interval queries are versioned, not announced).

        If the store fails, the queries not yet re-answered are kept and retried first by the
        next refresh, and the store's QmtlError is raised.
        """
        published: list[QueueUpdated] = []
        todo = sorted(set(keys) | self._stale, key=lambda k: k.store_key)
        self._stale.clear()
        for index, key in enumerate(todo):
            try:
                update, changed = await self._record(key)
            except QmtlError:
                self._stale.update(todo[index:])
                raise
            if changed and announced(key):
                published.append(update)
        if published:
            await self._relay.announced()
        return published

    async def refresh_touched(self, touched: Iterable[Touched]) -> list[QueueUpdated]:
        return await self.refresh(self.queries_touched(touched))

    def queries_touched(self, touched: Iterable[Touched]) -> set[TagQueryKey]:
        """The single-tag ANY query of every (tag, interval > 0) touched, plus every query this
        instance has resolved whose answer a touched node belongs to."""
        nodes = list(touched)
        keys: set[TagQueryKey] = set()
        for node in nodes:
            if node.interval > 0:
                keys.update(TagQueryKey((tag,), node.interval, ANY) for tag in set(node.tags))
        for key in self._tracked.values():
            if any(key.matches(node.tags, node.interval) for node in nodes):
                keys.add(key)
        return keys

    async def _record(self, key: TagQueryKey) -> tuple[QueueUpdated, bool]:
        """Reads the answer, records its etag, and re-reads after a bump until the answer
        recorded is still the one the graph gives.

        Why the re-read: two instances may read the answer before and after a change and
        record in the opposite order, which would leave the stale answer with the highest
        version. Whoever bumps the version checks the graph again and records once more if it
        moved, so the highest version is always an answer read after it was recorded.
        Every version handed out is announced with the answer it versions (a stale one is
        followed at once by its correction), so a consumer sees no gap in the versions.
        """
        changed_any = False
        queues = await self._lookup(key)
        for attempt in range(MAX_RECORD_ATTEMPTS):
            etag = answer_etag(queues)
            version, changed = await self._record_etag(key, etag, queues)
            changed_any = changed_any or changed
            if not changed or attempt == MAX_RECORD_ATTEMPTS - 1:
                break  # the answer returned is always the one just recorded
            again = await self._lookup(key)
            if answer_etag(again) == etag:
                break
            queues = again
        return self._update(key, queues, version), changed_any

    async def _lookup(self, key: TagQueryKey) -> list[TaggedQueue]:
        try:
            return await self._store.queues_by_tags(key.tags, key.interval, key.match_mode)
        except GraphStoreError as error:
            raise error.to_qmtl_error() from error

    async def _record_etag(
        self, key: TagQueryKey, etag: str, queues: Sequence[TaggedQueue]
    ) -> tuple[int, bool]:
        def announce(version: int) -> OutboxMessage:
            return outbox_message(self._event(key, self._update(key, queues, version)))

        try:
            return await self._store.record_answer(
                key.store_key, etag, announce=announce if announced(key) else None
            )
        except GraphStoreError as error:
            raise error.to_qmtl_error() from error

    def _update(
        self, key: TagQueryKey, queues: Sequence[TaggedQueue], version: int
    ) -> QueueUpdated:
        return QueueUpdated(
            tags=list(key.tags),
            interval=key.interval,
            queues=descriptors(queues),
            match_mode=key.match_mode,
            version=version,
            etag=key.etag(version),
        )

    def _event(self, key: TagQueryKey, update: QueueUpdated) -> event_pb2.Event:
        return make_event(
            "queue_updated",
            update,
            subject=key.subject,
            idempotency_key=key.idempotency_key(update.version),
            source=self._source,
            clock=self._clock,
        )

    def _track(self, key: TagQueryKey) -> None:
        self._tracked[key.store_key] = key
        self._tracked.move_to_end(key.store_key)
        while len(self._tracked) > self._max_tracked:
            self._tracked.popitem(last=False)


def announced(key: TagQueryKey) -> bool:
    """queue_events.proto: a published QueueUpdated has an interval of at least 1; an
    any-interval query is answered and versioned but not announced."""
    return key.interval > 0
