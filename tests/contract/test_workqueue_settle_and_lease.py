"""complete_and_lease / fail_and_lease: settle the job in hand and lease the next in one step.

Both adapters answer exactly as complete() / fail() followed by lease() would, except that
the settle outcome is answered instead of raised (the next lease is taken either way).
"""

from __future__ import annotations

import pytest

from qmtl.common.v1 import error_pb2
from qmtl.runtime.workqueue import CompleteOutcome, InvalidJobError, QueueStats
from qmtl.work.v1 import work_state_pb2

from .conftest import CONTRACT_SETTINGS, QueueUnderTest
from .support import make_item

DELAYED = work_state_pb2.WORK_STATE_DELAYED
COMPLETED = work_state_pb2.WORK_STATE_COMPLETED
DEAD = work_state_pb2.WORK_STATE_DEAD
LEASED = work_state_pb2.WORK_STATE_LEASED
TTL = 10.0
BOOM = error_pb2.ErrorDetail(code="E_TEST_BOOM", message="boom", retryable=True)


class TestCompleteAndLease:
    async def test_completes_the_job_in_hand_and_leases_the_next_oldest(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q = queue_under_test.queue
        first = (await q.enqueue(make_item(b"1"), "k1")).job_id
        second = (await q.enqueue(make_item(b"2"), "k2")).job_id
        lease = await q.lease("w1", TTL)
        assert lease is not None
        assert lease.job_id == first

        answer = await q.complete_and_lease(first, lease.token, b"r1", "w1", TTL)

        assert answer.outcome is CompleteOutcome.COMPLETED
        assert answer.next_lease is not None
        assert (answer.next_lease.job_id, answer.next_lease.item.payload) == (second, b"2")
        assert answer.next_lease.item.lease_owner == "w1"
        assert answer.next_lease.token != lease.token
        done = await q.get(first)
        assert done is not None
        assert (done.state, done.result) == (COMPLETED, b"r1")
        held = await q.get(second)
        assert held is not None
        assert (held.state, held.attempts) == (LEASED, 1)
        assert await q.stats() == QueueStats(ready=0, leased=1, delayed=0, dead=0)

    async def test_on_an_empty_queue_the_next_lease_is_none(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q = queue_under_test.queue
        await q.enqueue(make_item(), "k")
        lease = await q.lease("w1", TTL)
        assert lease is not None

        answer = await q.complete_and_lease(lease.job_id, lease.token, b"r", "w1", TTL)

        assert (answer.outcome, answer.next_lease) == (CompleteOutcome.COMPLETED, None)

    async def test_a_repeat_with_the_same_token_is_already_completed_and_changes_nothing(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q = queue_under_test.queue
        await q.enqueue(make_item(), "k")
        lease = await q.lease("w1", TTL)
        assert lease is not None
        await q.complete_and_lease(lease.job_id, lease.token, b"first", "w1", TTL)

        answer = await q.complete_and_lease(lease.job_id, lease.token, b"second", "w1", TTL)

        assert answer.outcome is CompleteOutcome.ALREADY_COMPLETED
        job = await q.get(lease.job_id)
        assert job is not None
        assert job.result == b"first"

    async def test_a_stale_token_cannot_complete_but_the_next_lease_is_still_taken(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q, clock = queue_under_test.queue, queue_under_test.clock
        stale_job = (await q.enqueue(make_item(b"1"), "k1")).job_id
        stale = await q.lease("w1", TTL)
        assert stale is not None
        clock.advance(TTL)
        await q.reap_expired()
        current = await q.lease("w2", TTL)
        assert current is not None
        assert current.job_id == stale_job
        other = (await q.enqueue(make_item(b"2"), "k2")).job_id

        answer = await q.complete_and_lease(stale_job, stale.token, b"late", "w1", TTL)

        assert answer.outcome is CompleteOutcome.LEASE_LOST
        assert answer.next_lease is not None
        assert answer.next_lease.job_id == other
        job = await q.get(stale_job)
        assert job is not None
        assert (job.state, job.result, job.lease_owner) == (LEASED, b"", "w2")
        # The current holder is untouched and can still finish its job.
        assert await q.complete(stale_job, current.token, b"ok") is True

    async def test_an_unknown_job_answers_not_found(self, queue_under_test: QueueUnderTest) -> None:
        answer = await queue_under_test.queue.complete_and_lease(
            "no-such-job", "w1:x.1", b"", "w1", TTL
        )
        assert (answer.outcome, answer.next_lease) == (CompleteOutcome.NOT_FOUND, None)

    async def test_a_bad_lease_request_is_refused_before_anything_is_written(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q = queue_under_test.queue
        await q.enqueue(make_item(), "k")
        lease = await q.lease("w1", TTL)
        assert lease is not None

        with pytest.raises(InvalidJobError):
            await q.complete_and_lease(lease.job_id, lease.token, b"r", "", TTL)

        job = await q.get(lease.job_id)
        assert job is not None
        assert job.state == LEASED

    async def test_an_undecodable_next_job_is_dead_lettered_and_the_one_after_is_leased(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q = queue_under_test.queue
        await q.enqueue(make_item(b"0"), "k0")
        bad = (await q.enqueue(make_item(), "bad")).job_id
        good = (await q.enqueue(make_item(b"good"), "good")).job_id
        lease = await q.lease("w1", TTL)
        assert lease is not None
        await queue_under_test.corrupt_item(bad, b"\x0a\x05ab")

        answer = await q.complete_and_lease(lease.job_id, lease.token, b"r", "w1", TTL)

        assert answer.next_lease is not None
        assert answer.next_lease.job_id == good
        dead = await q.get(bad)
        assert dead is not None
        assert (dead.state, dead.error.code) == (
            DEAD,
            "E_UNDECODABLE_PAYLOAD",
        )


class TestFailAndLease:
    async def test_a_retryable_failure_delays_the_job_and_leases_the_next(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q, clock = queue_under_test.queue, queue_under_test.clock
        first = (await q.enqueue(make_item(b"1"), "k1")).job_id
        second = (await q.enqueue(make_item(b"2"), "k2")).job_id
        lease = await q.lease("w1", TTL)
        assert lease is not None

        answer = await q.fail_and_lease(first, lease.token, BOOM, True, "w1", TTL)

        assert (answer.state, answer.outcome) == (DELAYED, None)
        assert answer.next_lease is not None
        assert answer.next_lease.job_id == second
        job = await q.get(first)
        assert job is not None
        assert (job.state, job.error.code) == (DELAYED, "E_TEST_BOOM")
        base_ms = int(CONTRACT_SETTINGS.backoff.base * 1000)
        assert job.available_at.ToMilliseconds() == int(clock() * 1000) + base_ms
        assert await q.stats() == QueueStats(ready=0, leased=1, delayed=1, dead=0)

    async def test_a_permanent_failure_dead_letters_the_job(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q = queue_under_test.queue
        await q.enqueue(make_item(), "k")
        lease = await q.lease("w1", TTL)
        assert lease is not None

        answer = await q.fail_and_lease(lease.job_id, lease.token, BOOM, False, "w1", TTL)

        assert (answer.state, answer.outcome, answer.next_lease) == (DEAD, None, None)
        assert await q.stats() == QueueStats(ready=0, leased=0, delayed=0, dead=1)

    async def test_a_due_retry_is_the_next_lease_in_its_old_place(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q, clock = queue_under_test.queue, queue_under_test.clock
        retried = (await q.enqueue(make_item(b"1"), "k1")).job_id
        lease = await q.lease("w1", TTL)
        assert lease is not None
        await q.fail(retried, lease.token, BOOM, retryable=True)
        newer = (await q.enqueue(make_item(b"2"), "k2")).job_id
        in_hand = await q.lease("w1", TTL)
        assert in_hand is not None
        assert in_hand.job_id == newer
        clock.advance(CONTRACT_SETTINGS.backoff.base)
        third = (await q.enqueue(make_item(b"3"), "k3")).job_id

        answer = await q.complete_and_lease(newer, in_hand.token, b"r", "w1", TTL)

        assert answer.next_lease is not None
        assert (answer.next_lease.job_id, answer.next_lease.attempt) == (retried, 2)
        waiting = await q.get(third)
        assert waiting is not None
        assert waiting.state == work_state_pb2.WORK_STATE_READY

    async def test_a_repeat_answers_the_state_fail_chose(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q = queue_under_test.queue
        await q.enqueue(make_item(), "k")
        lease = await q.lease("w1", TTL)
        assert lease is not None
        await q.fail_and_lease(lease.job_id, lease.token, BOOM, True, "w1", TTL)

        answer = await q.fail_and_lease(lease.job_id, lease.token, BOOM, True, "w1", TTL)

        assert (answer.state, answer.outcome) == (DELAYED, None)
        assert await q.stats() == QueueStats(ready=0, leased=0, delayed=1, dead=0)

    async def test_a_stale_token_cannot_fail_the_job(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q, clock = queue_under_test.queue, queue_under_test.clock
        job_id = (await q.enqueue(make_item(), "k")).job_id
        stale = await q.lease("w1", TTL)
        assert stale is not None
        clock.advance(TTL)
        await q.reap_expired()
        current = await q.lease("w2", TTL)
        assert current is not None

        answer = await q.fail_and_lease(job_id, stale.token, BOOM, False, "w1", TTL)

        assert (answer.state, answer.outcome, answer.next_lease) == (
            None,
            CompleteOutcome.LEASE_LOST,
            None,
        )
        job = await q.get(job_id)
        assert job is not None
        assert (job.state, job.lease_owner) == (LEASED, "w2")

    async def test_an_unknown_job_answers_not_found(self, queue_under_test: QueueUnderTest) -> None:
        answer = await queue_under_test.queue.fail_and_lease(
            "no-such-job", "w1:x.1", BOOM, True, "w1", TTL
        )
        assert (answer.state, answer.outcome) == (None, CompleteOutcome.NOT_FOUND)
