"""The dead letter under contract, on every adapter: redrive, purge_dead, the retention the
reaper enforces, and the DEAD count in stats (issue 8, item 4).

Ages come from the manual clock of conftest.py: a job dies at the clock's time, and only
advancing it makes the job older.
"""

from __future__ import annotations

import asyncio
import math
import uuid

import pytest

from qmtl.common.v1 import error_pb2
from qmtl.runtime.endpoints import ServiceEndpoints
from qmtl.runtime.workqueue import (
    ALL_DEAD,
    InvalidJobError,
    LeaseLostError,
    QueueStats,
    RedisWorkQueue,
    Redriven,
    WorkQueue,
    reap_until_clean,
    redis_adapter,
    run_reaper,
)
from qmtl.runtime.workqueue.dead_letter import DEAD_LETTER_CHUNK
from qmtl.work.v1 import work_state_pb2
from tests.polling import eventually

from .conftest import (
    CONTRACT_SETTINGS,
    FixedJitter,
    ManualClock,
    QueueUnderTest,
    connect_redis,
    delete_queue_keys,
)
from .support import make_item

READY = work_state_pb2.WORK_STATE_READY
DEAD = work_state_pb2.WORK_STATE_DEAD
TTL = 10.0
FATAL = error_pb2.ErrorDetail(code="E_TEST_FATAL", message="never works", retryable=False)


async def kill(q: WorkQueue, key: str, payload: bytes = b"payload") -> str:
    """Enqueues a job under `key` and dead-letters it at once; returns its id."""
    job_id = (await q.enqueue(make_item(payload), key)).job_id
    lease = await q.lease("w1", TTL)
    assert lease is not None
    assert lease.job_id == job_id, "the queue was expected to be empty"
    assert await q.fail(job_id, lease.token, FATAL, retryable=False) == DEAD
    return job_id


async def kill_many(queue_under_test: QueueUnderTest, count: int) -> list[str]:
    """`count` dead jobs in few calls: one attempt each, leases left to expire and be reaped."""
    q = queue_under_test.queue
    items = [(make_item(max_attempts=1), f"mass-{i}") for i in range(count)]
    ids = [result.job_id for result in await q.enqueue_many(items)]
    assert len(await q.lease_many("w1", 1.0, count)) == count
    queue_under_test.clock.advance(2.0)
    assert await reap_until_clean(q) == count
    return ids


class TestRedrive:
    async def test_moves_a_dead_job_back_to_ready_with_attempts_reset_and_its_error_kept(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q = queue_under_test.queue
        job_id = await kill(q, "k")
        assert (await q.stats()).dead == 1

        assert await q.redrive([job_id]) == Redriven(redriven=(job_id,))

        job = await q.get(job_id)
        assert job is not None
        assert (job.state, job.attempts, job.error.code) == (READY, 0, "E_TEST_FATAL")
        assert not job.HasField("finished_at")
        assert await q.stats() == QueueStats(ready=1, leased=0, delayed=0, dead=0)
        lease = await q.lease("w2", TTL)
        assert lease is not None
        assert (lease.job_id, lease.attempt) == (job_id, 1)
        assert await q.complete(job_id, lease.token, b"second life") is True

    async def test_reports_unknown_and_not_dead_ids_instead_of_raising(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q = queue_under_test.queue
        dead = await kill(q, "dead")
        waiting = (await q.enqueue(make_item(), "waiting")).job_id

        answer = await q.redrive([dead, waiting, "no-such-job", dead])

        assert answer == Redriven(redriven=(dead,), not_dead=(waiting,), not_found=("no-such-job",))
        assert answer.count == 1
        job = await q.get(waiting)
        assert job is not None
        assert (job.state, job.attempts) == (READY, 0)

    async def test_a_redriven_job_waits_behind_the_jobs_already_ready(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q = queue_under_test.queue
        dead = await kill(q, "dead")
        waiting = (await q.enqueue(make_item(), "waiting")).job_id
        await q.redrive([dead])

        first, second = await q.lease("w1", TTL), await q.lease("w1", TTL)

        assert first is not None
        assert second is not None
        assert (first.job_id, second.job_id) == (waiting, dead)

    async def test_the_lease_that_killed_the_job_cannot_settle_it_after_a_redrive(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q = queue_under_test.queue
        await q.enqueue(make_item(), "k")
        lease = await q.lease("w1", TTL)
        assert lease is not None
        await q.fail(lease.job_id, lease.token, FATAL, retryable=False)
        await q.redrive([lease.job_id])

        with pytest.raises(LeaseLostError):
            await q.complete(lease.job_id, lease.token, b"late")
        with pytest.raises(LeaseLostError):
            await q.fail(lease.job_id, lease.token, FATAL, retryable=False)
        job = await q.get(lease.job_id)
        assert job is not None
        assert job.state == READY

    async def test_all_dead_redrives_every_dead_job_oldest_death_first(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q, clock = queue_under_test.queue, queue_under_test.clock
        deaths = []
        for key in ("a", "b", "c"):
            deaths.append(await kill(q, key))
            clock.advance(1.0)
        waiting = (await q.enqueue(make_item(), "waiting")).job_id

        answer = await q.redrive(ALL_DEAD)

        assert answer == Redriven(redriven=tuple(deaths))
        assert await q.stats() == QueueStats(ready=4, leased=0, delayed=0, dead=0)
        leased = [lease.job_id for lease in await q.lease_many("w1", TTL, 4)]
        assert leased == [waiting, *deaths]

    async def test_a_lone_string_is_refused_rather_than_read_as_characters(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        with pytest.raises(InvalidJobError):
            await queue_under_test.queue.redrive("job-id")

    async def test_redrives_more_jobs_than_one_step_takes(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q = queue_under_test.queue
        count = 2 * DEAD_LETTER_CHUNK + 7
        ids = await kill_many(queue_under_test, count)
        half = ids[: count // 2]

        by_id = await q.redrive(half)
        rest = await q.redrive(ALL_DEAD)

        assert by_id.redriven == tuple(half)
        assert sorted(rest.redriven) == sorted(ids[count // 2 :])
        assert await q.stats() == QueueStats(ready=count, leased=0, delayed=0, dead=0)


class TestPurgeDead:
    async def test_deletes_jobs_dead_at_least_that_long_and_frees_their_keys(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q, clock = queue_under_test.queue, queue_under_test.clock
        old = await kill(q, "old")
        clock.advance(30.0)  # still within the 60 s idempotency window of both keys
        young = await kill(q, "young")

        assert await q.purge_dead(older_than=20.0) == 1

        assert await q.get(old) is None
        assert (await q.get(young)) is not None
        assert (await q.stats()).dead == 1
        again = await q.enqueue(make_item(), "old")
        assert again.created
        assert again.job_id != old
        assert (await q.enqueue(make_item(), "young")).job_id == young

    async def test_leaves_a_claim_that_now_names_another_job(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q, clock = queue_under_test.queue, queue_under_test.clock
        await kill(q, "reused")
        clock.advance(CONTRACT_SETTINGS.idempotency_window + 1)
        newer = await q.enqueue(make_item(), "reused")
        assert newer.created

        assert await q.purge_dead(older_than=10.0) == 1

        repeat = await q.enqueue(make_item(), "reused")
        assert (repeat.job_id, repeat.created) == (newer.job_id, False)

    async def test_zero_purges_every_dead_job_and_nothing_else(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q = queue_under_test.queue
        dead = [await kill(q, f"d{i}") for i in range(3)]
        waiting = (await q.enqueue(make_item(), "waiting")).job_id

        assert await q.purge_dead(0.0) == 3
        assert await q.purge_dead(0.0) == 0

        assert [await q.get(job_id) for job_id in dead] == [None, None, None]
        assert (await q.get(waiting)) is not None
        assert await q.stats() == QueueStats(ready=1, leased=0, delayed=0, dead=0)

    async def test_an_undecodable_dead_job_is_purged_too(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q = queue_under_test.queue
        bad = (await q.enqueue(make_item(), "bad")).job_id
        await queue_under_test.corrupt_item(bad, b"\x0a\x05ab")
        assert await q.lease("w1", TTL) is None  # dead-lettered, not handed out

        assert await q.purge_dead(0.0) == 1
        assert await q.get(bad) is None

    async def test_the_default_age_is_the_dead_retention(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q, clock = queue_under_test.queue, queue_under_test.clock
        job_id = await kill(q, "k")
        clock.advance(CONTRACT_SETTINGS.dead_retention - 1)
        assert await q.purge_dead() == 0
        clock.advance(1)
        assert await q.purge_dead() == 1
        assert await q.get(job_id) is None

    @pytest.mark.parametrize("older_than", [-1.0, math.nan, math.inf, 1e300])
    async def test_an_age_that_is_not_a_bounded_number_of_seconds_is_refused(
        self, queue_under_test: QueueUnderTest, older_than: float
    ) -> None:
        q = queue_under_test.queue
        job_id = await kill(q, "k")
        with pytest.raises(InvalidJobError):
            await q.purge_dead(older_than)
        assert (await q.get(job_id)) is not None

    async def test_purges_more_jobs_than_one_step_takes(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q = queue_under_test.queue
        count = 2 * DEAD_LETTER_CHUNK + 7
        ids = await kill_many(queue_under_test, count)

        assert await q.purge_dead(0.0) == count

        assert await q.stats() == QueueStats(ready=0, leased=0, delayed=0, dead=0)
        assert await q.get(ids[-1]) is None
        assert (await q.enqueue(make_item(), "mass-0")).created


class TestRetention:
    async def test_the_reaper_purges_dead_jobs_once_past_the_dead_retention_and_no_sooner(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q, clock = queue_under_test.queue, queue_under_test.clock
        expired = await kill(q, "expired")
        clock.advance(CONTRACT_SETTINGS.dead_retention)
        young = await kill(q, "young")
        stop = asyncio.Event()
        reaper = asyncio.create_task(run_reaper(q, interval=0.01, stop=stop))
        try:

            async def purged() -> bool:
                if reaper.done():
                    reaper.result()  # surfaces the reaper's own failure
                return await q.get(expired) is None

            await eventually(purged, what="the reaper to purge the expired dead job")
        finally:
            stop.set()
            await asyncio.wait_for(reaper, 10)
        assert (await q.get(young)) is not None
        assert (await q.stats()).dead == 1


class TestDamagedDeadLetterIndex:
    """Redis only: the dead zset is an index beside the job hashes, and can outlive one."""

    async def test_redrive_and_purge_of_all_skip_an_entry_whose_job_is_gone(
        self, endpoints: ServiceEndpoints, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Small steps, so the damaged entry shares a full step with a live one.
        monkeypatch.setattr(redis_adapter, "DEAD_LETTER_CHUNK", 2)
        client = await connect_redis(endpoints.redis_url)
        clock, jitter = ManualClock(), FixedJitter()
        q = RedisWorkQueue(
            client, f"contract-{uuid.uuid4().hex}", CONTRACT_SETTINGS, clock=clock, jitter=jitter
        )
        try:
            ids = []
            for i in range(5):
                ids.append(await kill(q, f"k{i}"))
                clock.advance(1.0)
            await client.delete(q.prefix + "job:" + ids[0])

            assert (await q.redrive(ALL_DEAD)).redriven == tuple(ids[1:])
            assert (await q.stats()).dead == 0

            for job_id in ids[1:]:
                lease = await q.lease("w1", TTL)
                assert lease is not None
                assert lease.job_id == job_id
                await q.fail(job_id, lease.token, FATAL, retryable=False)
            await client.zadd(q.prefix + "dead", {"gone": 0})
            assert await q.purge_dead(0.0) == 4
            assert (await q.stats()).dead == 0
        finally:
            await delete_queue_keys(client, q.prefix)
            await client.aclose()
