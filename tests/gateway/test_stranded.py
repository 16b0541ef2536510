"""requeue_stranded: a strategy accepted but left without a live work item is queued again, and
one whose job died under it is FAILED."""

from __future__ import annotations

import dataclasses

import pytest

from qmtl.common.v1 import error_pb2
from qmtl.runtime.workqueue import QueueUnavailableError
from qmtl.services.gateway.stranded import requeue_stranded
from qmtl.work.v1 import work_item_pb2, work_state_pb2
from tests.gateway.gateway_support import (
    COMPLETED,
    FAILED,
    PROCESSING,
    QUEUED,
    GatewayEnv,
    RecordingDeliverer,
    submit_request,
)


class QueueDown:
    """Makes the env's queue refuse enqueues, as a Redis outage would."""

    def __init__(self, env: GatewayEnv, monkeypatch: pytest.MonkeyPatch) -> None:
        async def refuse(item: work_item_pb2.WorkItem, key: str) -> None:
            raise QueueUnavailableError("redis is down")

        monkeypatch.setattr(env.queue, "enqueue", refuse)


async def test_a_strategy_stored_while_the_queue_was_down_is_accepted_then_requeued(
    env: GatewayEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patch:
        QueueDown(env, patch)
        response, status = await env.submit(submit_request())
    assert (status, response.state, response.work_item_id) == (202, QUEUED, "")
    report = await requeue_stranded(env.store, env.queue, 0.0, settings=env.settings)
    assert (report.checked, report.requeued, report.failed) == (1, 1, 0)
    stored = await env.strategy(response.strategy_id)
    assert stored.work_item_id
    env.worker()
    await env.wait_for_state(response.strategy_id, COMPLETED)
    again = await requeue_stranded(env.store, env.queue, 0.0, settings=env.settings)
    assert (again.checked, again.requeued) == (0, 0)


async def test_a_replayed_submission_enqueues_what_the_first_could_not(
    env: GatewayEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patch:
        QueueDown(env, patch)
        first, _ = await env.submit(submit_request(idempotency_key="k"))
    replay, _ = await env.submit(submit_request(idempotency_key="k"))
    assert replay.strategy_id == first.strategy_id
    assert replay.work_item_id


async def test_recent_strategies_and_live_jobs_are_left_alone(env: GatewayEnv) -> None:
    response, _ = await env.submit(submit_request())
    recent = await requeue_stranded(env.store, env.queue, 3600.0, settings=env.settings)
    assert (recent.checked, recent.requeued) == (0, 0)
    live = await requeue_stranded(env.store, env.queue, 0.0, settings=env.settings)
    assert (live.checked, live.requeued) == (1, 0)
    assert (await env.strategy(response.strategy_id)).work_item_id == response.work_item_id


async def test_a_job_that_is_gone_is_replaced_once(env: GatewayEnv) -> None:
    response, _ = await env.submit(submit_request())
    # The queue lost the job (retention, or a Redis without its data).
    await env.store.attach_work_item(response.strategy_id, "job-that-is-gone")
    report = await requeue_stranded(env.store, env.queue, 0.0, settings=env.settings)
    assert report.requeued == 1
    replaced = (await env.strategy(response.strategy_id)).work_item_id
    assert replaced not in ("job-that-is-gone", response.work_item_id)
    assert (await requeue_stranded(env.store, env.queue, 0.0, settings=env.settings)).requeued == 0
    env.worker()
    await env.wait_for_state(response.strategy_id, COMPLETED)


async def test_a_processing_strategy_whose_job_died_is_failed_with_the_jobs_error(
    env: GatewayEnv,
) -> None:
    deliverer = RecordingDeliverer()
    response, _ = await env.submit(submit_request(callback_url="https://hooks.example.com/x"))
    await env.store.transition(response.strategy_id, expect=(QUEUED,), to=PROCESSING)
    # Its holders crashed until the reaper dead-lettered it.
    lease = await env.queue.lease("crashed", 5.0)
    assert lease is not None
    lost = error_pb2.ErrorDetail(code="E_LEASE_EXPIRED", message="lease expired", retryable=True)
    assert (
        await env.queue.fail(lease.job_id, lease.token, lost, retryable=False)
        == work_state_pb2.WORK_STATE_DEAD
    )
    report = await requeue_stranded(env.store, env.queue, 0.0, settings=env.settings)
    assert (report.failed, report.requeued) == (1, 0)
    failed = await env.strategy(response.strategy_id)
    assert failed.state == FAILED
    assert failed.error.code == "E_LEASE_EXPIRED"
    event = (await env.state_events(response.strategy_id))[-1]
    assert event.strategy_state_changed.to_state == FAILED
    env.worker(callbacks=deliverer)
    from tests.polling import eventually

    async def called_back() -> bool:
        return len(deliverer.items) == 1

    await eventually(called_back, what="the FAILED callback")


async def test_the_workers_sweep_requeues_on_its_own(
    env: GatewayEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patch:
        QueueDown(env, patch)
        response, _ = await env.submit(submit_request())
    from qmtl.services.gateway.worker import SubmitWorker

    settings = dataclasses.replace(env.settings, stranded_after=0.01)
    worker = SubmitWorker(
        env.store,
        env.queue,
        env.caller,
        worker_id="sweeper",
        settings=settings,
        sweep_interval=0.02,
    )
    worker.start()
    env.workers.append(worker)
    await env.wait_for_state(response.strategy_id, COMPLETED)
