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
    dead         zset id -> time of death, ms (the dead letter; never expires)
    seq          counter behind the sequence numbers
    idem:<key>   '<expires_ms> <job id>', with a TTL of the idempotency window

Time comes from the Redis server (TIME inside each script) unless a clock is injected; see
lua/common.lua for why.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from typing import Any, NoReturn, cast

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from qmtl.common.v1 import error_pb2
from qmtl.work.v1 import work_item_pb2, work_state_pb2

from .errors import (
    LEASE_EXPIRED,
    JobNotFoundError,
    LeaseLostError,
    QueueUnavailableError,
    WorkQueueError,
)
from .job_record import (
    READY,
    JobRecord,
    UndecodableItem,
    decode_item,
    leased_view,
    stored_item_bytes,
    undecodable_error,
)
from .model import (
    Clock,
    CompleteOutcome,
    Completion,
    EnqueueResult,
    JitterSource,
    Lease,
    QueueSettings,
    QueueStats,
    Reaped,
    to_ms,
)
from .redis_scripts import QueueScripts
from .validation import check_idempotency_key, check_lease_request, max_attempts_for

_LEASE_LOST = -1
_NOT_FOUND = -2
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
# Server replies that mean "not now" rather than "never": out of memory, busy script,
# read-only replica during a failover, still loading the dataset after a restart.
_TRANSIENT_REPLIES = ("OOM", "BUSY", "LOADING", "MASTERDOWN", "TRYAGAIN", "READONLY")


def connection_retry() -> Retry:
    """Retries a command on a broken connection, e.g. a pooled one that died in a Redis restart.

    Safe for every script: enqueue finds its own job by key, settling repeats are no-ops, extend
    only moves a deadline. A lease retried after a lost reply can leave one orphan lease, which
    expires and is reaped like a crashed worker's; the job is neither lost nor held twice.
    """
    return Retry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), retries=5)


def key_prefix(name: str) -> str:
    if not name or any(c in name for c in "{}: "):
        raise ValueError(f"queue name must be non-empty without braces, colons or spaces: {name!r}")
    return f"qmtl:wq:{{{name}}}:"


def _unavailable(exc: RedisError) -> NoReturn:
    if isinstance(exc, RedisConnectionError | RedisTimeoutError | ReadOnlyError):
        raise QueueUnavailableError(f"Redis is unavailable: {exc}") from exc
    if isinstance(exc, ResponseError) and str(exc).startswith(_TRANSIENT_REPLIES):
        raise QueueUnavailableError(f"Redis refused the operation for now: {exc}") from exc
    raise WorkQueueError(f"Redis rejected a work-queue operation: {exc}") from exc


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

        `clock` is for tests only; without it the Redis server's clock is used.
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
        client = redis.Redis.from_url(url, decode_responses=False, retry=connection_retry())
        return cls(client, name, settings, clock=clock, jitter=jitter, owns_client=True)

    @property
    def client(self) -> redis.Redis:
        return self._client

    def _now_arg(self) -> str:
        return "" if self._clock is None else str(to_ms(self._clock()))

    async def _run(self, script: AsyncScript, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return await script(keys=keys, args=[self.prefix, self._now_arg(), *args])
        except RedisError as exc:
            _unavailable(exc)

    # -- enqueue -------------------------------------------------------------------------------

    async def enqueue(self, item: work_item_pb2.WorkItem, idempotency_key: str) -> EnqueueResult:
        (result,) = await self.enqueue_many([(item, idempotency_key)])
        return result

    async def enqueue_many(
        self, entries: Sequence[tuple[work_item_pb2.WorkItem, str]]
    ) -> list[EnqueueResult]:
        if not entries:
            return []
        args: list[Any] = [to_ms(self._settings.idempotency_window)]
        proposed = []
        for item, key in entries:
            check_idempotency_key(key)
            max_attempts = max_attempts_for(item, self._settings.default_max_attempts)
            job_id = str(uuid.uuid4())
            proposed.append(job_id)
            args += (job_id, key, stored_item_bytes(item, job_id, key, max_attempts), max_attempts)
        answers = await self._run(self._scripts.enqueue, (self._ready, self._seq), args)
        # Comparing with the id we proposed (not a flag from the script) keeps `created` right
        # when redis-py retries the call after a lost reply: the retry finds our own job.
        return [
            EnqueueResult(answer.decode(), created=answer.decode() == job_id)
            for answer, job_id in zip(answers, proposed, strict=True)
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
        token_prefix = f"{worker_id}:{uuid.uuid4().hex[:16]}"
        reply = await self._run(
            self._scripts.lease,
            (self._ready, self._leased, self._delayed),
            (token_prefix, ttl_ms, count, self._settings.promote_batch),
        )
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

    # -- settle --------------------------------------------------------------------------------

    async def extend(self, job_id: str, lease_token: str, lease_ttl: float) -> float:
        check_lease_request("-", lease_ttl)
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
        return Reaped(returned=int(returned), dead_lettered=int(dead))

    # -- reads ---------------------------------------------------------------------------------

    async def stats(self) -> QueueStats:
        try:
            # MULTI/EXEC: the four counts are one consistent snapshot.
            async with self._client.pipeline(transaction=True) as pipe:
                for key in (self._ready, self._leased, self._delayed, self._dead):
                    pipe.zcard(key)
                ready, leased, delayed, dead = await pipe.execute()
        except RedisError as exc:
            _unavailable(exc)
        return QueueStats(ready=ready, leased=leased, delayed=delayed, dead=dead)

    async def get(self, job_id: str) -> work_item_pb2.WorkItem | None:
        try:
            # bytes, not str: the constructor refused a client with decode_responses=True.
            fields = cast(
                dict[bytes, bytes], await self._client.hgetall(self.prefix + "job:" + job_id)
            )
        except RedisError as exc:
            _unavailable(exc)
        if not fields:
            return None
        return _record(job_id, fields).to_work_item()

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()


def _record(job_id: str, fields: dict[bytes, bytes]) -> JobRecord:
    def number(name: bytes) -> int | None:
        raw = fields.get(name)
        return None if raw is None else int(raw)

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
