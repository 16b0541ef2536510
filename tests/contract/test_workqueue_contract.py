"""The WorkQueue contract: every adapter (in-memory, real Redis) behaves exactly like this.

Time is a manual clock shared with the adapter, so leases expire and backoffs elapse only
when a test advances it; the jitter draw is pinned the same way.
"""

from __future__ import annotations

import asyncio

import pytest

from qmtl.common.v1 import error_pb2
from qmtl.runtime.workqueue import (
    CompleteOutcome,
    Completion,
    InvalidJobError,
    JobNotFoundError,
    LeaseLostError,
    QueueStats,
)
from qmtl.runtime.workqueue.model import to_ms
from qmtl.work.v1 import work_state_pb2

from .conftest import CONTRACT_SETTINGS, QueueUnderTest
from .support import make_item

READY = work_state_pb2.WORK_STATE_READY
LEASED = work_state_pb2.WORK_STATE_LEASED
DELAYED = work_state_pb2.WORK_STATE_DELAYED
COMPLETED = work_state_pb2.WORK_STATE_COMPLETED
DEAD = work_state_pb2.WORK_STATE_DEAD

TTL = 10.0
BASE = CONTRACT_SETTINGS.backoff.base
BOOM = error_pb2.ErrorDetail(code="E_TEST_BOOM", message="boom", retryable=True)


def ms(seconds: float) -> int:
    return to_ms(seconds)


class TestEnqueue:
    async def test_creates_a_ready_job_with_the_queue_fields_set(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q = queue_under_test.queue
        result = await q.enqueue(make_item(b"p1", strategy_id="s-1"), "key-1")

        assert result.created
        job = await q.get(result.job_id)
        assert job is not None
        assert job.id == result.job_id
        assert (job.state, job.attempts) == (READY, 0)
        assert job.max_attempts == CONTRACT_SETTINGS.default_max_attempts
        assert (job.idempotency_key, job.payload, job.strategy_id) == ("key-1", b"p1", "s-1")
        assert job.created_at.ToMilliseconds() == ms(queue_under_test.clock())
        assert await q.stats() == QueueStats(ready=1, leased=0, delayed=0, dead=0)

    async def test_ignores_queue_owned_fields_set_by_the_producer(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q = queue_under_test.queue
        forged = make_item(id="forged-id", state=DEAD, attempts=7, lease_owner="nobody")
        result = await q.enqueue(forged, "key-1")

        job = await q.get(result.job_id)
        assert job is not None
        assert result.job_id != "forged-id"
        assert (job.state, job.attempts, job.lease_owner) == (READY, 0, "")

    async def test_a_duplicate_key_within_the_window_returns_the_first_job_and_changes_nothing(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        # The same item again; another item under the key is a conflict (test_workqueue_limits).
        q, clock = queue_under_test.queue, queue_under_test.clock
        first = await q.enqueue(make_item(b"first"), "key-1")
        clock.advance(CONTRACT_SETTINGS.idempotency_window - 1)

        again = await q.enqueue(make_item(b"first"), "key-1")

        assert (again.job_id, again.created) == (first.job_id, False)
        job = await q.get(first.job_id)
        assert job is not None
        assert job.payload == b"first"
        assert await q.stats() == QueueStats(ready=1, leased=0, delayed=0, dead=0)

    async def test_ten_enqueues_with_one_key_make_one_job(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q = queue_under_test.queue
        results = await asyncio.gather(*(q.enqueue(make_item(), "same-key") for _ in range(10)))

        assert len({r.job_id for r in results}) == 1
        assert sum(r.created for r in results) == 1
        assert await q.stats() == QueueStats(ready=1, leased=0, delayed=0, dead=0)

    async def test_a_key_makes_a_new_job_once_its_window_has_passed(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q, clock = queue_under_test.queue, queue_under_test.clock
        first = await q.enqueue(make_item(), "key-1")
        clock.advance(CONTRACT_SETTINGS.idempotency_window)

        later = await q.enqueue(make_item(), "key-1")

        assert later.created
        assert later.job_id != first.job_id
        assert (await q.stats()).ready == 2

    async def test_enqueue_many_dedupes_within_the_batch_and_against_earlier_jobs(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q = queue_under_test.queue
        earlier = await q.enqueue(make_item(), "a")

        results = await q.enqueue_many(
            [(make_item(), "a"), (make_item(), "b"), (make_item(), "b"), (make_item(), "c")]
        )

        assert [r.created for r in results] == [False, True, False, True]
        assert results[0].job_id == earlier.job_id
        assert results[1].job_id == results[2].job_id
        assert (await q.stats()).ready == 3

    async def test_an_empty_idempotency_key_is_refused(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        with pytest.raises(InvalidJobError) as raised:
            await queue_under_test.queue.enqueue(make_item(), "")
        assert raised.value.retryable is False
        assert (await queue_under_test.queue.stats()).ready == 0

    async def test_a_negative_max_attempts_is_refused(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        with pytest.raises(InvalidJobError):
            await queue_under_test.queue.enqueue(make_item(max_attempts=-1), "k")


class TestLease:
    async def test_an_empty_queue_has_nothing_to_lease(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        assert await queue_under_test.queue.lease("w1", TTL) is None

    async def test_hands_out_the_oldest_ready_job_first(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q = queue_under_test.queue
        ids = [(await q.enqueue(make_item(), f"k{i}")).job_id for i in range(3)]

        leased = [await q.lease("w1", TTL) for _ in range(3)]

        assert [lease.job_id for lease in leased if lease] == ids

    async def test_a_lease_carries_its_deadline_owner_attempt_and_payload(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q, clock = queue_under_test.queue, queue_under_test.clock
        job_id = (await q.enqueue(make_item(b"work"), "k")).job_id

        lease = await q.lease("worker-7", TTL)

        assert lease is not None
        assert lease.job_id == job_id
        assert ms(lease.deadline) == ms(clock()) + ms(TTL)
        assert (lease.item.state, lease.item.attempts, lease.attempt) == (LEASED, 1, 1)
        assert lease.item.lease_owner == "worker-7"
        assert lease.item.lease_deadline.ToMilliseconds() == ms(lease.deadline)
        assert lease.item.payload == b"work"
        stored = await q.get(job_id)
        assert stored is not None
        assert (stored.state, stored.attempts, stored.lease_owner) == (LEASED, 1, "worker-7")

    async def test_a_leased_job_is_not_handed_out_again_while_its_lease_holds(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q, clock = queue_under_test.queue, queue_under_test.clock
        await q.enqueue(make_item(), "k")
        assert await q.lease("w1", TTL) is not None
        clock.advance(TTL - 0.001)
        await q.reap_expired()

        assert await q.lease("w2", TTL) is None

    async def test_of_five_concurrent_lessees_of_one_job_one_wins(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q = queue_under_test.queue
        job_id = (await q.enqueue(make_item(), "k")).job_id

        leases = await asyncio.gather(*(q.lease(f"w{i}", TTL) for i in range(5)))

        winners = [lease for lease in leases if lease is not None]
        assert [lease.job_id for lease in winners] == [job_id]

    async def test_lease_many_hands_out_up_to_count_oldest_jobs_with_distinct_tokens(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q = queue_under_test.queue
        ids = [r.job_id for r in await q.enqueue_many([(make_item(), f"k{i}") for i in range(5)])]

        first = await q.lease_many("w1", TTL, 3)
        rest = await q.lease_many("w1", TTL, 3)

        assert [lease.job_id for lease in first] == ids[:3]
        assert [lease.job_id for lease in rest] == ids[3:]
        assert len({lease.token for lease in first + rest}) == 5

    @pytest.mark.parametrize(("worker", "ttl", "count"), [("", TTL, 1), ("w", 0, 1), ("w", TTL, 0)])
    async def test_a_lease_without_worker_ttl_or_count_is_refused(
        self, queue_under_test: QueueUnderTest, worker: str, ttl: float, count: int
    ) -> None:
        with pytest.raises(InvalidJobError):
            await queue_under_test.queue.lease_many(worker, ttl, count)


class TestExtend:
    async def test_extend_moves_the_deadline_so_the_reaper_leaves_the_job_alone(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q, clock = queue_under_test.queue, queue_under_test.clock
        await q.enqueue(make_item(), "k")
        lease = await q.lease("w1", TTL)
        assert lease is not None
        clock.advance(TTL / 2)

        deadline = await q.extend(lease.job_id, lease.token, TTL)
        clock.advance(TTL / 2 + 1)
        reaped = await q.reap_expired()

        assert ms(deadline) == ms(clock()) - ms(TTL / 2 + 1) + ms(TTL)
        assert reaped.total == 0
        job = await q.get(lease.job_id)
        assert job is not None
        assert job.state == LEASED
        assert job.lease_deadline.ToMilliseconds() == ms(deadline)

    async def test_extend_with_a_stale_token_raises_lease_lost(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q, clock = queue_under_test.queue, queue_under_test.clock
        await q.enqueue(make_item(), "k")
        old = await q.lease("w1", TTL)
        assert old is not None
        clock.advance(TTL)
        await q.reap_expired()
        assert await q.lease("w2", TTL) is not None

        with pytest.raises(LeaseLostError):
            await q.extend(old.job_id, old.token, TTL)


class TestComplete:
    async def test_complete_records_the_result_and_finishes_the_job(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q, clock = queue_under_test.queue, queue_under_test.clock
        await q.enqueue(make_item(), "k")
        lease = await q.lease("w1", TTL)
        assert lease is not None
        clock.advance(1)

        assert await q.complete(lease.job_id, lease.token, b"result") is True

        job = await q.get(lease.job_id)
        assert job is not None
        assert (job.state, job.result, job.attempts) == (COMPLETED, b"result", 1)
        assert job.finished_at.ToMilliseconds() == ms(clock())
        assert not job.lease_owner
        assert not job.HasField("lease_deadline")
        assert await q.stats() == QueueStats(ready=0, leased=0, delayed=0, dead=0)

    async def test_completing_twice_with_the_same_lease_is_a_no_op(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q, clock = queue_under_test.queue, queue_under_test.clock
        await q.enqueue(make_item(), "k")
        lease = await q.lease("w1", TTL)
        assert lease is not None
        await q.complete(lease.job_id, lease.token, b"first")
        clock.advance(1)

        assert await q.complete(lease.job_id, lease.token, b"second") is False

        job = await q.get(lease.job_id)
        assert job is not None
        assert job.result == b"first"
        assert job.updated_at.ToMilliseconds() == ms(clock()) - ms(1)

    async def test_a_stale_lease_can_neither_complete_nor_fail_the_job(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q, clock = queue_under_test.queue, queue_under_test.clock
        await q.enqueue(make_item(), "k")
        stale = await q.lease("w1", TTL)
        assert stale is not None
        clock.advance(TTL)
        await q.reap_expired()
        current = await q.lease("w2", TTL)
        assert current is not None
        assert current.job_id == stale.job_id

        with pytest.raises(LeaseLostError) as raised:
            await q.complete(stale.job_id, stale.token, b"late")
        assert raised.value.retryable is False
        with pytest.raises(LeaseLostError):
            await q.fail(stale.job_id, stale.token, BOOM, retryable=True)
        with pytest.raises(LeaseLostError):
            await q.release(stale.job_id, stale.token)

        assert await q.complete(current.job_id, current.token, b"ok") is True
        job = await q.get(current.job_id)
        assert job is not None
        assert (job.state, job.result, job.attempts) == (COMPLETED, b"ok", 2)

    async def test_once_completed_its_lease_can_no_longer_fail_or_release_the_job(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q = queue_under_test.queue
        await q.enqueue(make_item(), "k")
        lease = await q.lease("w1", TTL)
        assert lease is not None
        await q.complete(lease.job_id, lease.token, b"done")

        with pytest.raises(LeaseLostError):
            await q.fail(lease.job_id, lease.token, BOOM, retryable=True)
        with pytest.raises(LeaseLostError):
            await q.release(lease.job_id, lease.token)
        job = await q.get(lease.job_id)
        assert job is not None
        assert (job.state, job.result) == (COMPLETED, b"done")

    async def test_a_lease_past_its_deadline_still_completes_until_it_is_reclaimed(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q, clock = queue_under_test.queue, queue_under_test.clock
        await q.enqueue(make_item(), "k")
        lease = await q.lease("w1", TTL)
        assert lease is not None
        clock.advance(TTL * 2)

        assert await q.complete(lease.job_id, lease.token, b"late but unchallenged") is True
        assert (await q.reap_expired()).total == 0

    async def test_completing_an_unknown_job_raises_not_found(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        with pytest.raises(JobNotFoundError):
            await queue_under_test.queue.complete("no-such-job", "no-token", b"")

    async def test_complete_many_answers_per_job(self, queue_under_test: QueueUnderTest) -> None:
        q = queue_under_test.queue
        await q.enqueue_many([(make_item(), "a"), (make_item(), "b")])
        a, b = await q.lease_many("w1", TTL, 2)
        await q.complete(a.job_id, a.token, b"")

        outcomes = await q.complete_many(
            [
                Completion(a.job_id, a.token, b"again"),
                Completion(b.job_id, "not-the-token", b""),
                Completion(b.job_id, b.token, b"b-result"),
                Completion("no-such-job", "t", b""),
            ]
        )

        assert outcomes == [
            CompleteOutcome.ALREADY_COMPLETED,
            CompleteOutcome.LEASE_LOST,
            CompleteOutcome.COMPLETED,
            CompleteOutcome.NOT_FOUND,
        ]
        job = await q.get(b.job_id)
        assert job is not None
        assert job.result == b"b-result"


class TestFail:
    async def test_a_retryable_failure_delays_the_job_by_the_backoff(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q, clock = queue_under_test.queue, queue_under_test.clock
        await q.enqueue(make_item(), "k")
        lease = await q.lease("w1", TTL)
        assert lease is not None

        state = await q.fail(lease.job_id, lease.token, BOOM, retryable=True)

        assert state == DELAYED
        job = await q.get(lease.job_id)
        assert job is not None
        assert (job.state, job.error.code, job.attempts) == (DELAYED, "E_TEST_BOOM", 1)
        assert job.available_at.ToMilliseconds() == ms(clock()) + ms(BASE)
        assert await q.stats() == QueueStats(ready=0, leased=0, delayed=1, dead=0)
        clock.advance(BASE - 0.001)
        assert await q.lease("w1", TTL) is None
        clock.advance(0.001)
        retry = await q.lease("w1", TTL)
        assert retry is not None
        assert (retry.job_id, retry.attempt) == (lease.job_id, 2)

    async def test_backoff_doubles_per_attempt_up_to_the_cap(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q, clock = queue_under_test.queue, queue_under_test.clock
        await q.enqueue(make_item(max_attempts=10), "k")
        delays = []
        for _ in range(6):
            lease = await q.lease("w1", TTL)
            assert lease is not None
            await q.fail(lease.job_id, lease.token, BOOM, retryable=True)
            job = await q.get(lease.job_id)
            assert job is not None
            delay_ms = job.available_at.ToMilliseconds() - ms(clock())
            delays.append(delay_ms / 1000)
            clock.advance(delay_ms / 1000)

        assert delays == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]

    async def test_jitter_shortens_the_delay_by_at_most_the_jitter_fraction(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q, clock = queue_under_test.queue, queue_under_test.clock
        queue_under_test.jitter.draw = 0.999
        await q.enqueue(make_item(), "k")
        lease = await q.lease("w1", TTL)
        assert lease is not None

        await q.fail(lease.job_id, lease.token, BOOM, retryable=True)

        job = await q.get(lease.job_id)
        assert job is not None
        delay_ms = job.available_at.ToMilliseconds() - ms(clock())
        assert delay_ms == int(ms(BASE) * (1 - 0.5 * 0.999))
        assert ms(BASE) / 2 <= delay_ms < ms(BASE)

    async def test_a_poison_job_is_dead_lettered_after_max_attempts(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q, clock = queue_under_test.queue, queue_under_test.clock
        job_id = (await q.enqueue(make_item(), "poison")).job_id
        states = []
        for _ in range(CONTRACT_SETTINGS.default_max_attempts):
            clock.advance(CONTRACT_SETTINGS.backoff.cap)
            lease = await q.lease("w1", TTL)
            assert lease is not None
            states.append(await q.fail(lease.job_id, lease.token, BOOM, retryable=True))

        assert states == [DELAYED, DELAYED, DEAD]
        clock.advance(CONTRACT_SETTINGS.backoff.cap)
        assert await q.lease("w1", TTL) is None
        job = await q.get(job_id)
        assert job is not None
        assert (job.state, job.attempts, job.error.code) == (DEAD, 3, "E_TEST_BOOM")
        assert job.finished_at.ToMilliseconds() > 0
        assert await q.stats() == QueueStats(ready=0, leased=0, delayed=0, dead=1)

    async def test_a_non_retryable_failure_dead_letters_at_once(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q = queue_under_test.queue
        await q.enqueue(make_item(), "k")
        lease = await q.lease("w1", TTL)
        assert lease is not None
        fatal = error_pb2.ErrorDetail(code="E_TEST_FATAL", message="never works")

        assert await q.fail(lease.job_id, lease.token, fatal, retryable=False) == DEAD

        job = await q.get(lease.job_id)
        assert job is not None
        assert (job.state, job.attempts, job.error.code) == (DEAD, 1, "E_TEST_FATAL")
        assert await q.stats() == QueueStats(ready=0, leased=0, delayed=0, dead=1)

    async def test_repeating_a_fail_with_the_same_lease_changes_nothing(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q, clock = queue_under_test.queue, queue_under_test.clock
        await q.enqueue(make_item(), "k")
        lease = await q.lease("w1", TTL)
        assert lease is not None
        await q.fail(lease.job_id, lease.token, BOOM, retryable=True)
        before = await q.get(lease.job_id)
        clock.advance(0.5)

        other = error_pb2.ErrorDetail(code="E_OTHER")
        assert await q.fail(lease.job_id, lease.token, other, retryable=False) == DELAYED

        assert await q.get(lease.job_id) == before

    async def test_a_fail_repeated_after_the_job_was_leased_again_is_too_late(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q, clock = queue_under_test.queue, queue_under_test.clock
        await q.enqueue(make_item(), "k")
        first = await q.lease("w1", TTL)
        assert first is not None
        await q.fail(first.job_id, first.token, BOOM, retryable=True)
        clock.advance(CONTRACT_SETTINGS.backoff.cap)
        second = await q.lease("w2", TTL)
        assert second is not None

        with pytest.raises(LeaseLostError):
            await q.fail(first.job_id, first.token, BOOM, retryable=True)
        job = await q.get(first.job_id)
        assert job is not None
        assert (job.state, job.attempts) == (LEASED, 2)

    async def test_the_items_max_attempts_overrides_the_default(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q = queue_under_test.queue
        await q.enqueue(make_item(max_attempts=1), "k")
        lease = await q.lease("w1", TTL)
        assert lease is not None
        assert lease.item.max_attempts == 1

        assert await q.fail(lease.job_id, lease.token, BOOM, retryable=True) == DEAD


class TestReaper:
    async def test_returns_an_expired_lease_to_ready_and_the_attempt_counts(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q, clock = queue_under_test.queue, queue_under_test.clock
        await q.enqueue(make_item(), "k")
        lease = await q.lease("crashed-worker", TTL)
        assert lease is not None
        clock.advance(TTL)

        reaped = await q.reap_expired()

        assert (reaped.returned, reaped.dead_lettered) == (1, 0)
        job = await q.get(lease.job_id)
        assert job is not None
        assert (job.state, job.attempts, job.lease_owner) == (READY, 1, "")
        assert job.error.code == "E_LEASE_EXPIRED"
        again = await q.lease("w2", TTL)
        assert again is not None
        assert (again.job_id, again.attempt) == (lease.job_id, 2)

    async def test_leaves_live_leases_alone(self, queue_under_test: QueueUnderTest) -> None:
        q, clock = queue_under_test.queue, queue_under_test.clock
        await q.enqueue(make_item(), "k")
        lease = await q.lease("w1", TTL)
        assert lease is not None
        clock.advance(TTL - 0.001)

        assert (await q.reap_expired()).total == 0
        assert await q.complete(lease.job_id, lease.token, b"") is True

    async def test_an_expired_lease_on_the_last_attempt_is_dead_lettered(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q, clock = queue_under_test.queue, queue_under_test.clock
        job_id = (await q.enqueue(make_item(max_attempts=2), "k")).job_id
        for _ in range(2):
            assert await q.lease("w1", TTL) is not None
            clock.advance(TTL)
            last = await q.reap_expired()

        assert (last.returned, last.dead_lettered) == (0, 1)
        job = await q.get(job_id)
        assert job is not None
        assert (job.state, job.attempts, job.error.code) == (DEAD, 2, "E_LEASE_EXPIRED")
        assert await q.stats() == QueueStats(ready=0, leased=0, delayed=0, dead=1)

    async def test_concurrent_reapers_reclaim_each_expired_lease_once(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q, clock = queue_under_test.queue, queue_under_test.clock
        await q.enqueue_many([(make_item(), f"k{i}") for i in range(20)])
        leases = await q.lease_many("w1", TTL, 20)
        clock.advance(TTL)

        rounds = await asyncio.gather(*(q.reap_expired() for _ in range(5)))

        assert sum(r.returned for r in rounds) == 20
        assert await q.stats() == QueueStats(ready=20, leased=0, delayed=0, dead=0)
        jobs = [await q.get(lease.job_id) for lease in leases]
        assert all(job is not None and job.attempts == 1 for job in jobs)

    async def test_a_reclaimed_job_keeps_its_place_ahead_of_newer_jobs(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q, clock = queue_under_test.queue, queue_under_test.clock
        oldest = (await q.enqueue(make_item(), "old")).job_id
        assert await q.lease("w1", TTL) is not None
        newer = (await q.enqueue(make_item(), "new")).job_id
        clock.advance(TTL)
        await q.reap_expired()

        order = [await q.lease("w2", TTL) for _ in range(2)]

        assert [lease.job_id for lease in order if lease] == [oldest, newer]


class TestRelease:
    async def test_release_gives_the_job_back_at_once_without_charging_the_attempt(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q = queue_under_test.queue
        await q.enqueue(make_item(), "k")
        lease = await q.lease("stopping-worker", TTL)
        assert lease is not None

        await q.release(lease.job_id, lease.token)
        await q.release(lease.job_id, lease.token)

        job = await q.get(lease.job_id)
        assert job is not None
        assert (job.state, job.attempts, job.lease_owner) == (READY, 0, "")
        again = await q.lease("w2", TTL)
        assert again is not None
        assert (again.job_id, again.attempt) == (lease.job_id, 1)
        with pytest.raises(LeaseLostError):
            await q.complete(lease.job_id, lease.token, b"")


class TestReads:
    async def test_stats_count_jobs_in_each_state(self, queue_under_test: QueueUnderTest) -> None:
        q = queue_under_test.queue
        await q.enqueue_many([(make_item(), f"k{i}") for i in range(5)])
        done, delayed, dead, _held = await q.lease_many("w1", TTL, 4)
        await q.complete(done.job_id, done.token, b"")
        await q.fail(delayed.job_id, delayed.token, BOOM, retryable=True)
        await q.fail(dead.job_id, dead.token, BOOM, retryable=False)

        assert await q.stats() == QueueStats(ready=1, leased=1, delayed=1, dead=1)

    async def test_get_of_an_unknown_job_returns_none(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        assert await queue_under_test.queue.get("no-such-job") is None


class TestUndecodableItems:
    async def test_an_undecodable_item_is_dead_lettered_and_the_next_job_is_leased(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q = queue_under_test.queue
        bad = (await q.enqueue(make_item(), "bad")).job_id
        good = (await q.enqueue(make_item(b"good"), "good")).job_id
        # A length prefix promising more bytes than follow: not a WorkItem.
        await queue_under_test.corrupt_item(bad, b"\x0a\x05ab")

        lease = await q.lease("w1", TTL)

        assert lease is not None
        assert (lease.job_id, lease.item.payload) == (good, b"good")
        job = await q.get(bad)
        assert job is not None
        assert (job.state, job.error.code, job.error.retryable) == (
            DEAD,
            "E_UNDECODABLE_PAYLOAD",
            False,
        )
        assert "not a qmtl.work.v1.WorkItem" in job.error.message
        assert await q.stats() == QueueStats(ready=0, leased=1, delayed=0, dead=1)
