"""TagQueryService on the in-memory graph store: answers, normalisation, versions and events.

Version agreement between instances on the real Neo4j: tests/dag_manager/test_tag_queries_neo4j.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import pytest

from qmtl.common.v1 import match_mode_pb2
from qmtl.events.v1 import queue_events_pb2
from qmtl.runtime.errors import QmtlError
from qmtl.runtime.graphstore import (
    AnswerAnnouncement,
    GraphChanges,
    GraphStoreUnavailableError,
    InMemoryGraphStore,
    MatchMode,
    NodeWrite,
    TaggedQueue,
)
from qmtl.services.dag_manager.tag_queries import TagQueryService
from qmtl.services.dag_manager.tag_query_rules import MAX_QUERY_TAGS, TagQueryKey
from qmtl.services.dag_manager.touched import Touched
from tests.contract.graphstore_support import ManualClock, node

from .outbox_support import RecordingBus, RelayedEvents

ANY = match_mode_pb2.MATCH_MODE_ANY
ALL = match_mode_pb2.MATCH_MODE_ALL
UNSPECIFIED = match_mode_pb2.MATCH_MODE_UNSPECIFIED


async def add(store: InMemoryGraphStore, *nodes: NodeWrite) -> None:
    await store.apply(GraphChanges(nodes=nodes))


def topics(update: queue_events_pb2.QueueUpdated) -> list[str]:
    return [q.queue for q in update.queues]


def published(sink: RelayedEvents) -> list[queue_events_pb2.QueueUpdated]:
    return [e.queue_updated for e in sink.events]


@pytest.fixture
def store() -> InMemoryGraphStore:
    return InMemoryGraphStore(clock=ManualClock())


@pytest.fixture
def sink(store: InMemoryGraphStore) -> RelayedEvents:
    return RelayedEvents(store)


@pytest.fixture
def service(store: InMemoryGraphStore, sink: RelayedEvents) -> TagQueryService:
    return TagQueryService(store, sink, clock=lambda: 1_700_000_000.0)


# --- answers ------------------------------------------------------------------------------


async def test_any_matches_one_tag_all_needs_every_tag(
    store: InMemoryGraphStore, service: TagQueryService
) -> None:
    await add(
        store,
        node("both", tags=("btc", "price")),
        node("btc", tags=("btc",)),
        node("price", tags=("price",)),
        node("other", tags=("eth",)),
    )
    any_answer = await service.resolve(["price", "btc"], 60, ANY)
    all_answer = await service.resolve(["price", "btc"], 60, ALL)
    assert topics(any_answer) == ["asset_Node_both_v1", "asset_Node_btc_v1", "asset_Node_price_v1"]
    assert topics(all_answer) == ["asset_Node_both_v1"]
    [both] = all_answer.queues
    assert (both.node_id, both.interval, list(both.tags), both.is_global) == (
        "blake3:both",
        60,
        ["btc", "price"],
        False,
    )


async def test_interval_must_match_and_zero_means_any_interval(
    store: InMemoryGraphStore, service: TagQueryService
) -> None:
    await add(
        store, node("m1", tags=("btc",), interval=60), node("h1", tags=("btc",), interval=3600)
    )
    assert topics(await service.resolve(["btc"], 60, ANY)) == ["asset_Node_m1_v1"]
    assert topics(await service.resolve(["btc"], 3600, ANY)) == ["asset_Node_h1_v1"]
    assert topics(await service.resolve(["btc"], 0, ANY)) == [
        "asset_Node_h1_v1",
        "asset_Node_m1_v1",
    ]


async def test_tags_are_sorted_and_deduplicated_and_unspecified_is_any(
    store: InMemoryGraphStore, service: TagQueryService, sink: RelayedEvents
) -> None:
    await add(store, node("a", tags=("btc",)))
    first = await service.resolve(["price", "btc", "price"], 60, UNSPECIFIED)
    again = await service.resolve(["btc", "price"], 60, ANY)
    assert list(first.tags) == ["btc", "price"]
    assert first.match_mode == ANY
    assert (first.version, again.version) == (1, 1)
    assert first.etag == "q:btc.price:60:1"
    assert len(sink.events) == 1  # one query, one first version


async def test_an_empty_answer_is_an_answer(service: TagQueryService) -> None:
    update = await service.resolve(["nothing"], 60, ANY)
    assert (topics(update), update.version) == ([], 1)


# --- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tags", "interval", "mode", "field"),
    [
        ([], 60, ANY, "tags"),
        (["ok", "bad tag"], 60, ANY, "tags[1]"),
        (["x" * 101], 60, ANY, "tags[0]"),
        ([""], 60, ANY, "tags[0]"),
        (["ok"], -1, ANY, "interval"),
        (["ok"], 86_401, ANY, "interval"),
        (["ok"], 60, 7, "match_mode"),
        ([f"t{i}" for i in range(MAX_QUERY_TAGS + 1)], 60, ANY, "tags"),
    ],
)
async def test_a_malformed_query_is_a_validation_error_naming_the_field(
    service: TagQueryService,
    sink: RelayedEvents,
    tags: list[str],
    interval: int,
    mode: int,
    field: str,
) -> None:
    with pytest.raises(QmtlError) as caught:
        await service.resolve(tags, interval, mode)
    assert caught.value.wire_code == "E_VALIDATION"
    assert caught.value.details["field"] == field
    assert sink.events == []


async def test_field_paths_can_be_placed_inside_the_callers_message(
    service: TagQueryService,
) -> None:
    with pytest.raises(QmtlError) as caught:
        await service.resolve(["a", "b!"], 60, ANY, field_prefix="dag.nodes[2].spec.tag_query.")
    assert caught.value.details["field"] == "dag.nodes[2].spec.tag_query.tags[1]"


async def test_the_longest_tag_and_interval_are_accepted(service: TagQueryService) -> None:
    update = await service.resolve(["x" * 100, "a-b_c.D9"], 86_400, ALL)
    assert update.version == 1


# --- versions and events ------------------------------------------------------------------


async def test_version_goes_up_only_when_the_answer_changes(
    store: InMemoryGraphStore, service: TagQueryService, sink: RelayedEvents
) -> None:
    await add(store, node("a", tags=("btc",)))
    v1 = await service.resolve(["btc"], 60, ANY)
    same = await service.resolve(["btc"], 60, ANY)
    await add(store, node("b", tags=("btc",)))
    v2 = await service.resolve(["btc"], 60, ANY)
    await add(store, node("c", tags=("eth",)))  # not in this answer
    still = await service.resolve(["btc"], 60, ANY)
    assert [u.version for u in (v1, same, v2, still)] == [1, 1, 2, 2]
    assert [u.etag for u in (v1, v2)] == ["q:btc:60:1", "q:btc:60:2"]
    assert [u.version for u in published(sink)] == [1, 2]
    assert topics(published(sink)[-1]) == ["asset_Node_a_v1", "asset_Node_b_v1"]


async def test_the_event_envelope_names_the_query(
    store: InMemoryGraphStore, sink: RelayedEvents
) -> None:
    service = TagQueryService(
        store, sink, clock=lambda: 1_700_000_000.5, source="qmtl/dag-manager/dm-1"
    )
    await add(store, node("a", tags=("btc", "price")))
    await service.resolve(["price", "btc"], 60, ALL)
    [event] = sink.events
    assert event.type == "qmtl.dag.queue_updated"
    assert event.subject == "tags/btc.price/60"
    assert event.idempotency_key == "queue_updated:btc,price:60:all:1"
    assert event.source == "qmtl/dag-manager/dm-1"
    assert (event.time.seconds, event.time.nanos) == (1_700_000_000, 500_000_000)
    assert event.queue_updated.match_mode == ALL


async def test_a_dotted_tag_and_two_tags_are_different_queries(
    store: InMemoryGraphStore, service: TagQueryService, sink: RelayedEvents
) -> None:
    # Both spell `a.b` in the subject and the etag, but must not share a version or a
    # deduplication key: a consumer would drop one of them as a duplicate.
    await add(store, node("dotted", tags=("a.b",)), node("split", tags=("a",)))
    dotted = await service.resolve(["a.b"], 60, ANY)
    split = await service.resolve(["a", "b"], 60, ANY)
    await add(store, node("more", tags=("a",)))
    split2 = await service.resolve(["a", "b"], 60, ANY)
    assert (dotted.version, split.version, split2.version) == (1, 1, 2)
    keys = [e.idempotency_key for e in sink.events]
    assert len(set(keys)) == 3
    assert (await service.resolve(["a.b"], 60, ANY)).version == 1


async def test_an_any_interval_query_is_versioned_but_not_announced(
    store: InMemoryGraphStore, service: TagQueryService, sink: RelayedEvents
) -> None:
    # queue_events.proto: a published QueueUpdated has an interval of at least 1.
    await add(store, node("a", tags=("btc",)))
    update = await service.resolve(["btc"], 0, ANY)
    assert (update.version, topics(update)) == (1, ["asset_Node_a_v1"])
    assert sink.events == []


async def test_two_services_on_one_store_agree_and_announce_each_version_once(
    store: InMemoryGraphStore, sink: RelayedEvents
) -> None:
    first = TagQueryService(store, sink)
    second = TagQueryService(store, sink)
    await add(store, node("a", tags=("btc",)))
    assert (await first.resolve(["btc"], 60, ANY)).version == 1
    assert (await second.resolve(["btc"], 60, ANY)).version == 1
    await add(store, node("b", tags=("btc",)))
    assert (await second.resolve(["btc"], 60, ANY)).version == 2
    assert (await first.resolve(["btc"], 60, ANY)).version == 2
    assert [u.version for u in published(sink)] == [1, 2]


# --- refresh ------------------------------------------------------------------------------


async def test_refresh_publishes_only_the_answers_that_changed(
    store: InMemoryGraphStore, service: TagQueryService, sink: RelayedEvents
) -> None:
    await add(store, node("a", tags=("btc",)), node("e", tags=("eth",)))
    btc, eth = TagQueryKey(("btc",), 60, ANY), TagQueryKey(("eth",), 60, ANY)
    assert [u.version for u in await service.refresh([btc, eth])] == [1, 1]
    await add(store, node("b", tags=("btc",)))
    changed = await service.refresh([btc, eth])
    assert [(list(u.tags), u.version) for u in changed] == [(["btc"], 2)]
    assert await service.refresh([btc, eth]) == []
    assert len(sink.events) == 3


async def test_touched_nodes_refresh_each_single_tag_query_of_their_interval(
    service: TagQueryService,
) -> None:
    keys = service.queries_touched(
        [Touched(("btc", "price"), 60), Touched(("btc",), 60), Touched(("x",), 0)]
    )
    assert keys == {TagQueryKey(("btc",), 60, ANY), TagQueryKey(("price",), 60, ANY)}


async def test_touched_nodes_refresh_the_multi_tag_queries_they_belong_to(
    service: TagQueryService,
) -> None:
    both_all = TagQueryKey(("btc", "price"), 60, ALL)
    both_any = TagQueryKey(("btc", "price"), 60, ANY)
    other_interval = TagQueryKey(("btc", "price"), 3600, ANY)
    any_interval = TagQueryKey(("btc", "vol"), 0, ALL)
    for key in (both_all, both_any, other_interval, any_interval):
        assert service.track(key.tags, key.interval, key.match_mode)
    assert not service.track(["bad tag"], 60, ANY)

    only_btc = service.queries_touched([Touched(("btc",), 60)])
    assert both_any in only_btc
    assert both_all not in only_btc
    assert other_interval not in only_btc
    assert any_interval not in only_btc
    assert both_all in service.queries_touched([Touched(("price", "btc"), 60)])
    assert any_interval in service.queries_touched([Touched(("vol", "btc"), 300)])


async def test_tracking_forgets_the_least_recently_resolved_query_first(
    store: InMemoryGraphStore, sink: RelayedEvents
) -> None:
    service = TagQueryService(store, sink, max_tracked=2)
    await service.resolve(["a", "b"], 60, ALL)
    await service.resolve(["c", "d"], 60, ALL)
    await service.resolve(["a", "b"], 60, ALL)  # used again: now the most recent
    await service.resolve(["e", "f"], 60, ALL)
    assert [k.tags for k in service.tracked] == [("a", "b"), ("e", "f")]


# --- failures -----------------------------------------------------------------------------


async def test_an_event_the_bus_refused_stays_in_the_outbox_until_the_relay_sends_it(
    store: InMemoryGraphStore,
) -> None:
    sink = RelayedEvents(store, RecordingBus(failures=1))
    service = TagQueryService(store, sink)
    await add(store, node("a", tags=("btc",)))
    key = TagQueryKey(("btc",), 60, ANY)
    sent = await service.refresh([key])  # recorded as v1 with its event; the relay failed
    assert [u.version for u in sent] == [1]
    assert sink.events == []
    assert len(await store.outbox_pending()) == 1
    assert await service.refresh([key]) == []  # answer unchanged: nothing new to announce
    assert await sink.drain() == 1
    assert [e.idempotency_key for e in sink.events] == ["queue_updated:btc:60:any:1"]
    assert await store.outbox_pending() == []


async def test_versions_the_bus_refused_go_out_in_order_once_it_is_back(
    store: InMemoryGraphStore,
) -> None:
    sink = RelayedEvents(store, RecordingBus(failures=2))
    service = TagQueryService(store, sink)
    key = TagQueryKey(("btc",), 60, ANY)
    await add(store, node("a", tags=("btc",)))
    await service.refresh([key])  # v1 kept in the outbox
    await add(store, node("b", tags=("btc",)))
    await service.refresh([key])  # v2 kept too
    assert sink.events == []
    await service.resolve(["btc"], 60, ANY)  # unchanged: no announcement, nothing relayed
    assert sink.events == []
    assert await sink.drain() == 2
    assert [e.queue_updated.version for e in sink.events] == [1, 2]
    assert [topics(e.queue_updated) for e in sink.events] == [
        ["asset_Node_a_v1"],
        ["asset_Node_a_v1", "asset_Node_b_v1"],
    ]


async def test_a_crash_after_the_record_leaves_its_event_for_the_next_relay(
    store: InMemoryGraphStore,
) -> None:
    # No relay at all (the instance died right after the record): the event is in the store.
    service = TagQueryService(store)
    await add(store, node("a", tags=("btc",)))
    update = await service.resolve(["btc"], 60, ANY)
    restarted = RelayedEvents(store)
    assert await restarted.drain() == 1
    [event] = restarted.events
    assert event.queue_updated == update
    assert await restarted.drain() == 0


class FailingStore(InMemoryGraphStore):
    """Answers lookups until `down` is set, then raises the store's unavailable error."""

    down = False

    async def queues_by_tags(
        self, tags: Sequence[str], interval: int, match_mode: MatchMode
    ) -> list[TaggedQueue]:
        if self.down:
            raise GraphStoreUnavailableError("neo4j unreachable")
        return await super().queues_by_tags(tags, interval, match_mode)


async def test_queries_a_failed_refresh_could_not_answer_are_retried_next_time() -> None:
    store = FailingStore(clock=ManualClock())
    sink = RelayedEvents(store)
    service = TagQueryService(store, sink)
    await add(store, node("a", tags=("btc",)), node("e", tags=("eth",)))
    store.down = True
    with pytest.raises(QmtlError) as caught:
        await service.refresh_touched([Touched(("btc", "eth"), 60)])
    assert caught.value.wire_code == "E_UNAVAILABLE"
    assert service.stale == 2
    store.down = False
    sent = await service.refresh([])
    assert sorted(tuple(u.tags) for u in sent) == [("btc",), ("eth",)]
    assert service.stale == 0


class HookedStore(InMemoryGraphStore):
    """Runs `hook` once, just before the next record_answer: a change and another instance's
    refresh landing between this instance's read of an answer and its record of it."""

    hook: Callable[[], Awaitable[None]] | None = None

    async def record_answer(
        self, key: str, etag: str, *, announce: AnswerAnnouncement | None = None
    ) -> tuple[int, bool]:
        hook, self.hook = self.hook, None
        if hook is not None:
            await hook()
        return await super().record_answer(key, etag, announce=announce)


async def test_a_stale_answer_recorded_last_is_corrected_before_it_is_announced() -> None:
    store = HookedStore(clock=ManualClock())
    sink = RelayedEvents(store)
    slow, fast = TagQueryService(store, sink), TagQueryService(store, sink)
    key = TagQueryKey(("btc",), 60, ANY)
    await add(store, node("a", tags=("btc",)))
    await slow.refresh([key])  # v1: [a]

    async def change_and_refresh_elsewhere() -> None:
        await add(store, node("b", tags=("btc",)))
        await fast.refresh([key])  # v2: [a, b]

    store.hook = change_and_refresh_elsewhere
    await slow.refresh([key])  # read [a] before the change, records it after v2
    latest = max(published(sink), key=lambda u: u.version)
    assert topics(latest) == ["asset_Node_a_v1", "asset_Node_b_v1"]
    # Every version handed out is announced (the stale v3 too, corrected at once by v4).
    assert sorted(u.version for u in published(sink)) == [1, 2, 3, 4]
    assert (await slow.resolve(["btc"], 60, ANY)).version == latest.version
