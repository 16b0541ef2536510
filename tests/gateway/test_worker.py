"""Submit -> SubmitWorker -> DAG Manager Diff -> COMPLETED or FAILED, over the memory backends."""

from __future__ import annotations

import asyncio

import pytest
from google.protobuf import duration_pb2

from qmtl.dag.v1 import strategy_pb2
from qmtl.dagmanager.v1 import diff_messages_pb2
from qmtl.runtime.client_retry import RetryPolicy
from qmtl.runtime.errors import ErrorCode, QmtlError
from qmtl.services.gateway.store.errors import StrategyStoreUnavailableError
from qmtl.work.v1 import work_state_pb2, work_type_pb2
from tests.gateway.gateway_support import (
    COMPLETED,
    FAILED,
    PROCESSING,
    QUEUED,
    STATE_CHANGED,
    GatewayEnv,
    RecordingDeliverer,
    expected_diff,
    gateway_env,
    submit_request,
)
from tests.polling import eventually

E = ErrorCode


def transitions(events: list) -> list[tuple[int, int]]:
    return [
        (e.strategy_state_changed.from_state, e.strategy_state_changed.to_state) for e in events
    ]


def diff_of(env: GatewayEnv, strategy_id: str) -> diff_messages_pb2.DiffRequest:
    [call] = [c for c in env.dag_manager.calls if c.strategy_id == strategy_id]
    return call


async def test_the_worker_diffs_a_submission_to_completed_with_one_completed_event(
    env: GatewayEnv,
) -> None:
    env.worker()
    request = submit_request()
    response, _ = await env.submit(request)
    done = await env.wait_for_state(response.strategy_id, COMPLETED)
    call = diff_of(env, response.strategy_id)
    assert call.dag == request.dag
    assert not call.dry_run
    assert call.node_ids_crc32 == request.node_ids_crc32
    assert done.diff == expected_diff(call)
    assert set(done.diff.queue_map.queues) == {n.node_id for n in request.dag.nodes}
    events = await env.state_events(response.strategy_id)
    assert transitions(events) == [(0, QUEUED), (QUEUED, PROCESSING), (PROCESSING, COMPLETED)]
    assert events[-1].strategy_state_changed.diff == done.diff
    assert events[-1].strategy_state_changed.work_item_id == response.work_item_id
    completed_in_outbox = [
        e for e in await env.outbox_events() if e.strategy_state_changed.to_state == COMPLETED
    ]
    assert [e.id for e in completed_in_outbox] == [events[-1].id]

    async def job_done() -> bool:
        item = await env.queue.get(response.work_item_id)
        return item is not None and item.state == work_state_pb2.WORK_STATE_COMPLETED

    await eventually(job_done, what="the diff job to complete")
    item = await env.queue.get(response.work_item_id)
    assert item is not None
    assert item.attempts == 1


async def test_wait_timeout_answers_200_with_the_diff_when_the_worker_finishes_in_time(
    env: GatewayEnv,
) -> None:
    env.worker()
    request = submit_request()
    request.wait_timeout.CopyFrom(duration_pb2.Duration(seconds=10))
    response, status = await env.submit(request)
    assert (status, response.state) == (200, COMPLETED)
    assert response.diff == (await env.strategy(response.strategy_id)).diff
    assert len(response.diff.queue_map.queues) == 2


async def test_wait_timeout_answers_202_queued_when_no_worker_finishes_in_time(
    env: GatewayEnv,
) -> None:
    request = submit_request()
    request.wait_timeout.CopyFrom(duration_pb2.Duration(nanos=100_000_000))
    loop = asyncio.get_running_loop()
    started = loop.time()
    response, status = await env.submit(request)
    assert (status, response.state) == (202, QUEUED)
    assert not response.HasField("diff")
    assert loop.time() - started >= 0.1


class FlakyGets:
    """The store's `get` failing for now (as a Redis call cut short does) `times` times."""

    def __init__(self, env: GatewayEnv, times: int) -> None:
        self.real, self.left = env.store.get, times

    async def __call__(self, strategy_id: str) -> strategy_pb2.Strategy | None:
        if self.left > 0:
            self.left -= 1
            raise StrategyStoreUnavailableError("Redis did not answer within 5s")
        return await self.real(strategy_id)


async def test_a_store_failing_every_poll_of_the_wait_answers_202_not_503(
    env: GatewayEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The submission is stored and queued before the wait: it was accepted.
    monkeypatch.setattr(env.store, "get", FlakyGets(env, times=1_000_000))
    request = submit_request()
    request.wait_timeout.CopyFrom(duration_pb2.Duration(nanos=200_000_000))
    response, status = await env.submit(request)
    assert (status, response.state) == (202, QUEUED)
    monkeypatch.undo()
    assert (await env.strategy(response.strategy_id)).state == QUEUED


async def test_polls_the_store_fails_for_now_do_not_end_the_wait(
    env: GatewayEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    flaky = FlakyGets(env, times=3)
    monkeypatch.setattr(env.store, "get", flaky)
    env.worker()
    request = submit_request()
    request.wait_timeout.CopyFrom(duration_pb2.Duration(seconds=10))
    response, status = await env.submit(request)
    assert (status, response.state) == (200, COMPLETED)
    assert flaky.left == 0


async def test_the_wait_is_capped_by_the_settings() -> None:
    async for env in gateway_env(max_wait=0.05):
        request = submit_request()
        request.wait_timeout.CopyFrom(duration_pb2.Duration(seconds=3600))
        loop = asyncio.get_running_loop()
        started = loop.time()
        _, status = await env.submit(request)
        assert status == 202
        assert loop.time() - started < 5


async def test_a_wait_ends_on_another_instances_worker_by_polling_the_store() -> None:
    # This handler's Completions is never notified: the second instance's worker has its own.
    async for env in gateway_env():
        async for other in gateway_env():
            other.store = env.store
            other.queue = env.queue
            other.completions = type(env.completions)()
            other.worker()
            request = submit_request()
            request.wait_timeout.CopyFrom(duration_pb2.Duration(seconds=10))
            response, status = await env.submit(request)
            assert (status, response.state) == (200, COMPLETED)


async def test_a_retryable_dag_manager_error_is_retried_then_completes(env: GatewayEnv) -> None:
    env.dag_manager.failures = [QmtlError.unavailable("the graph is restarting")]
    env.worker()
    response, _ = await env.submit(submit_request())
    done = await env.wait_for_state(response.strategy_id, COMPLETED, FAILED)
    assert done.state == COMPLETED
    assert len(env.dag_manager.calls) == 2
    item = await env.queue.get(response.work_item_id)
    assert item is not None
    assert item.attempts == 2
    assert item.error.code == "E_UNAVAILABLE"  # the first attempt's, kept after the success
    events = await env.state_events(response.strategy_id)
    assert transitions(events) == [(0, QUEUED), (QUEUED, PROCESSING), (PROCESSING, COMPLETED)]


async def test_a_brief_dag_manager_outage_is_absorbed_by_the_callers_retry_of_diff() -> None:
    # Diff is idempotency_level IDEMPOTENT: the caller retries it within the call's deadline,
    # so one unavailable answer costs no job attempt.
    fast = RetryPolicy(max_attempts=3, initial_backoff=0.001, max_backoff=0.001)
    async for env in gateway_env(caller_retry=fast):
        env.dag_manager.failures = [QmtlError.unavailable("the graph is restarting")]
        env.worker()
        response, _ = await env.submit(submit_request())
        done = await env.wait_for_state(response.strategy_id, COMPLETED, FAILED)
        assert done.state == COMPLETED
        assert len(env.dag_manager.calls) == 2
        item = await env.queue.get(response.work_item_id)
        assert item is not None
        assert item.attempts == 1


async def test_a_non_retryable_dag_manager_error_fails_the_strategy_with_its_code(
    env: GatewayEnv,
) -> None:
    env.dag_manager.failures = [
        QmtlError(E.ERROR_CODE_DAG_INVALID, "dag.nodes[0].spec.dependencies[0]: not stored")
    ]
    env.worker()
    response, _ = await env.submit(submit_request())
    failed = await env.wait_for_state(response.strategy_id, FAILED, COMPLETED)
    assert failed.state == FAILED
    assert failed.error.code == "E_DAG_INVALID"
    assert "not stored" in failed.error.message
    assert len(env.dag_manager.calls) == 1
    events = await env.state_events(response.strategy_id)
    assert transitions(events)[-1] == (PROCESSING, FAILED)
    assert events[-1].strategy_state_changed.error.code == "E_DAG_INVALID"

    async def dead() -> bool:
        item = await env.queue.get(response.work_item_id)
        return item is not None and item.state == work_state_pb2.WORK_STATE_DEAD

    await eventually(dead, what="the job to dead-letter")
    item = await env.queue.get(response.work_item_id)
    assert item is not None
    assert item.error.code == "E_DAG_INVALID"


async def test_a_strategy_fails_when_its_attempts_run_out() -> None:
    async for env in gateway_env(diff_max_attempts=3):
        env.dag_manager.failures = [QmtlError.unavailable(f"down {n}") for n in range(5)]
        env.worker()
        response, _ = await env.submit(submit_request())
        failed = await env.wait_for_state(response.strategy_id, FAILED, COMPLETED)
        assert failed.state == FAILED
        assert (failed.error.code, failed.error.message) == ("E_UNAVAILABLE", "down 2")
        assert len(env.dag_manager.calls) == 3
        item = await env.queue.get(response.work_item_id)
        assert item is not None
        assert item.attempts == 3


async def test_two_workers_racing_one_strategy_store_one_completed_event(
    env: GatewayEnv,
) -> None:
    # Two workers holding the same job (a lease that expired under a live worker): both pass
    # PROCESSING, both call Diff, only one COMPLETED transition is stored.
    env.dag_manager.gate = asyncio.Event()
    response, _ = await env.submit(submit_request())
    item = await env.queue.get(response.work_item_id)
    assert item is not None
    item.attempts = 1
    first, second = env.worker("a", start=False), env.worker("b", start=False)
    racing = [asyncio.create_task(w.handle(item)) for w in (first, second)]

    async def both_in_diff() -> bool:
        return env.dag_manager.entered == 2

    await eventually(both_in_diff, what="both workers in Diff")
    env.dag_manager.gate.set()
    results = await asyncio.gather(*racing)
    done = await env.strategy(response.strategy_id)
    assert done.state == COMPLETED
    assert results[0] == results[1] == done.diff.SerializeToString(deterministic=True)
    events = await env.state_events(response.strategy_id)
    assert [t for t in transitions(events) if t[1] == COMPLETED] == [(PROCESSING, COMPLETED)]
    assert transitions(events).count((QUEUED, PROCESSING)) == 1
    outbox = await env.outbox_events()
    assert sum(e.strategy_state_changed.to_state == COMPLETED for e in outbox) == 1


async def test_a_rerun_job_of_a_completed_strategy_changes_nothing(env: GatewayEnv) -> None:
    env.worker()
    response, _ = await env.submit(submit_request())
    done = await env.wait_for_state(response.strategy_id, COMPLETED)
    item = await env.queue.get(response.work_item_id)
    assert item is not None
    events_before = await env.state_events()
    assert await env.workers[0].handle(item) == done.diff.SerializeToString(deterministic=True)
    assert await env.state_events() == events_before
    assert len(env.dag_manager.calls) == 1


async def test_the_callback_is_queued_when_a_url_is_set(env: GatewayEnv) -> None:
    deliverer = RecordingDeliverer()
    env.worker(callbacks=deliverer)
    response, _ = await env.submit(submit_request(callback_url="https://hooks.example.com/cb"))
    await env.wait_for_state(response.strategy_id, COMPLETED)

    async def delivered() -> bool:
        return len(deliverer.items) == 1

    await eventually(delivered, what="the callback job")
    [job] = deliverer.items
    assert job.type == work_type_pb2.WORK_TYPE_CALLBACK_DELIVERY
    assert job.strategy_id == response.strategy_id
    from qmtl.work.v1 import callback_delivery_pb2

    delivery = callback_delivery_pb2.CallbackDelivery.FromString(job.payload)
    assert delivery.url == "https://hooks.example.com/cb"
    completed = (await env.state_events(response.strategy_id))[-1]
    assert delivery.event == completed
    assert delivery.event.type == STATE_CHANGED


async def test_no_callback_is_queued_without_a_url(env: GatewayEnv) -> None:
    deliverer = RecordingDeliverer()
    worker = env.worker(callbacks=deliverer)
    response, _ = await env.submit(submit_request())
    await env.wait_for_state(response.strategy_id, COMPLETED)
    await worker.stop()
    stats = await env.queue.stats()
    # A callback job would have been queued before the diff job completed.
    assert (stats.ready, stats.delayed, stats.leased, stats.dead) == (0, 0, 0, 0)
    assert deliverer.items == []


async def test_a_failure_is_called_back_too(env: GatewayEnv) -> None:
    env.dag_manager.failures = [QmtlError(E.ERROR_CODE_DAG_INVALID, "bad")]
    deliverer = RecordingDeliverer()
    env.worker(callbacks=deliverer)
    response, _ = await env.submit(submit_request(callback_url="https://hooks.example.com/cb"))
    await env.wait_for_state(response.strategy_id, FAILED)

    async def delivered() -> bool:
        return len(deliverer.items) == 1

    await eventually(delivered, what="the callback job")


@pytest.mark.parametrize("work_type", [work_type_pb2.WORK_TYPE_OTHER])
async def test_a_job_of_another_type_is_dead_lettered(env: GatewayEnv, work_type: int) -> None:
    from qmtl.runtime.workqueue import JobFailedError
    from qmtl.work.v1 import work_item_pb2

    worker = env.worker(start=False)
    with pytest.raises(JobFailedError) as raised:
        await worker.handle(work_item_pb2.WorkItem(type=work_type))  # type: ignore[arg-type]
    assert not raised.value.retryable


async def test_a_retry_job_leased_before_it_is_attached_is_processed(env: GatewayEnv) -> None:
    from qmtl.services.gateway.submit import diff_job, diff_key

    env.dag_manager.failures = [QmtlError(E.ERROR_CODE_DAG_INVALID, "not yet")]
    worker = env.worker()
    response, _ = await env.submit(submit_request())
    await env.wait_for_state(response.strategy_id, FAILED)
    await worker.stop()
    failed = await env.store.transition(response.strategy_id, expect=(FAILED,), to=QUEUED)
    # RetryStrategy's enqueue happened; its attach_work_item has not yet.
    queued = await env.queue.enqueue(
        diff_job(failed, max_attempts=3), diff_key(failed.strategy_id, response.work_item_id)
    )
    lease = await env.queue.lease("w", 5.0)
    assert lease is not None
    assert lease.job_id == queued.job_id
    await env.worker("w2", start=False).handle(lease.item)
    assert (await env.strategy(response.strategy_id)).state == COMPLETED


async def test_a_stale_job_of_a_replaced_work_item_changes_nothing(env: GatewayEnv) -> None:
    from qmtl.runtime.workqueue import JobFailedError

    response, _ = await env.submit(submit_request())
    item = await env.queue.get(response.work_item_id)
    assert item is not None
    await env.store.attach_work_item(response.strategy_id, "a-newer-job")
    with pytest.raises(JobFailedError) as raised:
        await env.worker(start=False).handle(item)
    assert (raised.value.code, raised.value.retryable) == ("E_INVALID_STATE", False)
    assert (await env.strategy(response.strategy_id)).state == QUEUED
    assert env.dag_manager.calls == []
