"""The StrategyStore contract, run on every adapter (memory, Redis): what the Gateway relies on.

Each test gets a fresh store and a manual clock (store_support.py)."""

from __future__ import annotations

import pytest

from qmtl.common.v1 import error_pb2
from qmtl.dag.v1 import diff_result_pb2, node_status_pb2, strategy_pb2
from qmtl.events.v1 import event_pb2
from qmtl.runtime.eventbus.topics import STRATEGY_EVENTS
from qmtl.runtime.outbox import OutboxRelay
from qmtl.services.gateway.store import (
    MAX_STRATEGY_BYTES,
    IdempotencyConflictError,
    InvalidCursorError,
    InvalidStateError,
    InvalidStrategyInputError,
    StrategyNotFoundError,
    StrategyStore,
    StrategyTooLargeError,
)
from tests.dag_manager.outbox_support import RecordingBus

from .store_support import (
    COMPLETED,
    DAG_CHANGED,
    EVENT_LOG_CAP,
    FAILED,
    PROCESSING,
    QUEUED,
    STATE_CHANGED,
    STRATEGY_EVENT_LOG_CAP,
    StoreUnderTest,
    dag_changed,
    ids,
    make_strategy,
    state_changed,
)


async def outbox_ids(store: StrategyStore) -> list[str]:
    return [entry.id for entry in await store.outbox.outbox_pending(1000)]


async def all_events(store: StrategyStore, **filters: object) -> list[event_pb2.Event]:
    events, _ = await store.events(limit=1000, **filters)  # type: ignore[arg-type]
    return events


async def all_listed(store: StrategyStore, state: int = 0) -> list[str]:
    page, _ = await store.list(state=state, limit=1000)
    return [s.strategy_id for s in page]


def seconds(stamp: object) -> float:
    return stamp.seconds + stamp.nanos / 1e9  # type: ignore[attr-defined,no-any-return]


# -- create ------------------------------------------------------------------------------------


async def test_create_stores_the_strategy_with_the_store_clock(
    store_under_test: StoreUnderTest,
) -> None:
    store, clock = store_under_test.store, store_under_test.clock
    clock.advance(0.25)
    strategy = make_strategy(name="momentum")
    strategy.callback_url = "http://callback.example/hook"

    created = await store.create(strategy, idempotency_key="k1", fingerprint="f1", events=[])

    assert created.outcome == "created"
    assert created.strategy.strategy_id == strategy.strategy_id
    assert seconds(created.strategy.created_at) == pytest.approx(clock.now)
    assert created.strategy.updated_at == created.strategy.created_at
    got = await store.get(strategy.strategy_id)
    assert got == created.strategy
    assert got is not None
    assert got.callback_url == "http://callback.example/hook"
    assert got.state == QUEUED
    assert await store.get("no-such-strategy") is None


async def test_same_key_and_fingerprint_replays_the_first_strategy_and_writes_nothing(
    store_under_test: StoreUnderTest,
) -> None:
    store = store_under_test.store
    first = make_strategy()
    await store.create(
        first,
        idempotency_key="k",
        fingerprint="f",
        events=[state_changed(first.strategy_id, 0, QUEUED)],
    )
    again = make_strategy(dag_hash=first.dag_hash)

    replay = await store.create(
        again,
        idempotency_key="k",
        fingerprint="f",
        events=[state_changed(again.strategy_id, 0, QUEUED)],
    )

    assert replay.outcome == "replayed"
    assert replay.strategy.strategy_id == first.strategy_id
    assert await store.get(again.strategy_id) is None
    assert await all_listed(store) == [first.strategy_id]
    assert len(await outbox_ids(store)) == 1
    assert len(await all_events(store)) == 1


async def test_same_dag_hash_is_a_duplicate_answered_with_the_holder(
    store_under_test: StoreUnderTest,
) -> None:
    store = store_under_test.store
    first = make_strategy(dag_hash="abc")
    await store.create(first, idempotency_key="", fingerprint="", events=[])
    second = make_strategy(dag_hash="abc")

    duplicate = await store.create(
        second,
        idempotency_key="other-key",
        fingerprint="f2",
        events=[state_changed(second.strategy_id, 0, QUEUED)],
    )

    assert duplicate.outcome == "duplicate"
    assert duplicate.strategy.strategy_id == first.strategy_id
    assert await store.get(second.strategy_id) is None
    assert await outbox_ids(store) == []
    assert await all_events(store) == []


async def test_same_key_other_fingerprint_is_a_conflict_and_writes_nothing(
    store_under_test: StoreUnderTest,
) -> None:
    store = store_under_test.store
    first = make_strategy()
    await store.create(first, idempotency_key="k", fingerprint="f1", events=[])
    other = make_strategy()

    with pytest.raises(IdempotencyConflictError) as caught:
        await store.create(
            other,
            idempotency_key="k",
            fingerprint="f2",
            events=[state_changed(other.strategy_id, 0, QUEUED)],
        )

    assert caught.value.strategy_id == first.strategy_id
    assert caught.value.code == "E_IDEMPOTENCY_CONFLICT"
    assert not caught.value.retryable
    assert caught.value.to_qmtl_error().details["strategy_id"] == first.strategy_id
    assert await all_listed(store) == [first.strategy_id]
    assert await outbox_ids(store) == []


async def test_an_idempotency_key_is_free_again_after_its_24_hours(
    store_under_test: StoreUnderTest,
) -> None:
    store, clock = store_under_test.store, store_under_test.clock
    await store.create(make_strategy(), idempotency_key="k", fingerprint="f1", events=[])
    clock.advance(24 * 3600 - 1)
    with pytest.raises(IdempotencyConflictError):
        await store.create(make_strategy(), idempotency_key="k", fingerprint="f2", events=[])
    clock.advance(2)

    later = await store.create(make_strategy(), idempotency_key="k", fingerprint="f2", events=[])

    assert later.outcome == "created"


async def test_a_repeated_create_of_one_strategy_answers_created_and_writes_once(
    store_under_test: StoreUnderTest,
) -> None:
    """What a retry after a lost reply sends: the very same strategy (same id) again."""
    store = store_under_test.store
    strategy = make_strategy()
    announced = [state_changed(strategy.strategy_id, 0, QUEUED)]
    first = await store.create(strategy, idempotency_key="k", fingerprint="f", events=announced)

    again = await store.create(strategy, idempotency_key="k", fingerprint="f", events=announced)
    without_key = await store.create(strategy, idempotency_key="", fingerprint="", events=announced)

    assert again == first
    assert without_key == first
    assert await outbox_ids(store) == [announced[0][1].id]
    assert len(await all_events(store)) == 1


async def test_create_refuses_bad_input_before_writing(store_under_test: StoreUnderTest) -> None:
    store = store_under_test.store
    no_subject = make_strategy()
    topic, event = state_changed(no_subject.strategy_id, 0, QUEUED)
    event.ClearField("subject")
    cases: list[tuple[strategy_pb2.Strategy, str, str]] = [
        (strategy_pb2.Strategy(dag_hash="h", state=QUEUED), "strategy_id", ""),
        (make_strategy(dag_hash=""), "strategy.dag_hash", ""),
        (make_strategy(state=0), "strategy.state", ""),
        (make_strategy(), "fingerprint", "key-without-fingerprint"),
    ]
    for strategy, field, key in cases:
        with pytest.raises(InvalidStrategyInputError) as caught:
            await store.create(strategy, idempotency_key=key, fingerprint="", events=[])
        assert caught.value.field == field
        assert caught.value.code == "E_VALIDATION"
    with pytest.raises(InvalidStrategyInputError) as bad_event:
        await store.create(no_subject, idempotency_key="", fingerprint="", events=[(topic, event)])
    assert bad_event.value.field == "events[0].subject"
    assert await all_listed(store) == []
    assert await outbox_ids(store) == []


async def test_a_record_over_the_size_bound_is_refused(store_under_test: StoreUnderTest) -> None:
    store = store_under_test.store
    huge = make_strategy(name="x" * (MAX_STRATEGY_BYTES + 1))

    with pytest.raises(StrategyTooLargeError) as caught:
        await store.create(huge, idempotency_key="", fingerprint="", events=[])

    assert caught.value.code == "E_PAYLOAD_TOO_LARGE"
    assert await store.get(huge.strategy_id) is None


async def test_what_a_caller_gets_back_is_a_copy(store_under_test: StoreUnderTest) -> None:
    store = store_under_test.store
    strategy = make_strategy(name="original")
    created = await store.create(strategy, idempotency_key="", fingerprint="", events=[])
    strategy.name = "changed by the caller"
    created.strategy.name = "changed too"

    got = await store.get(strategy.strategy_id)

    assert got is not None
    assert got.name == "original"


# -- list --------------------------------------------------------------------------------------


async def test_list_is_newest_first_then_by_id_and_pages_without_gaps(
    store_under_test: StoreUnderTest,
) -> None:
    store, clock = store_under_test.store, store_under_test.clock
    made: list[tuple[float, str]] = []
    for index in range(7):
        strategy = make_strategy()
        await store.create(strategy, idempotency_key="", fingerprint="", events=[])
        made.append((clock.now, strategy.strategy_id))
        if index % 3 == 2:  # runs of equal created_at: the id decides among them
            clock.advance(1.5)
    expected = [sid for _, sid in sorted(made, reverse=True)]

    seen: list[str] = []
    cursor = ""
    pages = 0
    while True:
        page, cursor = await store.list(limit=3, cursor=cursor)
        pages += 1
        seen += [s.strategy_id for s in page]
        if not cursor:
            break

    assert seen == expected
    assert pages == 3
    assert await all_listed(store) == expected


async def test_a_page_cursor_survives_new_strategies(store_under_test: StoreUnderTest) -> None:
    store, clock = store_under_test.store, store_under_test.clock
    old = [make_strategy() for _ in range(4)]
    for strategy in old:
        await store.create(strategy, idempotency_key="", fingerprint="", events=[])
        clock.advance(1)
    first, cursor = await store.list(limit=2)
    await store.create(make_strategy(), idempotency_key="", fingerprint="", events=[])

    second, last = await store.list(limit=2, cursor=cursor)

    assert [s.strategy_id for s in first + second] == [s.strategy_id for s in reversed(old)]
    assert last == ""


async def test_list_filters_by_state(store_under_test: StoreUnderTest) -> None:
    store, clock = store_under_test.store, store_under_test.clock
    strategies = [make_strategy() for _ in range(5)]
    for strategy in strategies:
        await store.create(strategy, idempotency_key="", fingerprint="", events=[])
        clock.advance(1)
    for strategy in strategies[:3]:
        await store.transition(strategy.strategy_id, expect=[QUEUED], to=PROCESSING)
    await store.transition(strategies[0].strategy_id, expect=[PROCESSING], to=COMPLETED)

    processing, cursor = await store.list(state=PROCESSING, limit=1)
    rest, end = await store.list(state=PROCESSING, limit=1, cursor=cursor)

    assert [s.strategy_id for s in processing + rest] == [
        strategies[2].strategy_id,
        strategies[1].strategy_id,
    ]
    assert all(s.state == PROCESSING for s in processing + rest)
    assert end == ""
    assert await all_listed(store, QUEUED) == [strategies[4].strategy_id, strategies[3].strategy_id]
    assert await all_listed(store, COMPLETED) == [strategies[0].strategy_id]
    assert await all_listed(store, FAILED) == []
    assert len(await all_listed(store)) == 5


async def test_bad_cursors_and_limits_are_typed_errors(store_under_test: StoreUnderTest) -> None:
    store, clock = store_under_test.store, store_under_test.clock
    for _ in range(3):
        created = await store.create(make_strategy(), idempotency_key="", fingerprint="", events=[])
        await store.transition(
            created.strategy.strategy_id,
            expect=[QUEUED],
            to=QUEUED,
            events=[state_changed(created.strategy.strategy_id, QUEUED, QUEUED)],
        )
        clock.advance(1)
    _, list_cursor = await store.list(limit=1)
    _, queued_cursor = await store.list(state=QUEUED, limit=1)
    _, events_cursor = await store.events(limit=1)
    assert list_cursor
    assert queued_cursor
    assert events_cursor

    wrong = [
        store.list(limit=1, cursor="not a cursor!"),
        store.list(limit=1, cursor="bDF8MHx4"),  # base64 of "l1|0|x": no position
        store.list(limit=1, cursor=events_cursor),
        store.list(limit=1, cursor=queued_cursor),  # another state filter
        store.events(limit=1, cursor=list_cursor),
        store.events(limit=1, cursor=events_cursor, types=[STATE_CHANGED]),
        store.events(limit=1, cursor="%%%"),
    ]
    for call in wrong:
        with pytest.raises(InvalidCursorError) as caught:
            await call
        assert caught.value.code == "E_INVALID_PAGE_TOKEN"
        assert caught.value.field == "cursor"
        assert caught.value.to_qmtl_error().http_status == 400
    for bad_limit in (0, 1001):
        with pytest.raises(InvalidStrategyInputError):
            await store.list(limit=bad_limit)
        with pytest.raises(InvalidStrategyInputError):
            await store.events(limit=bad_limit)


# -- attach_work_item and transition -----------------------------------------------------------


async def test_attach_work_item_records_it_and_moves_updated_at(
    store_under_test: StoreUnderTest,
) -> None:
    store, clock = store_under_test.store, store_under_test.clock
    created = await store.create(make_strategy(), idempotency_key="", fingerprint="", events=[])
    clock.advance(3)

    attached = await store.attach_work_item(created.strategy.strategy_id, "job-1")

    assert attached.work_item_id == "job-1"
    assert attached.state == QUEUED
    assert seconds(attached.updated_at) == pytest.approx(clock.now)
    assert attached.created_at == created.strategy.created_at
    assert await store.get(created.strategy.strategy_id) == attached
    with pytest.raises(StrategyNotFoundError) as caught:
        await store.attach_work_item("no-such-strategy", "job-2")
    assert caught.value.code == "E_NOT_FOUND"


async def test_transition_is_a_compare_and_set_on_the_state(
    store_under_test: StoreUnderTest,
) -> None:
    store, clock = store_under_test.store, store_under_test.clock
    created = await store.create(make_strategy(), idempotency_key="", fingerprint="", events=[])
    sid = created.strategy.strategy_id
    clock.advance(2)

    moved = await store.transition(sid, expect=[QUEUED, FAILED], to=PROCESSING)

    assert moved.state == PROCESSING
    assert seconds(moved.updated_at) == pytest.approx(clock.now)
    assert moved.created_at == created.strategy.created_at
    assert await store.get(sid) == moved
    with pytest.raises(InvalidStateError) as caught:
        await store.transition(
            sid, expect=[QUEUED], to=PROCESSING, events=[state_changed(sid, QUEUED, PROCESSING)]
        )
    assert caught.value.current == PROCESSING
    assert caught.value.code == "E_INVALID_STATE"
    assert "STRATEGY_STATE_PROCESSING" in caught.value.message
    assert await outbox_ids(store) == []  # a refused transition announces nothing
    assert await all_events(store) == []
    with pytest.raises(StrategyNotFoundError):
        await store.transition("no-such-strategy", expect=[QUEUED], to=PROCESSING)
    with pytest.raises(InvalidStrategyInputError):
        await store.transition(sid, expect=[], to=PROCESSING)
    with pytest.raises(InvalidStrategyInputError):
        await store.transition(sid, expect=[PROCESSING], to=99)


async def test_transition_stores_the_diff_and_sets_or_clears_the_error(
    store_under_test: StoreUnderTest,
) -> None:
    store = store_under_test.store
    created = await store.create(make_strategy(), idempotency_key="", fingerprint="", events=[])
    sid = created.strategy.strategy_id
    await store.attach_work_item(sid, "job-1")
    await store.transition(sid, expect=[QUEUED], to=PROCESSING)
    error = error_pb2.ErrorDetail(code="E_UNAVAILABLE", message="dag manager down", retryable=True)

    failed = await store.transition(sid, expect=[PROCESSING], to=FAILED, error=error)
    retried = await store.transition(sid, expect=[FAILED], to=PROCESSING)
    diff = diff_result_pb2.DiffResult(strategy_id=sid, new_node_ids=["n1", "n2"], crc32=7)
    done = await store.transition(sid, expect=[PROCESSING], to=COMPLETED, diff=diff)
    kept = await store.transition(sid, expect=[COMPLETED], to=COMPLETED)

    assert failed.error == error
    assert failed.state == FAILED
    assert not retried.HasField("error")
    assert done.diff == diff
    assert done.work_item_id == "job-1"
    assert kept.diff == diff  # a transition without a diff keeps the stored one
    assert await store.get(sid) == kept


async def test_events_go_to_the_outbox_and_the_log_in_write_order(
    store_under_test: StoreUnderTest,
) -> None:
    store = store_under_test.store
    strategy = make_strategy()
    sid = strategy.strategy_id
    e1 = state_changed(sid, 0, QUEUED)
    e2 = state_changed(sid, QUEUED, PROCESSING)
    e3 = dag_changed(sid)
    e4 = state_changed(sid, PROCESSING, COMPLETED)

    await store.create(strategy, idempotency_key="", fingerprint="", events=[e1])
    await store.transition(sid, expect=[QUEUED], to=PROCESSING, events=[e2, e3])
    await store.transition(sid, expect=[PROCESSING], to=COMPLETED, events=[e4])

    written = [e1[1].id, e2[1].id, e3[1].id, e4[1].id]
    pending = await store.outbox.outbox_pending(1000)
    assert [entry.id for entry in pending] == written
    assert {entry.topic for entry in pending} == {STRATEGY_EVENTS}
    assert event_pb2.Event.FromString(pending[1].payload) == e2[1]
    logged = await all_events(store)
    assert ids(logged) == written
    assert logged[3] == e4[1]
    assert ids(await all_events(store, strategy_id=sid)) == written


async def test_the_relay_publishes_the_outbox_in_order_and_empties_it(
    store_under_test: StoreUnderTest,
) -> None:
    store = store_under_test.store
    strategy = make_strategy()
    sid = strategy.strategy_id
    announced = [state_changed(sid, 0, QUEUED), state_changed(sid, QUEUED, PROCESSING)]
    await store.create(strategy, idempotency_key="", fingerprint="", events=announced[:1])
    await store.transition(sid, expect=[QUEUED], to=PROCESSING, events=announced[1:])
    bus = RecordingBus()
    relay = OutboxRelay(store.outbox, bus)

    assert await relay.drain() == 2
    assert bus.published == announced
    assert await outbox_ids(store) == []
    assert await relay.drain() == 0
    assert len(await all_events(store)) == 2  # the log is not the outbox: it keeps them


# -- node states -------------------------------------------------------------------------------


async def test_report_node_states_upserts_by_node_id(store_under_test: StoreUnderTest) -> None:
    store = store_under_test.store
    created = await store.create(make_strategy(), idempotency_key="", fingerprint="", events=[])
    sid = created.strategy.strategy_id
    running = node_status_pb2.NODE_STATUS_RUNNING
    done = node_status_pb2.NODE_STATUS_COMPLETED
    pending = node_status_pb2.NODE_STATUS_PENDING

    await store.report_node_states(
        sid,
        [
            node_status_pb2.NodeState(node_id="n2", status=running),
            node_status_pb2.NodeState(node_id="n1", status=pending),
        ],
    )
    failure = error_pb2.ErrorDetail(code="E_INTERNAL", message="boom")
    await store.report_node_states(
        sid,
        [
            node_status_pb2.NodeState(node_id="n2", status=done),
            node_status_pb2.NodeState(
                node_id="n3", status=node_status_pb2.NODE_STATUS_FAILED, error=failure
            ),
        ],
    )

    states = await store.node_states(sid)
    assert [(s.node_id, s.status) for s in states] == [
        ("n1", pending),
        ("n2", done),
        ("n3", node_status_pb2.NODE_STATUS_FAILED),
    ]
    assert states[2].error == failure
    assert await store.node_states("no-such-strategy") == []
    with pytest.raises(StrategyNotFoundError):
        await store.report_node_states("no-such-strategy", [states[0]])
    with pytest.raises(StrategyNotFoundError):
        await store.report_node_states("no-such-strategy", [])
    with pytest.raises(InvalidStrategyInputError):
        await store.report_node_states(sid, [node_status_pb2.NodeState(node_id="")])


# -- events() ----------------------------------------------------------------------------------


async def test_events_filter_by_strategy_type_and_time_and_page(
    store_under_test: StoreUnderTest,
) -> None:
    store = store_under_test.store
    a, b = make_strategy(), make_strategy()
    a_created = state_changed(a.strategy_id, 0, QUEUED, at=100)
    b_created = state_changed(b.strategy_id, 0, QUEUED, at=101)
    await store.create(a, idempotency_key="", fingerprint="", events=[a_created])
    await store.create(b, idempotency_key="", fingerprint="", events=[b_created])
    a_dag = dag_changed(a.strategy_id, at=102)
    a_moved = state_changed(a.strategy_id, QUEUED, PROCESSING, at=103)
    await store.transition(a.strategy_id, expect=[QUEUED], to=PROCESSING, events=[a_dag, a_moved])

    assert ids(await all_events(store, strategy_id=a.strategy_id)) == ids(
        [a_created[1], a_dag[1], a_moved[1]]
    )
    assert ids(await all_events(store, strategy_id=b.strategy_id)) == [b_created[1].id]
    assert ids(await all_events(store, types=[DAG_CHANGED])) == [a_dag[1].id]
    assert ids(await all_events(store, since=101.5)) == ids([a_dag[1], a_moved[1]])
    assert ids(
        await all_events(store, strategy_id=a.strategy_id, types=[STATE_CHANGED], since=100)
    ) == ids([a_created[1], a_moved[1]])
    assert await all_events(store, strategy_id="no-such-strategy") == []

    paged: list[str] = []
    cursor = ""
    while True:
        page, cursor = await store.events(types=[STATE_CHANGED], limit=1, cursor=cursor)
        paged += ids(page)
        if not cursor:
            break
    assert paged == ids([a_created[1], b_created[1], a_moved[1]])


async def test_the_event_logs_keep_only_their_newest_entries(
    store_under_test: StoreUnderTest,
) -> None:
    store = store_under_test.store
    a, b = make_strategy(), make_strategy()
    await store.create(a, idempotency_key="", fingerprint="", events=[])
    await store.create(b, idempotency_key="", fingerprint="", events=[])
    a_events = [dag_changed(a.strategy_id) for _ in range(7)]
    b_events = [dag_changed(b.strategy_id) for _ in range(4)]
    for announcement in a_events[:4]:
        await store.transition(a.strategy_id, expect=[QUEUED], to=QUEUED, events=[announcement])
    await store.transition(b.strategy_id, expect=[QUEUED], to=QUEUED, events=b_events)
    await store.transition(a.strategy_id, expect=[QUEUED], to=QUEUED, events=a_events[4:])

    written = [e for _, e in a_events[:4] + b_events + a_events[4:]]
    assert ids(await all_events(store)) == ids(written[-EVENT_LOG_CAP:])
    a_only = [e for _, e in a_events]
    assert ids(await all_events(store, strategy_id=a.strategy_id)) == ids(
        a_only[-STRATEGY_EVENT_LOG_CAP:]
    )
    assert ids(await all_events(store, strategy_id=b.strategy_id)) == ids([e for _, e in b_events])
    # The outbox is not capped: every event still reaches the relay.
    assert await outbox_ids(store) == ids(written)


async def test_ping_answers_when_the_backend_is_up(store_under_test: StoreUnderTest) -> None:
    await store_under_test.store.ping()
