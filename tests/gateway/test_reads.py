"""RetryStrategy, ReportNodeStatus and the reads: GetStrategy, ListStrategies, GetStrategyStatus,
GetWorkItem, ListEvents, GetQueuesByTag, DryRunStrategy, health."""

from __future__ import annotations

import time

import pytest
from google.protobuf import timestamp_pb2

from qmtl.common.v1 import health_pb2, paging_pb2
from qmtl.dag.v1 import node_status_pb2
from qmtl.events.v1 import event_pb2
from qmtl.gateway.v1 import (
    event_messages_pb2,
    health_messages_pb2,
    node_status_messages_pb2,
    queue_messages_pb2,
    strategy_messages_pb2,
    work_messages_pb2,
)
from qmtl.runtime.errors import ErrorCode, QmtlError
from qmtl.runtime.health import HealthReporter
from qmtl.services.gateway.handler import GatewayHandler
from qmtl.work.v1 import work_state_pb2
from tests.gateway.gateway_support import (
    COMPLETED,
    FAILED,
    QUEUED,
    STATE_CHANGED,
    GatewayEnv,
    ctx_for,
    submit_request,
)

E = ErrorCode
Node = node_status_pb2.NodeState


async def completed(
    env: GatewayEnv, **fields: object
) -> strategy_messages_pb2.SubmitStrategyResponse:
    if not env.workers:
        env.worker()
    response, _ = await env.submit(submit_request(**fields))  # type: ignore[arg-type]
    await env.wait_for_state(response.strategy_id, COMPLETED)
    return response


async def test_retry_is_refused_unless_the_strategy_failed(env: GatewayEnv) -> None:
    response, _ = await env.submit(submit_request())
    with pytest.raises(QmtlError) as raised:
        await env.handler.retry_strategy(
            strategy_messages_pb2.RetryStrategyRequest(strategy_id=response.strategy_id),
            ctx_for("RetryStrategy"),
        )
    assert raised.value.code == E.ERROR_CODE_INVALID_STATE
    assert raised.value.http_status == 409
    assert raised.value.details["state"] == "STRATEGY_STATE_QUEUED"
    with pytest.raises(QmtlError) as missing:
        await env.handler.retry_strategy(
            strategy_messages_pb2.RetryStrategyRequest(strategy_id="nope"),
            ctx_for("RetryStrategy"),
        )
    assert missing.value.code == E.ERROR_CODE_NOT_FOUND


async def test_retry_requeues_a_failed_strategy_with_a_new_job_that_completes(
    env: GatewayEnv,
) -> None:
    env.dag_manager.failures = [QmtlError(E.ERROR_CODE_DAG_INVALID, "not yet")]
    env.worker()
    response, _ = await env.submit(submit_request())
    await env.wait_for_state(response.strategy_id, FAILED)
    retried = await env.handler.retry_strategy(
        strategy_messages_pb2.RetryStrategyRequest(strategy_id=response.strategy_id),
        ctx_for("RetryStrategy"),
    )
    assert retried.state == QUEUED
    assert retried.work_item_id
    assert retried.work_item_id != response.work_item_id
    done = await env.wait_for_state(response.strategy_id, COMPLETED)
    assert done.work_item_id == retried.work_item_id
    assert done.error.code == "E_DAG_INVALID"  # the last failure is kept for information
    transitions = [
        (e.strategy_state_changed.from_state, e.strategy_state_changed.to_state)
        for e in await env.state_events(response.strategy_id)
    ]
    assert transitions[-3:] == [(FAILED, QUEUED), (QUEUED, 2), (2, COMPLETED)]


async def test_reported_node_states_appear_in_the_status(env: GatewayEnv) -> None:
    response = await completed(env)
    dag = (await env.strategy(response.strategy_id)).dag
    first, second = (node.node_id for node in dag.nodes)
    report = node_status_messages_pb2.ReportNodeStatusRequest(
        strategy_id=response.strategy_id,
        node_states=[
            Node(node_id=second, status=node_status_pb2.NODE_STATUS_RUNNING),
            Node(node_id=first, status=node_status_pb2.NODE_STATUS_COMPLETED),
        ],
    )
    answer = await env.handler.report_node_status(report, ctx_for("ReportNodeStatus"))
    assert (answer.strategy_id, answer.accepted) == (response.strategy_id, 2)
    status = await env.handler.get_strategy_status(
        strategy_messages_pb2.GetStrategyStatusRequest(strategy_id=response.strategy_id),
        ctx_for("GetStrategyStatus"),
    )
    by_node = {state.node_id: state.status for state in status.node_states}
    assert by_node == {
        first: node_status_pb2.NODE_STATUS_COMPLETED,
        second: node_status_pb2.NODE_STATUS_RUNNING,
    }
    assert status.state == COMPLETED
    assert status.queue_map == (await env.strategy(response.strategy_id)).diff.queue_map
    assert status.work_item_id == response.work_item_id
    assert not status.HasField("error")


@pytest.mark.parametrize(
    ("states", "field"),
    [
        ([], "node_states"),
        ([Node(node_id="blake3:unknown")], "node_states[0].node_id"),
        ([Node(node_id="FIRST"), Node(node_id="FIRST")], "node_states[1].node_id"),
    ],
)
async def test_a_bad_node_status_report_is_refused(
    env: GatewayEnv, states: list[node_status_pb2.NodeState], field: str
) -> None:
    response, _ = await env.submit(submit_request())
    first = (await env.strategy(response.strategy_id)).dag.nodes[0].node_id
    for state in states:
        state.node_id = state.node_id.replace("FIRST", first)
    with pytest.raises(QmtlError) as raised:
        await env.handler.report_node_status(
            node_status_messages_pb2.ReportNodeStatusRequest(
                strategy_id=response.strategy_id, node_states=states
            ),
            ctx_for("ReportNodeStatus"),
        )
    assert raised.value.code == E.ERROR_CODE_VALIDATION
    assert raised.value.details["field"] == field
    assert await env.store.node_states(response.strategy_id) == []


async def test_a_node_status_report_for_an_unknown_strategy_is_not_found(env: GatewayEnv) -> None:
    with pytest.raises(QmtlError) as raised:
        await env.handler.report_node_status(
            node_status_messages_pb2.ReportNodeStatusRequest(
                strategy_id="nope", node_states=[Node(node_id="blake3:x")]
            ),
            ctx_for("ReportNodeStatus"),
        )
    assert raised.value.code == E.ERROR_CODE_NOT_FOUND


async def test_status_of_a_failed_strategy_carries_its_error(env: GatewayEnv) -> None:
    env.dag_manager.failures = [QmtlError(E.ERROR_CODE_DAG_INVALID, "bad")]
    env.worker()
    response, _ = await env.submit(submit_request())
    await env.wait_for_state(response.strategy_id, FAILED)
    status = await env.handler.get_strategy_status(
        strategy_messages_pb2.GetStrategyStatusRequest(strategy_id=response.strategy_id),
        ctx_for("GetStrategyStatus"),
    )
    assert (status.state, status.error.code) == (FAILED, "E_DAG_INVALID")
    assert not status.HasField("queue_map")


async def test_get_strategy_and_its_errors(env: GatewayEnv) -> None:
    response = await completed(env)
    got = await env.handler.get_strategy(
        strategy_messages_pb2.GetStrategyRequest(strategy_id=response.strategy_id),
        ctx_for("GetStrategy"),
    )
    assert got.strategy == await env.strategy(response.strategy_id)
    for rpc, request in [
        ("GetStrategy", strategy_messages_pb2.GetStrategyRequest(strategy_id="nope")),
        ("GetStrategyStatus", strategy_messages_pb2.GetStrategyStatusRequest(strategy_id="nope")),
    ]:
        with pytest.raises(QmtlError) as raised:
            await getattr(
                env.handler, "get_strategy" if rpc == "GetStrategy" else "get_strategy_status"
            )(request, ctx_for(rpc))
        assert raised.value.code == E.ERROR_CODE_NOT_FOUND


async def test_list_strategies_pages_newest_first_filters_by_state_and_omits_the_dag(
    env: GatewayEnv,
) -> None:
    done = await completed(env, seed=1)
    await env.workers[0].stop()
    queued = [(await env.submit(submit_request(seed=n)))[0].strategy_id for n in (2, 3)]
    seen: list[str] = []
    token = ""
    while True:
        page = await env.handler.list_strategies(
            strategy_messages_pb2.ListStrategiesRequest(
                page=paging_pb2.PageRequest(page_size=1, page_token=token)
            ),
            ctx_for("ListStrategies"),
        )
        assert len(page.strategies) <= 1
        assert all(not s.HasField("dag") for s in page.strategies)
        seen.extend(s.strategy_id for s in page.strategies)
        token = page.page_info.next_page_token
        if not token:
            break
    # Newest first by created_at then id (two submissions may share a millisecond).
    newest_first = sorted(
        [await env.strategy(sid) for sid in [done.strategy_id, *queued]],
        key=lambda s: (s.created_at.ToNanoseconds(), s.strategy_id),
        reverse=True,
    )
    assert seen == [s.strategy_id for s in newest_first]
    only_queued = await env.handler.list_strategies(
        strategy_messages_pb2.ListStrategiesRequest(state=QUEUED, include_dag=True),
        ctx_for("ListStrategies"),
    )
    assert [s.strategy_id for s in only_queued.strategies] == [
        s.strategy_id for s in newest_first if s.strategy_id in queued
    ]
    assert all(s.HasField("dag") for s in only_queued.strategies)
    with pytest.raises(QmtlError) as raised:
        await env.handler.list_strategies(
            strategy_messages_pb2.ListStrategiesRequest(
                page=paging_pb2.PageRequest(page_token="not-a-token")
            ),
            ctx_for("ListStrategies"),
        )
    assert raised.value.code == E.ERROR_CODE_INVALID_PAGE_TOKEN


async def test_get_work_item_reads_the_queue(env: GatewayEnv) -> None:
    response = await completed(env)
    got = await env.handler.get_work_item(
        work_messages_pb2.GetWorkItemRequest(work_item_id=response.work_item_id),
        ctx_for("GetWorkItem"),
    )
    assert got.work_item.id == response.work_item_id
    assert got.work_item.state in (
        work_state_pb2.WORK_STATE_LEASED,
        work_state_pb2.WORK_STATE_COMPLETED,
    )
    with pytest.raises(QmtlError) as raised:
        await env.handler.get_work_item(
            work_messages_pb2.GetWorkItemRequest(work_item_id="nope"), ctx_for("GetWorkItem")
        )
    assert raised.value.code == E.ERROR_CODE_NOT_FOUND


async def list_all(env: GatewayEnv, **filters: object) -> list[event_pb2.Event]:
    events: list[event_pb2.Event] = []
    token = ""
    while True:
        request = event_messages_pb2.ListEventsRequest(**filters)  # type: ignore[arg-type]
        request.page.page_size = 2
        request.page.page_token = token
        page = await env.handler.list_events(request, ctx_for("ListEvents"))
        assert len(page.events) <= 2
        events.extend(page.events)
        token = page.page_info.next_page_token
        if not token:
            return events


async def test_list_events_filters_by_strategy_type_and_time_and_pages(env: GatewayEnv) -> None:
    first = await completed(env, seed=1)
    await env.workers[0].stop()
    mark = time.time()
    second, _ = await env.submit(submit_request(seed=2))
    everything = await list_all(env)
    assert [e.strategy_state_changed.to_state for e in everything] == [QUEUED, 2, COMPLETED, QUEUED]
    assert all(e.type == STATE_CHANGED for e in everything)
    of_first = await list_all(env, strategy_id=first.strategy_id)
    assert of_first == everything[:3]
    assert await list_all(env, types=["qmtl.gateway.dag_changed"]) == []
    assert await list_all(env, types=[STATE_CHANGED]) == everything
    since = timestamp_pb2.Timestamp()
    since.FromNanoseconds(int(mark * 1e9))
    later = await list_all(env, since=since)
    assert [e.strategy_state_changed.strategy_id for e in later] == [second.strategy_id]


async def test_get_queues_by_tag_asks_the_dag_manager(env: GatewayEnv) -> None:
    answer = await env.handler.get_queues_by_tag(
        queue_messages_pb2.GetQueuesByTagRequest(tags=["btc"], interval=60),
        ctx_for("GetQueuesByTag"),
    )
    assert [q.queue for q in answer.queues] == ["q.btc"]
    none = await env.handler.get_queues_by_tag(
        queue_messages_pb2.GetQueuesByTagRequest(tags=["btc"], interval=300),
        ctx_for("GetQueuesByTag"),
    )
    assert list(none.queues) == []


async def test_dry_run_diffs_without_storing_or_queueing(env: GatewayEnv) -> None:
    request = submit_request()
    answer = await env.handler.dry_run_strategy(
        strategy_messages_pb2.DryRunStrategyRequest(
            dag=request.dag, node_ids_crc32=request.node_ids_crc32
        ),
        ctx_for("DryRunStrategy"),
    )
    assert answer.diff.dry_run
    assert set(answer.diff.queue_map.queues) == {n.node_id for n in request.dag.nodes}
    assert (await env.store.list(limit=10))[0] == []
    assert (await env.queue.stats()).ready == 0
    bad = strategy_messages_pb2.DryRunStrategyRequest(dag=request.dag, node_ids_crc32=1)
    with pytest.raises(QmtlError) as raised:
        await env.handler.dry_run_strategy(bad, ctx_for("DryRunStrategy"))
    assert raised.value.code == E.ERROR_CODE_CHECKSUM_MISMATCH


async def test_health_answers_from_the_reporter_or_is_unimplemented(env: GatewayEnv) -> None:
    with pytest.raises(QmtlError) as raised:
        await env.handler.get_health(health_messages_pb2.GetHealthRequest(), ctx_for("GetHealth"))
    assert raised.value.code == E.ERROR_CODE_UNIMPLEMENTED
    reporter = HealthReporter("gateway", instance_id="gw-1", version="0.1.0", contract_version="v1")
    reporter.add_check("strategy_store", env.store.ping)
    reporter.mark_booted()
    handler = GatewayHandler(env.store, env.queue, env.caller, health=reporter)
    health = await handler.get_health(health_messages_pb2.GetHealthRequest(), ctx_for("GetHealth"))
    assert health.health.state == health_pb2.HEALTH_STATE_OK
    assert health.health.ready
    detail = await handler.get_health_detail(
        health_messages_pb2.GetHealthDetailRequest(), ctx_for("GetHealthDetail")
    )
    assert [c.name for c in detail.health.components] == ["strategy_store"]
