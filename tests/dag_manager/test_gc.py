"""GC sweeps against the in-memory graph store, topic admin and event sink, on a manual clock.

Orphan ages count from when a node became an orphan (docs/operations/gc.md), so "advance" here
is time spent unreferenced.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import pytest

from qmtl.dag.v1 import queue_lifecycle_pb2
from qmtl.dagmanager.v1 import gc_messages_pb2
from qmtl.runtime.errors import ErrorCode, QmtlError
from qmtl.runtime.graphstore import MAX_BATCH, DeleteAnnouncements, InMemoryGraphStore
from qmtl.runtime.topicadmin import InMemoryTopicAdmin
from qmtl.services.dag_manager.gc import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_POLICIES,
    MAX_GC_BATCH,
    GarbageCollector,
    GcConfigError,
    GcPolicy,
)
from tests.contract.graphstore_support import ManualClock

from .gc_support import DAY, GcWorld, make_world

DROP = queue_lifecycle_pb2.QUEUE_LIFECYCLE_ACTION_DROP
ARCHIVE = queue_lifecycle_pb2.QUEUE_LIFECYCLE_ACTION_ARCHIVE
MISSING_CLIENT = queue_lifecycle_pb2.ARCHIVE_STATUS_MISSING_CLIENT
ARCHIVED = queue_lifecycle_pb2.ARCHIVE_STATUS_ARCHIVED
NOT_ARCHIVED = queue_lifecycle_pb2.ARCHIVE_STATUS_UNSPECIFIED
WITHIN_GRACE = gc_messages_pb2.GC_SKIP_REASON_WITHIN_GRACE
UNKNOWN_POLICY = gc_messages_pb2.GC_SKIP_REASON_UNKNOWN_POLICY
ARCHIVE_FAILED = gc_messages_pb2.GC_SKIP_REASON_ARCHIVE_FAILED

INDICATOR_AFTER = 33 * DAY  # 30 d TTL + 3 d grace


@pytest.fixture
async def world() -> AsyncIterator[GcWorld]:
    world = make_world()
    yield world
    await world.store.aclose()


def processed(report: gc_messages_pb2.GcReport) -> list[str]:
    return [item.queue for item in report.processed]


def skipped(report: gc_messages_pb2.GcReport) -> list[tuple[str, int]]:
    return [(item.queue, item.reason) for item in report.skipped]


# --- what is collected, and when ----------------------------------------------------------


async def test_an_orphan_past_ttl_and_grace_is_dropped_from_graph_and_broker(
    world: GcWorld,
) -> None:
    topic = await world.add("a", tags=("btc", "price"), interval=60)
    world.clock.advance(INDICATOR_AFTER)

    outcome = await world.gc.sweep(correlation_id="req-1")

    report = outcome.report
    assert (report.observed, report.candidates) == (1, 1)
    assert processed(report) == [topic]
    item = report.processed[0]
    assert (item.gc_tag, item.action, item.archive_status) == ("indicator", DROP, NOT_ARCHIVED)
    assert item.age.ToSeconds() == INDICATOR_AFTER
    assert (report.actions.drop, report.actions.archive, report.actions.skip) == (1, 0, 0)
    assert report.by_tag["indicator"].drop == 1
    assert not report.dry_run
    assert not await world.in_store(topic)
    assert not await world.in_broker(topic)
    assert outcome.broker_error is None
    assert outcome.broker_pending == ()
    assert [(q.topic, q.tags, q.interval) for q in outcome.dropped] == [
        (topic, ("btc", "price"), 60)
    ]
    assert outcome.affected_tag_intervals == [("btc", 60), ("price", 60)]


async def test_each_dropped_queue_publishes_one_queue_lifecycle(world: GcWorld) -> None:
    topic = await world.add("a", interval=300)
    world.clock.advance(INDICATOR_AFTER)

    await world.gc.sweep(correlation_id="req-1")

    [event] = world.events.events
    assert event.type == "qmtl.dag.queue_lifecycle"
    assert event.subject == f"queues/{topic}"
    assert event.correlation_id == "req-1"
    assert event.idempotency_key.startswith(f"queue_lifecycle:{topic}:")
    assert event.time.ToSeconds() == int(world.clock.now)
    lifecycle = event.queue_lifecycle
    assert lifecycle.queue == topic
    assert lifecycle.action == DROP
    assert lifecycle.reason == "orphan_ttl_expired"
    assert lifecycle.gc_tag == "indicator"
    assert lifecycle.interval == 300
    assert lifecycle.version == 1
    assert lifecycle.etag == f"ql:{topic}:drop:orphan_ttl_expired:1"


async def test_an_orphan_within_grace_is_skipped_and_kept(world: GcWorld) -> None:
    topic = await world.add("a")
    world.clock.advance(INDICATOR_AFTER - 1)

    report = (await world.gc.sweep()).report

    assert (report.observed, report.candidates) == (1, 0)
    assert processed(report) == []
    assert skipped(report) == [(topic, WITHIN_GRACE)]
    assert report.skipped[0].gc_tag == "indicator"
    assert report.skipped[0].age.ToSeconds() == INDICATOR_AFTER - 1
    assert (report.actions.skip, report.by_tag["indicator"].skip) == (1, 1)
    assert await world.in_store(topic)
    assert await world.in_broker(topic)
    assert world.events.events == []


@pytest.mark.parametrize(
    ("node_type", "gc_tag", "days"),
    [("RawTicks", "raw", 8), ("Node", "indicator", 33), ("VersionSentinel", "sentinel", 210)],
)
async def test_each_gc_tag_has_its_ttl_plus_grace(
    world: GcWorld, node_type: str, gc_tag: str, days: int
) -> None:
    topic = await world.add("a", node_type=node_type)
    world.clock.advance(days * DAY - 1)
    assert skipped((await world.gc.sweep()).report) == [(topic, WITHIN_GRACE)]

    world.clock.advance(1)
    report = (await world.gc.sweep()).report

    assert processed(report) == [topic]
    assert report.processed[0].gc_tag == gc_tag
    assert not await world.in_store(topic)
    assert not await world.in_broker(topic)


async def test_age_counts_from_becoming_an_orphan_not_from_creation(world: GcWorld) -> None:
    topic = await world.add("a", strategy="s1")
    world.clock.advance(400 * DAY)
    assert (await world.gc.sweep()).report.observed == 0  # referenced: never collected

    await world.store.release_strategy("s1")
    report = (await world.gc.sweep()).report
    assert skipped(report) == [(topic, WITHIN_GRACE)]
    assert report.skipped[0].age.ToSeconds() == 0

    world.clock.advance(INDICATOR_AFTER)
    assert processed((await world.gc.sweep()).report) == [topic]


async def test_a_queue_referenced_again_during_grace_is_kept(world: GcWorld) -> None:
    topic = await world.add("a", strategy="s1")
    await world.store.release_strategy("s1")
    world.clock.advance(20 * DAY)
    await world.store.add_strategy_refs("s2", ["blake3:a"])
    world.clock.advance(20 * DAY)  # 40 days since it was orphaned, but it is in use again

    report = (await world.gc.sweep()).report

    assert report.observed == 0
    assert processed(report) == []
    assert await world.in_store(topic)
    assert await world.in_broker(topic)
    assert world.events.events == []

    # Released again, it gets a full TTL + grace from now.
    await world.store.release_strategy("s2")
    world.clock.advance(INDICATOR_AFTER - 1)
    assert skipped((await world.gc.sweep()).report) == [(topic, WITHIN_GRACE)]
    world.clock.advance(1)
    assert processed((await world.gc.sweep()).report) == [topic]


class ReferencingStore(InMemoryGraphStore):
    """A strategy takes the node up again right between the sweep's look and its delete."""

    async def delete_queues(
        self, topics: Sequence[str], *, announce: DeleteAnnouncements | None = None
    ) -> list[str]:
        await self.add_strategy_refs("late", ["blake3:a"])
        return await super().delete_queues(topics, announce=announce)


async def test_a_queue_referenced_between_observing_and_deleting_is_kept() -> None:
    clock = ManualClock()
    world = make_world(clock=clock, store=ReferencingStore(clock=clock))
    topic = await world.add("a")
    world.clock.advance(INDICATOR_AFTER)

    outcome = await world.gc.sweep()

    assert outcome.report.candidates == 1
    assert processed(outcome.report) == []
    assert outcome.dropped == ()
    assert await world.in_store(topic)
    assert await world.in_broker(topic)
    assert world.events.events == []


async def test_a_referenced_queue_is_never_observed(world: GcWorld) -> None:
    await world.add("a", strategy="s1")
    world.clock.advance(10_000 * DAY)
    report = (await world.gc.sweep()).report
    assert (report.observed, len(report.processed), len(report.skipped)) == (0, 0, 0)


# --- batches ------------------------------------------------------------------------------


async def test_a_sweep_drops_at_most_batch_size_longest_orphaned_first(world: GcWorld) -> None:
    names = [await world.add(f"n{i}") for i in range(5)]
    for _ in names:
        world.clock.advance(1)  # n0 is the longest orphaned
    world.clock.advance(INDICATOR_AFTER)

    first = (await world.gc.sweep(batch_size=2)).report
    assert (first.observed, first.candidates) == (5, 5)
    assert processed(first) == names[:2]
    assert skipped(first) == []  # the rest wait for the next sweep, they are not "skipped"

    assert processed((await world.gc.sweep(batch_size=2)).report) == names[2:4]
    assert processed((await world.gc.sweep(batch_size=2)).report) == names[4:]
    assert [e.queue_lifecycle.queue for e in world.events.events] == names


async def test_the_default_batch_is_fifty(world: GcWorld) -> None:
    for i in range(DEFAULT_BATCH_SIZE + 3):
        await world.add(f"n{i}")
    world.clock.advance(INDICATOR_AFTER)

    report = (await world.gc.sweep()).report

    assert report.candidates == DEFAULT_BATCH_SIZE + 3
    assert len(report.processed) == DEFAULT_BATCH_SIZE


@pytest.mark.parametrize(("load", "expected"), [(0.79, 4), (0.8, 2), (1.0, 2)])
async def test_high_broker_load_halves_the_batch(load: float, expected: int) -> None:

    async def broker_load() -> float:
        return load

    world = make_world(broker_load=broker_load)
    for i in range(6):
        await world.add(f"n{i}")
    world.clock.advance(INDICATOR_AFTER)

    assert len((await world.gc.sweep(batch_size=4)).report.processed) == expected


@pytest.mark.parametrize("batch_size", [-1, MAX_GC_BATCH + 1])
async def test_a_batch_size_out_of_range_is_a_validation_error(
    world: GcWorld, batch_size: int
) -> None:
    topic = await world.add("a")
    world.clock.advance(INDICATOR_AFTER)

    with pytest.raises(QmtlError) as caught:
        await world.gc.sweep(batch_size=batch_size)

    assert caught.value.code == ErrorCode.ERROR_CODE_VALIDATION
    assert caught.value.details == {"field": "batch_size"}
    assert await world.in_store(topic)
    assert await world.in_broker(topic)


async def test_trigger_answers_the_rpc_with_the_report(world: GcWorld) -> None:
    await world.add("a")
    await world.add("b")
    world.clock.advance(INDICATOR_AFTER)

    response = await world.gc.trigger(gc_messages_pb2.TriggerGcRequest(batch_size=1))

    assert len(response.report.processed) == 1
    assert response.report.started_at.ToSeconds() == int(world.clock.now)
    assert response.report.finished_at.ToSeconds() == int(world.clock.now)


# --- dry run ------------------------------------------------------------------------------


async def test_a_dry_run_reports_what_a_sweep_would_do_and_changes_nothing(
    world: GcWorld,
) -> None:
    indicator = await world.add("ind")
    sentinel = await world.add("sen", node_type="VersionSentinel")
    world.clock.advance(210 * DAY)
    late = await world.add("late")  # dropped only by a later sweep (batch of 2)
    world.clock.advance(INDICATOR_AFTER)
    young = await world.add("young")

    dry = await world.gc.sweep(dry_run=True, batch_size=2)

    assert dry.report.dry_run
    assert (dry.report.observed, dry.report.candidates) == (4, 3)
    assert processed(dry.report) == [indicator, sentinel]
    assert skipped(dry.report) == [(young, WITHIN_GRACE)]
    assert dry.dropped == ()
    for topic in (indicator, sentinel, late, young):
        assert await world.in_store(topic)
        assert await world.in_broker(topic)
    assert world.events.events == []

    real = await world.gc.sweep(batch_size=2)
    assert not real.report.dry_run
    assert processed(real.report) == processed(dry.report)
    assert skipped(real.report) == skipped(dry.report)
    assert [(i.action, i.archive_status) for i in real.report.processed] == [
        (i.action, i.archive_status) for i in dry.report.processed
    ]
    assert len(world.events.events) == 2


# --- sentinels and archives ---------------------------------------------------------------


async def test_a_sentinel_without_archive_client_is_still_dropped(world: GcWorld) -> None:
    topic = await world.add("s", node_type="VersionSentinel")
    world.clock.advance(210 * DAY)

    report = (await world.gc.sweep()).report

    [item] = report.processed
    assert (item.queue, item.gc_tag, item.action) == (topic, "sentinel", ARCHIVE)
    assert item.archive_status == MISSING_CLIENT
    assert (report.actions.archive, report.by_tag["sentinel"].archive) == (1, 1)
    assert not await world.in_store(topic)
    assert not await world.in_broker(topic)
    [lifecycle] = world.lifecycles()
    assert (lifecycle.action, lifecycle.archive_status) == (ARCHIVE, MISSING_CLIENT)
    assert lifecycle.etag == f"ql:{topic}:archive:orphan_ttl_expired:1"


class RecordingArchiver:
    def __init__(self, *, fail: bool = False) -> None:
        self.calls: list[tuple[str, float]] = []
        self.fail = fail

    async def archive(self, queue: str, at: float) -> None:
        self.calls.append((queue, at))
        if self.fail:
            raise OSError("archive bucket unreachable")


def world_with_archiver(archiver: RecordingArchiver) -> GcWorld:
    return make_world(archiver=archiver)


async def test_a_sentinel_is_archived_then_dropped() -> None:
    archiver = RecordingArchiver()
    world = world_with_archiver(archiver)
    topic = await world.add("s", node_type="VersionSentinel")
    plain = await world.add("p")
    world.clock.advance(210 * DAY)

    report = (await world.gc.sweep()).report

    assert archiver.calls == [(topic, world.clock.now)]  # only the sentinel is archived
    statuses = {i.queue: (i.action, i.archive_status) for i in report.processed}
    assert statuses == {topic: (ARCHIVE, ARCHIVED), plain: (DROP, NOT_ARCHIVED)}
    assert not await world.in_broker(topic)


async def test_a_failed_archive_keeps_the_queue() -> None:
    world = world_with_archiver(RecordingArchiver(fail=True))
    topic = await world.add("s", node_type="VersionSentinel")
    world.clock.advance(210 * DAY)

    report = (await world.gc.sweep()).report

    assert report.candidates == 1
    assert processed(report) == []
    assert skipped(report) == [(topic, ARCHIVE_FAILED)]
    assert report.by_tag["sentinel"].skip == 1
    assert await world.in_store(topic)
    assert await world.in_broker(topic)
    assert world.events.events == []


async def test_a_dry_run_does_not_archive() -> None:
    archiver = RecordingArchiver()
    world = world_with_archiver(archiver)
    await world.add("s", node_type="VersionSentinel")
    world.clock.advance(210 * DAY)

    report = (await world.gc.sweep(dry_run=True)).report

    assert archiver.calls == []
    assert [(i.action, i.archive_status) for i in report.processed] == [(ARCHIVE, NOT_ARCHIVED)]


async def test_a_gc_tag_without_policy_is_skipped_as_unknown_policy() -> None:
    policies = {k: v for k, v in DEFAULT_POLICIES.items() if k != "raw"}
    world = make_world(policies=policies)
    raw = await world.add("r", node_type="RawTicks")
    world.clock.advance(1000 * DAY)

    report = (await world.gc.sweep()).report

    assert skipped(report) == [(raw, UNKNOWN_POLICY)]
    assert report.skipped[0].gc_tag == "raw"
    assert await world.in_store(raw)


async def test_policies_can_be_configured() -> None:
    policies = {**DEFAULT_POLICIES, "indicator": GcPolicy(ttl=60, grace=30)}
    world = make_world(policies=policies)
    topic = await world.add("a")
    world.clock.advance(90)

    assert processed((await world.gc.sweep()).report) == [topic]


async def test_a_failing_broker_load_probe_halves_the_batch() -> None:

    async def broken_probe() -> float:
        raise ConnectionError("metrics endpoint down")

    world = make_world(broker_load=broken_probe)
    for i in range(6):
        await world.add(f"n{i}")
    world.clock.advance(INDICATOR_AFTER)

    assert len((await world.gc.sweep(batch_size=4)).report.processed) == 2


@pytest.mark.parametrize(
    ("ttl", "grace"), [(-1.0, 0.0), (0.0, -1.0), (float("nan"), 0.0), (0.0, float("nan"))]
)
def test_a_policy_with_negative_or_nan_durations_is_refused(ttl: float, grace: float) -> None:
    with pytest.raises(GcConfigError):
        GcPolicy(ttl=ttl, grace=grace)


@pytest.mark.parametrize("limit", [0, MAX_BATCH + 1])
def test_an_observe_limit_beyond_the_store_limit_is_refused(limit: int) -> None:
    store = InMemoryGraphStore()
    with pytest.raises(GcConfigError):
        GarbageCollector(store, InMemoryTopicAdmin(), observe_limit=limit)


async def test_the_observe_limit_bounds_what_one_sweep_looks_at() -> None:
    world = make_world(observe_limit=2)
    names = []
    for i in range(3):
        names.append(await world.add(f"n{i}"))
        world.clock.advance(1)
    world.clock.advance(INDICATOR_AFTER)

    first = (await world.gc.sweep()).report
    assert (first.observed, processed(first)) == (2, names[:2])
    assert processed((await world.gc.sweep()).report) == names[2:]
