"""The Redis WorkQueue: every state change is one Lua script, so one round trip and atomic.

Key layout under the prefix `qmtl:wq:{<name>}:` (the braces are a cluster hash tag that keeps
one queue's keys in one slot, which multi-key scripts need):

    job:<id>     hash: item (WorkItem bytes as enqueued, with id, idempotency_key and
                 max_attempts filled in), state, seq, max_attempts, attempts, token, ended,
                 deadline, available_at, error (ErrorDetail bytes), result, created,
                 updated, finished (times in ms)
    ready        zset id -> enqueue sequence number (oldest first)
    leased       zset id -> lease deadline, ms
    delayed      zset id -> retry time, ms
    dead         zset id -> time of death, ms (the dead letter; purged after dead_retention)
    seq          counter behind the sequence numbers
    idem:<key>   '<expires_ms> <job id> <item fingerprint>', with a TTL of the idempotency
                 window (job_record.PreparedItem says what the fingerprint covers)

Time comes from the Redis server (TIME inside each script) unless a clock is injected; see
lua/common.lua for why.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Sequence
from typing import Any, cast

import redis.asyncio as redis
from redis.commands.core import AsyncScript

from qmtl.common.v1 import error_pb2
from qmtl.runtime import metrics
from qmtl.work.v1 import work_item_pb2, work_state_pb2

from .dead_letter import DEAD_LETTER_CHUNK, RedriveTally, dead_age_ms, redrive_ids
from .errors import (
    LEASE_EXPIRED,
    IdempotencyConflictError,
    JobNotFoundError,
    LeaseLostError,
)
from .job_record import (
    READY,
    JobRecord,
    UndecodableItem,
    decode_item,
    leased_view,
    prepare_entries,
    undecodable_error,
)
from .model import (
    ALL_DEAD,
    Clock,
    CompletedAndLeased,
    CompleteOutcome,
    Completion,
    EnqueueResult,
    FailedAndLeased,
    JitterSource,
    Lease,
    QueueSettings,
    QueueStats,
    Reaped,
    Redriven,
    RedriveScope,
    to_ms,
)
from .redis_calls import bounded, client_for_url, connection_retry
from .redis_scripts import QueueScripts
from .validation import check_batch, check_lease_request, check_lease_ttl

_LEASE_LOST = -1
_NOT_FOUND = -2
_CONFLICT = 0  # first element of enqueue.lua's reply: refused, nothing written (else 1)
_COMPLETE_OUTCOMES = {
    1: CompleteOutcome.COMPLETED,
    0: CompleteOutcome.ALREADY_COMPLETED,
    _LEASE_LOST: CompleteOutcome.LEASE_LOST,
    _NOT_FOUND: CompleteOutcome.NOT_FOUND,
}
_LEASE_EXPIRED_RETRY = error_pb2.ErrorDetail(
    code=LEASE_EXPIRED,
    message="the lease expired before its worker completed or failed the job; returned to ready",
    retryable=True,
).SerializeToString()
_LEASE_EXPIRED_DEAD = error_pb2.ErrorDetail(
    code=LEASE_EXPIRED,
    message="the lease expired on the last allowed attempt; dead-lettered",
    retryable=False,
).SerializeToString()
__all__ = ["RedisWorkQueue", "connection_retry", "key_prefix"]


def key_prefix(name: str) -> str:
    if not name or any(c in name for c in "{}: "):
        raise ValueError(f"queue name must be non-empty without braces, colons or spaces: {name!r}")
    return f"qmtl:wq:{{{name}}}:"


class RedisWorkQueue:
    def __init__(
        self,
        client: redis.Redis,
        name: str,
        settings: QueueSettings | None = None,
        *,
        clock: Clock | None = None,
        jitter: JitterSource = random.random,
        owns_client: bool = False,
    ) -> None:
        """`client` must return bytes (decode_responses=False): payloads are binary protobuf.

        `clock` is for tests only; without it the Redis server's clock is used. Every call is
        bounded by `settings.call_timeout` whatever timeouts `client` itself has.
        """
        if client.connection_pool.connection_kwargs.get("decode_responses"):
            raise ValueError("RedisWorkQueue needs a client with decode_responses=False")
        self._client = client
        self._owns_client = owns_client
        self._settings = settings or QueueSettings()
        self._clock = clock
        self._jitter = jitter
        self.prefix = key_prefix(name)
        self._ready = self.prefix + "ready"
        self._leased = self.prefix + "leased"
        self._delayed = self.prefix + "delayed"
        self._dead = self.prefix + "dead"
        self._seq = self.prefix + "seq"
        self._scripts = QueueScripts.register(client)
        backoff = self._settings.backoff
        self._backoff_args = (to_ms(backoff.base), to_ms(backoff.cap), repr(backoff.jitter))
        self._timeout = self._settings.call_timeout

    @classmethod
    def from_url(
        cls,
        url: str,
        name: str,
        settings: QueueSettings | None = None,
        *,
        clock: Clock | None = None,
        jitter: JitterSource = random.random,
    ) -> RedisWorkQueue:
        settings = settings or QueueSettings()
        client = client_for_url(url, settings.call_timeout)
        return cls(client, name, settings, clock=clock, jitter=jitter, owns_client=True)

    @property
    def client(self) -> redis.Redis:
        return self._client

    def _now_arg(self) -> str:
        return "" if self._clock is None else str(to_ms(self._clock()))

    async def _run(self, script: AsyncScript, keys: Sequence[str], args: Sequence[Any]) -> Any:
        call = script(keys=keys, args=[self.prefix, self._now_arg(), *args])
        return await bounded(call, self._timeout)

    # -- enqueue -------------------------------------------------------------------------------

    async def enqueue(self, item: work_item_pb2.WorkItem, idempotency_key: str) -> EnqueueResult:
        (result,) = await self.enqueue_many([(item, idempotency_key)])
        return result

    async def enqueue_many(
        self, entries: Sequence[tuple[work_item_pb2.WorkItem, str]]
    ) -> list[EnqueueResult]:
        prepared = prepare_entries(entries, self._settings.default_max_attempts)
        if not prepared:
            return []
        args: list[Any] = [to_ms(self._settings.idempotency_window)]
        proposed = []
        for entry in prepared:
            job_id = str(uuid.uuid4())
            proposed.append(job_id)
            args += (
                job_id,
                entry.key,
                entry.item.stored_bytes(job_id, entry.key),
                entry.max_attempts,
                entry.item.fingerprint,
            )
        reply = await self._run(self._scripts.enqueue, (self._ready, self._seq), args)
        if int(reply[0]) == _CONFLICT:
            index = int(reply[1])
            holder = reply[2].decode() or None
            raise IdempotencyConflictError(prepared[index].key, holder, index)
        # Comparing with the id we proposed (not a flag from the script) keeps `created` right
        # when redis-py retries the call after a lost reply: the retry finds our own job.
        return [
            EnqueueResult(answer.decode(), created=answer.decode() == job_id)
            for answer, job_id in zip(reply[1:], proposed, strict=True)
        ]

    # -- lease ---------------------------------------------------------------------------------

    async def lease(self, worker_id: str, lease_ttl: float) -> Lease | None:
        leases = await self.lease_many(worker_id, lease_ttl, 1)
        return leases[0] if leases else None

    async def lease_many(self, worker_id: str, lease_ttl: float, count: int) -> list[Lease]:
        check_lease_request(worker_id, lease_ttl, count)
        leases: list[Lease] = []
        while len(leases) < count:
            batch, undecodable = await self._take(worker_id, lease_ttl, count - len(leases))
            leases.extend(batch)
            if not undecodable:
                break
            # Never hand a worker bytes it cannot read: dead-letter them, then lease on.
            await self._fail_many(
                [(job, tok, undecodable_error(job, why), False) for job, tok, why in undecodable]
            )
        return leases

    async def _take(
        self, worker_id: str, lease_ttl: float, count: int
    ) -> tuple[list[Lease], list[tuple[str, str, str]]]:
        ttl_ms = to_ms(lease_ttl)
        reply = await self._run(
            self._scripts.lease,
            (self._ready, self._leased, self._delayed),
            self._take_args(worker_id, ttl_ms, count),
        )
        return _leases_from(reply, worker_id, ttl_ms)

    def _take_args(self, worker_id: str, ttl_ms: int, count: int) -> tuple[Any, ...]:
        """lib_take.lua's arguments: token_prefix, ttl_ms, count, promote_limit."""
        token_prefix = f"{worker_id}:{uuid.uuid4().hex[:16]}"
        return (token_prefix, ttl_ms, count, self._settings.promote_batch)

    async def _next_lease(
        self, reply: Sequence[Any], worker_id: str, lease_ttl: float
    ) -> Lease | None:
        """The lease a settle-and-lease script took; an undecodable job there is dead-lettered
        and leasing goes on, as in lease_many."""
        leases, undecodable = _leases_from(reply, worker_id, to_ms(lease_ttl))
        if undecodable:
            await self._fail_many(
                [(job, tok, undecodable_error(job, why), False) for job, tok, why in undecodable]
            )
        if leases:
            return leases[0]
        return await self.lease(worker_id, lease_ttl) if undecodable else None

    # -- settle --------------------------------------------------------------------------------

    async def extend(self, job_id: str, lease_token: str, lease_ttl: float) -> float:
        check_lease_ttl(lease_ttl)
        answer = int(
            await self._run(
                self._scripts.extend, (self._leased,), (job_id, lease_token, to_ms(lease_ttl))
            )
        )
        self._raise_for(answer, job_id, lease_token)
        return answer / 1000

    async def complete(self, job_id: str, lease_token: str, result: bytes) -> bool:
        (outcome,) = await self.complete_many([Completion(job_id, lease_token, result)])
        if outcome is CompleteOutcome.NOT_FOUND:
            raise JobNotFoundError(f"no job {job_id}")
        if outcome is CompleteOutcome.LEASE_LOST:
            raise LeaseLostError(f"lease {lease_token} no longer holds job {job_id}")
        return outcome is CompleteOutcome.COMPLETED

    async def complete_many(self, completions: Sequence[Completion]) -> list[CompleteOutcome]:
        check_batch("complete_many", len(completions))
        if not completions:
            return []
        args: list[Any] = [to_ms(self._settings.completed_retention)]
        for entry in completions:
            args += (entry.job_id, entry.token, entry.result)
        answers = await self._run(self._scripts.complete, (self._leased,), args)
        return [_COMPLETE_OUTCOMES[int(answer)] for answer in answers]

    async def fail(
        self,
        job_id: str,
        lease_token: str,
        error: error_pb2.ErrorDetail,
        retryable: bool,
    ) -> work_state_pb2.WorkState.ValueType:
        (answer,) = await self._fail_many([(job_id, lease_token, error, retryable)])
        self._raise_for(answer, job_id, lease_token)
        return work_state_pb2.WorkState.ValueType(answer)

    async def _fail_many(
        self, failures: Sequence[tuple[str, str, error_pb2.ErrorDetail, bool]]
    ) -> list[int]:
        args: list[Any] = [*self._backoff_args]
        for job_id, token, error, retryable in failures:
            args += (job_id, token, error.SerializeToString(), int(retryable), repr(self._jitter()))
        answers = await self._run(
            self._scripts.fail, (self._leased, self._delayed, self._dead), args
        )
        return [int(answer) for answer in answers]

    async def complete_and_lease(
        self, job_id: str, lease_token: str, result: bytes, worker_id: str, lease_ttl: float
    ) -> CompletedAndLeased:
        check_lease_request(worker_id, lease_ttl, 1)
        ttl_ms = to_ms(lease_ttl)
        reply = await self._run(
            self._scripts.complete_and_lease,
            (self._ready, self._leased, self._delayed),
            (
                to_ms(self._settings.completed_retention),
                job_id,
                lease_token,
                result,
                *self._take_args(worker_id, ttl_ms, 1),
            ),
        )
        outcome = _COMPLETE_OUTCOMES[int(reply[0])]
        return CompletedAndLeased(outcome, await self._next_lease(reply[1:], worker_id, lease_ttl))

    async def fail_and_lease(
        self,
        job_id: str,
        lease_token: str,
        error: error_pb2.ErrorDetail,
        retryable: bool,
        worker_id: str,
        lease_ttl: float,
    ) -> FailedAndLeased:
        check_lease_request(worker_id, lease_ttl, 1)
        ttl_ms = to_ms(lease_ttl)
        reply = await self._run(
            self._scripts.fail_and_lease,
            (self._ready, self._leased, self._delayed, self._dead),
            (
                *self._backoff_args,
                job_id,
                lease_token,
                error.SerializeToString(),
                int(retryable),
                repr(self._jitter()),
                *self._take_args(worker_id, ttl_ms, 1),
            ),
        )
        answer = int(reply[0])
        next_lease = await self._next_lease(reply[1:], worker_id, lease_ttl)
        if answer < 0:
            return FailedAndLeased(None, _COMPLETE_OUTCOMES[answer], next_lease)
        return FailedAndLeased(work_state_pb2.WorkState.ValueType(answer), None, next_lease)

    async def release(self, job_id: str, lease_token: str) -> None:
        answer = int(
            await self._run(
                self._scripts.release, (self._ready, self._leased), (job_id, lease_token)
            )
        )
        self._raise_for(answer, job_id, lease_token)

    @staticmethod
    def _raise_for(answer: int, job_id: str, token: str) -> None:
        if answer == _NOT_FOUND:
            raise JobNotFoundError(f"no job {job_id}")
        if answer == _LEASE_LOST:
            raise LeaseLostError(f"lease {token} no longer holds job {job_id}")

    # -- reaper --------------------------------------------------------------------------------

    async def reap_expired(self) -> Reaped:
        returned, dead = await self._run(
            self._scripts.reap,
            (self._ready, self._leased, self._dead),
            (self._settings.reap_batch, _LEASE_EXPIRED_RETRY, _LEASE_EXPIRED_DEAD),
        )
        metrics.count_reaped(int(returned), int(dead))
        return Reaped(returned=int(returned), dead_lettered=int(dead))

    # -- reads ---------------------------------------------------------------------------------

    async def stats(self) -> QueueStats:
        async def counts() -> list[int]:
            # MULTI/EXEC: the four counts are one consistent snapshot, each O(1) (ZCARD).
            async with self._client.pipeline(transaction=True) as pipe:
                for key in (self._ready, self._leased, self._delayed, self._dead):
                    pipe.zcard(key)
                return cast(list[int], await pipe.execute())

        ready, leased, delayed, dead = await bounded(counts(), self._timeout)
        return QueueStats(ready=ready, leased=leased, delayed=delayed, dead=dead)

    async def get(self, job_id: str) -> work_item_pb2.WorkItem | None:
        # bytes, not str: the constructor refused a client with decode_responses=True.
        call = self._client.hgetall(self.prefix + "job:" + job_id)
        fields = cast(dict[bytes, bytes], await bounded(call, self._timeout))
        if not fields:
            return None
        return _record(job_id, fields).to_work_item()

    # -- dead letter (admin) --------------------------------------------------------------------

    async def redrive(self, job_ids: Sequence[str] | RedriveScope) -> Redriven:
        keys = (self._ready, self._dead, self._seq)
        if job_ids is ALL_DEAD:
            redriven: list[str] = []
            cutoff = ""
            while True:
                reply = await self._run(
                    self._scripts.redrive, keys, ("all", cutoff, DEAD_LETTER_CHUNK)
                )
                cutoff = str(int(reply[0]))
                redriven += [raw.decode() for raw in reply[2:]]
                if int(reply[1]) < DEAD_LETTER_CHUNK:
                    return Redriven(redriven=tuple(redriven))
        sorted_out = RedriveTally()
        ids = redrive_ids(job_ids)
        for start in range(0, len(ids), DEAD_LETTER_CHUNK):
            chunk = ids[start : start + DEAD_LETTER_CHUNK]
            answers = await self._run(self._scripts.redrive, keys, ("ids", *chunk))
            for job_id, answer in zip(chunk, answers, strict=True):
                sorted_out.add(job_id, redriven=int(answer) == 1, found=int(answer) != _NOT_FOUND)
        return sorted_out.result()

    async def purge_dead(self, older_than: float | None = None) -> int:
        older_ms = dead_age_ms(older_than, self._settings)
        purged, cutoff = 0, ""
        while True:
            new_cutoff, count, scanned = await self._run(
                self._scripts.purge_dead, (self._dead,), (older_ms, cutoff, DEAD_LETTER_CHUNK)
            )
            cutoff, purged = str(int(new_cutoff)), purged + int(count)
            if int(scanned) < DEAD_LETTER_CHUNK:
                return purged

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()


def _leases_from(
    reply: Sequence[Any], worker_id: str, ttl_ms: int
) -> tuple[list[Lease], list[tuple[str, str, str]]]:
    """take()'s reply (lib_take.lua) as leases, and the jobs whose bytes do not decode."""
    now_ms = int(reply[0])
    deadline_ms = now_ms + ttl_ms
    leases: list[Lease] = []
    undecodable: list[tuple[str, str, str]] = []
    for i in range(1, len(reply), 5):
        job_id = reply[i].decode()
        token = reply[i + 1].decode()
        try:
            item = decode_item(reply[i + 2])
        except UndecodableItem as exc:
            undecodable.append((job_id, token, str(exc)))
            continue
        view = leased_view(
            item,
            attempts=int(reply[i + 3]),
            owner=worker_id,
            deadline_ms=deadline_ms,
            created_ms=int(reply[i + 4]),
            now_ms=now_ms,
        )
        leases.append(Lease(job_id, token, deadline_ms / 1000, view))
    return leases, undecodable


def _record(job_id: str, fields: dict[bytes, bytes]) -> JobRecord:
    def number(name: bytes) -> int | None:
        raw = fields.get(name)
        return None if raw is None else _stored_int(raw)

    created = number(b"created") or 0
    return JobRecord(
        job_id=job_id,
        item=fields.get(b"item", b""),
        state=number(b"state") or READY,
        seq=number(b"seq") or 0,
        max_attempts=number(b"max_attempts") or 0,
        created_ms=created,
        updated_ms=number(b"updated") or created,
        attempts=number(b"attempts") or 0,
        token=fields.get(b"token", b"").decode(),
        ended=fields.get(b"ended", b"").decode(),
        deadline_ms=number(b"deadline"),
        available_at_ms=number(b"available_at"),
        error=fields.get(b"error", b""),
        result=fields.get(b"result", b""),
        finished_ms=number(b"finished"),
    )


def _stored_int(raw: bytes) -> int | None:
    """A number from a job hash. Lua writes a large double in exponent notation ('1e+300'),
    and a damaged field must not make the whole job unreadable, so it reads as absent."""
    try:
        return int(raw)
    except ValueError:
        pass
    try:
        value = float(raw)
    except ValueError:
        return None
    return int(value) if math.isfinite(value) else None
