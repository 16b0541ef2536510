"""The WorkQueue's limits, on every adapter: duration bounds, idempotency conflicts and batch sizes
(docs/operations/redis.md, "Limits"). Each refusal is typed and happens before anything is
written, so a refused call leaves the queue exactly as it was.
"""

from __future__ import annotations

import math
import time
import uuid
from typing import Any

import pytest

from qmtl.runtime.endpoints import ServiceEndpoints
from qmtl.runtime.errors import ErrorCode
from qmtl.runtime.workqueue import (
    BackoffPolicy,
    BatchTooLargeError,
    CompleteOutcome,
    Completion,
    IdempotencyConflictError,
    InMemoryWorkQueue,
    InvalidDurationError,
    InvalidJobError,
    QueueSettings,
    QueueStats,
    RedisWorkQueue,
    WorkQueue,
)
from qmtl.runtime.workqueue.model import to_ms
from qmtl.runtime.workqueue.validation import MAX_BATCH, MAX_LEASE_TTL, MIN_LEASE_TTL

from .conftest import CONTRACT_SETTINGS, QueueUnderTest, connect_redis, delete_queue_keys
from .support import make_item

EMPTY = QueueStats(ready=0, leased=0, delayed=0, dead=0)
ONE_READY = QueueStats(ready=1, leased=0, delayed=0, dead=0)
# Out of range or not a number at all: each must be refused before a script runs.
BAD_TTLS = [3e11, 1e300, math.nan, math.inf, -math.inf, 0.0, -1.0, 0.0009, MAX_LEASE_TTL + 0.001]
# The last representable instant of google.protobuf.Timestamp (9999-12-31T23:59:59.999Z).
MAX_TIMESTAMP_MS = 253_402_300_799_999


async def set_stored_deadline(q: WorkQueue, job_id: str, raw: bytes) -> None:
    """Overwrites a job's stored lease deadline, as an older release (or a damaged store) could
    have left it: Redis keeps the text as written, the in-memory record an int or nothing."""
    if isinstance(q, RedisWorkQueue):
        await q.client.hset(q.prefix + "job:" + job_id, "deadline", raw)
        return
    assert isinstance(q, InMemoryWorkQueue)
    try:
        q._jobs[job_id].deadline_ms = int(float(raw))
    except ValueError:
        q._jobs[job_id].deadline_ms = None


async def stored_key_count(q: WorkQueue) -> int:
    """How many keys the Redis adapter keeps for this queue (memory keeps none)."""
    if isinstance(q, RedisWorkQueue):
        return len([key async for key in q.client.scan_iter(match=q.prefix + "*", count=1000)])
    return 0


class TestLeaseTtlBounds:
    @pytest.mark.parametrize("ttl", BAD_TTLS)
    async def test_an_out_of_range_lease_ttl_is_refused_and_the_job_stays_ready(
        self, queue_under_test: QueueUnderTest, ttl: float
    ) -> None:
        q = queue_under_test.queue
        job_id = (await q.enqueue(make_item(), "k")).job_id

        with pytest.raises(InvalidDurationError) as lease_error:
            await q.lease("w", ttl)
        with pytest.raises(InvalidDurationError):
            await q.lease_many("w", ttl, 5)

        assert isinstance(lease_error.value, InvalidJobError)
        assert lease_error.value.code == "E_VALIDATION"
        assert await q.stats() == ONE_READY
        lease = await q.lease("w", 10.0)
        assert lease is not None
        assert (lease.job_id, lease.attempt) == (job_id, 1)

    @pytest.mark.parametrize("ttl", BAD_TTLS)
    async def test_an_out_of_range_extend_is_refused_and_the_deadline_stays(
        self, queue_under_test: QueueUnderTest, ttl: float
    ) -> None:
        q = queue_under_test.queue
        await q.enqueue(make_item(), "k")
        lease = await q.lease("w", 10.0)
        assert lease is not None

        with pytest.raises(InvalidDurationError):
            await q.extend(lease.job_id, lease.token, ttl)

        job = await q.get(lease.job_id)
        assert job is not None
        assert job.lease_deadline.ToMilliseconds() == to_ms(lease.deadline)

    @pytest.mark.parametrize("ttl", [MIN_LEASE_TTL, MAX_LEASE_TTL])
    async def test_the_bounds_themselves_are_accepted_and_the_lease_expires_on_time(
        self, queue_under_test: QueueUnderTest, ttl: float
    ) -> None:
        q, clock = queue_under_test.queue, queue_under_test.clock
        await q.enqueue(make_item(), "k")

        lease = await q.lease("w", ttl)

        assert lease is not None
        assert to_ms(lease.deadline) == to_ms(clock()) + to_ms(ttl)
        assert await q.extend(lease.job_id, lease.token, ttl) == lease.deadline
        job = await q.get(lease.job_id)
        assert job is not None
        assert job.lease_deadline.ToMilliseconds() == to_ms(lease.deadline)
        assert (await q.reap_expired()).total == 0
        clock.advance(ttl)
        assert (await q.reap_expired()).returned == 1

    async def test_a_non_numeric_ttl_is_a_typed_refusal(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q = queue_under_test.queue
        for ttl in ("10", None, True):
            with pytest.raises(InvalidDurationError):
                await q.lease("w", ttl)  # type: ignore[arg-type]


class TestReadingOutOfRangeRecords:
    @pytest.mark.parametrize(
        ("raw", "expected_ms"),
        [
            (b"300000000000000", MAX_TIMESTAMP_MS),  # what lease("w", 3e11) used to store
            (b"-9223372036854775808", -62_135_596_800_000),  # Lua's %d of 1e300
            (b"1e+300", MAX_TIMESTAMP_MS),
            (b"not a number", None),
        ],
    )
    async def test_get_decodes_an_out_of_range_deadline_without_raising(
        self, queue_under_test: QueueUnderTest, raw: bytes, expected_ms: int | None
    ) -> None:
        q = queue_under_test.queue
        await q.enqueue(make_item(b"p"), "k")
        lease = await q.lease("w", 10.0)
        assert lease is not None
        await set_stored_deadline(q, lease.job_id, raw)

        job = await q.get(lease.job_id)

        assert job is not None
        assert (job.id, job.payload, job.attempts) == (lease.job_id, b"p", 1)
        if expected_ms is None:
            assert not job.HasField("lease_deadline")
        else:
            assert job.lease_deadline.ToMilliseconds() == expected_ms


class TestSettingsBounds:
    @pytest.mark.parametrize(
        "field",
        ["idempotency_window", "completed_retention"],
    )
    @pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, 0.0, -1.0, 1e300, 3e11])
    def test_out_of_range_queue_durations_are_refused(self, field: str, value: float) -> None:
        with pytest.raises(InvalidDurationError, match=field):
            QueueSettings(**{field: value})  # type: ignore[arg-type]

    @pytest.mark.parametrize("value", [math.nan, math.inf, 0.0, -1.0, 1e300, 0.0009])
    def test_out_of_range_backoff_durations_are_refused(self, value: float) -> None:
        with pytest.raises(InvalidDurationError, match="base"):
            BackoffPolicy(base=value, cap=max(1.0, value) if math.isfinite(value) else 1.0)
        with pytest.raises(InvalidDurationError, match="cap"):
            BackoffPolicy(base=0.001, cap=value)

    @pytest.mark.parametrize(
        "settings",
        [
            {"default_max_attempts": 0},
            {"default_max_attempts": 2**31},
            {"reap_batch": 0},
            {"promote_batch": MAX_BATCH + 1},
            {"idempotency_window": 10.0, "completed_retention": 5.0},
        ],
    )
    def test_other_bad_settings_are_typed_refusals(self, settings: dict[str, Any]) -> None:
        with pytest.raises(InvalidJobError):
            QueueSettings(**settings)

    def test_a_nan_jitter_is_refused(self) -> None:
        with pytest.raises(InvalidJobError, match="jitter"):
            BackoffPolicy(jitter=math.nan)

    def test_the_longest_settings_are_accepted(self) -> None:
        year = 365 * 24 * 3600.0
        settings = QueueSettings(
            idempotency_window=year,
            completed_retention=year,
            backoff=BackoffPolicy(base=24 * 3600.0, cap=24 * 3600.0),
            reap_batch=MAX_BATCH,
            promote_batch=MAX_BATCH,
        )
        assert settings.idempotency_window == year


class TestIdempotencyConflict:
    async def test_the_same_key_with_another_payload_is_a_typed_conflict(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q = queue_under_test.queue
        first = await q.enqueue(make_item(b"first"), "key-1")

        with pytest.raises(IdempotencyConflictError) as conflict:
            await q.enqueue(make_item(b"second"), "key-1")

        error = conflict.value
        assert (error.code, error.retryable) == ("E_IDEMPOTENCY_CONFLICT", False)
        assert (error.idempotency_key, error.job_id, error.index) == ("key-1", first.job_id, 0)
        job = await q.get(first.job_id)
        assert job is not None
        assert job.payload == b"first"
        assert await q.stats() == ONE_READY

    @pytest.mark.parametrize(
        "changed",
        [
            {"strategy_id": "other"},
            {"payload_type": "qmtl.test.Other"},
            {"max_attempts": CONTRACT_SETTINGS.default_max_attempts + 1},
        ],
    )
    async def test_any_field_the_queue_keeps_counts_as_a_different_payload(
        self, queue_under_test: QueueUnderTest, changed: dict[str, object]
    ) -> None:
        q = queue_under_test.queue
        await q.enqueue(make_item(b"p"), "k")

        with pytest.raises(IdempotencyConflictError):
            await q.enqueue(make_item(b"p", **changed), "k")

    async def test_fields_the_queue_overwrites_do_not_make_a_conflict(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q = queue_under_test.queue
        first = await q.enqueue(make_item(b"p"), "k")
        same_job = make_item(
            b"p",
            id="producer-id",
            idempotency_key="ignored",
            attempts=4,
            lease_owner="x",
            max_attempts=CONTRACT_SETTINGS.default_max_attempts,  # the default, spelt out
        )

        again = await q.enqueue(same_job, "k")

        assert (again.job_id, again.created) == (first.job_id, False)

    async def test_the_key_is_free_for_another_payload_once_its_window_has_passed(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q, clock = queue_under_test.queue, queue_under_test.clock
        first = await q.enqueue(make_item(b"first"), "k")
        clock.advance(CONTRACT_SETTINGS.idempotency_window)

        later = await q.enqueue(make_item(b"second"), "k")

        assert later.created
        assert later.job_id != first.job_id

    async def test_a_conflict_anywhere_in_a_batch_refuses_the_whole_batch(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q = queue_under_test.queue
        taken = await q.enqueue(make_item(b"taken"), "taken")
        keys_before = await stored_key_count(q)

        with pytest.raises(IdempotencyConflictError) as conflict:
            await q.enqueue_many(
                [(make_item(b"a"), "a"), (make_item(b"other"), "taken"), (make_item(b"c"), "c")]
            )

        assert (conflict.value.index, conflict.value.job_id) == (1, taken.job_id)
        assert await q.stats() == ONE_READY
        assert await stored_key_count(q) == keys_before
        # Nothing of the refused batch was claimed: its keys take any payload now.
        results = await q.enqueue_many([(make_item(b"a2"), "a"), (make_item(b"c2"), "c")])
        assert [r.created for r in results] == [True, True]

    async def test_one_key_twice_in_a_batch_with_different_payloads_is_a_conflict(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q = queue_under_test.queue

        with pytest.raises(IdempotencyConflictError) as conflict:
            await q.enqueue_many(
                [(make_item(b"x"), "x"), (make_item(b"p1"), "k"), (make_item(b"p2"), "k")]
            )

        assert (conflict.value.idempotency_key, conflict.value.index) == ("k", 2)
        assert conflict.value.job_id is None  # the first of the two was never written
        assert await q.stats() == EMPTY
        assert await stored_key_count(q) == 0

    async def test_one_key_twice_in_a_batch_with_one_payload_makes_one_job(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q = queue_under_test.queue

        first, second = await q.enqueue_many([(make_item(b"p"), "k"), (make_item(b"p"), "k")])

        assert (first.created, second.created, second.job_id) == (True, False, first.job_id)
        assert await q.stats() == ONE_READY

    def test_the_conflict_becomes_a_409_qmtl_error(self) -> None:
        error = IdempotencyConflictError("order-7", "job-1", 0)

        served = error.to_qmtl_error()

        assert served.code == ErrorCode.ERROR_CODE_IDEMPOTENCY_CONFLICT
        assert (served.http_status, served.wire_code) == (409, "E_IDEMPOTENCY_CONFLICT")
        assert served.details == {"idempotency_key": "order-7", "job_id": "job-1"}
        assert error.to_error_detail().code == "E_IDEMPOTENCY_CONFLICT"

    def test_other_queue_errors_map_to_their_catalogue_code(self) -> None:
        served = InvalidDurationError("lease_ttl", math.nan, 0.001, 86400.0).to_qmtl_error()

        assert (served.code, served.http_status) == (ErrorCode.ERROR_CODE_VALIDATION, 422)


class TestBatchSizes:
    async def test_the_largest_batch_goes_through_every_batched_call(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q = queue_under_test.queue
        entries = [(make_item(b"%d" % i), f"k{i}") for i in range(MAX_BATCH)]

        enqueued = await q.enqueue_many(entries)
        assert all(r.created for r in enqueued)
        assert await q.stats() == QueueStats(ready=MAX_BATCH, leased=0, delayed=0, dead=0)

        leases = await q.lease_many("w", 60.0, MAX_BATCH)
        assert [lease.job_id for lease in leases] == [r.job_id for r in enqueued]
        assert len({lease.token for lease in leases}) == MAX_BATCH
        assert await q.stats() == QueueStats(ready=0, leased=MAX_BATCH, delayed=0, dead=0)

        outcomes = await q.complete_many([Completion(x.job_id, x.token, b"ok") for x in leases])
        assert outcomes == [CompleteOutcome.COMPLETED] * MAX_BATCH
        assert await q.stats() == EMPTY
        last = await q.get(leases[-1].job_id)
        assert last is not None
        assert last.result == b"ok"

    async def test_a_batch_over_the_limit_is_refused_before_anything_is_written(
        self, queue_under_test: QueueUnderTest
    ) -> None:
        q = queue_under_test.queue
        too_many = [(make_item(), f"k{i}") for i in range(MAX_BATCH + 1)]

        with pytest.raises(BatchTooLargeError) as refused:
            await q.enqueue_many(too_many)

        assert isinstance(refused.value, InvalidJobError)
        assert await q.stats() == EMPTY
        assert await stored_key_count(q) == 0

        await q.enqueue_many(too_many[:2])
        with pytest.raises(BatchTooLargeError):
            await q.lease_many("w", 60.0, MAX_BATCH + 1)
        assert await q.stats() == QueueStats(ready=2, leased=0, delayed=0, dead=0)

        held = await q.lease_many("w", 60.0, 2)
        with pytest.raises(BatchTooLargeError):
            await q.complete_many([Completion(held[0].job_id, held[0].token)] * (MAX_BATCH + 1))
        assert await q.stats() == QueueStats(ready=0, leased=2, delayed=0, dead=0)
        assert await q.complete(held[0].job_id, held[0].token, b"")


async def test_a_redis_claim_from_before_fingerprints_answers_any_item_with_its_job(
    endpoints: ServiceEndpoints,
) -> None:
    """Claims written by an older release ('<expires_ms> <job id>') cannot tell items apart;
    until they expire they keep the old answer rather than refusing every repeat."""
    client = await connect_redis(endpoints.redis_url)
    queue = RedisWorkQueue(client, f"limits-{uuid.uuid4().hex}", CONTRACT_SETTINGS)
    try:
        expires_ms = int((time.time() + 60) * 1000)
        await client.set(queue.prefix + "idem:old", f"{expires_ms} job-from-before", px=60_000)

        result = await queue.enqueue(make_item(b"anything"), "old")

        assert (result.job_id, result.created) == ("job-from-before", False)
        assert await queue.stats() == EMPTY
    finally:
        await delete_queue_keys(client, queue.prefix)
        await client.aclose()
