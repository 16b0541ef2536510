"""How the Redis adapter talks to Redis: every call under one deadline, retried only on a broken
connection, and every failure turned into a work-queue error.

A server that accepts connections but never answers (paused, overloaded, a half-open TCP
connection) would otherwise hold a caller for as long as the socket layer lets it: redis-py's
own socket timeout (5 s by default) multiplied by its retries came to ~31 s per call. The
deadline here (`QueueSettings.call_timeout`) covers the whole call, retries and reconnects
included, whatever client the adapter was given; `client_for_url` also sets the socket timeouts
so a call never outlives its deadline inside the socket layer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import NoReturn, TypeVar

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import (
    MasterDownError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import TimeoutError as RedisTimeoutError

from qmtl.runtime import metrics

from .errors import QueueUnavailableError, WorkQueueError

T = TypeVar("T")

# Server replies that mean "not now" rather than "never": out of memory, busy script,
# read-only replica during a failover, still loading the dataset after a restart.
_TRANSIENT_REPLIES = ("OOM", "BUSY", "LOADING", "MASTERDOWN", "TRYAGAIN", "READONLY")


def connection_retry() -> Retry:
    """Retries a command on a broken connection, e.g. a pooled one that died in a Redis restart.

    Safe for every script: enqueue finds its own job by key, settling repeats are no-ops, extend
    only moves a deadline. A lease retried after a lost reply can leave one orphan lease, which
    expires and is reaped like a crashed worker's; the job is neither lost nor held twice.

    Timeouts are not retried: a server that did not answer once will most likely not answer the
    next attempt either, and each attempt would cost another full timeout. The caller (worker,
    reaper) backs off and tries again instead.
    """
    return Retry(
        ExponentialWithJitterBackoff(base=0.05, cap=1.0),
        retries=5,
        supported_errors=(RedisConnectionError,),
    )


# Connections one client opens at most; more concurrent calls wait for one to come free.
MAX_CONNECTIONS = 100


def client_for_url(url: str, timeout: float) -> redis.Redis:
    """A bytes client whose connect and read timeouts are the queue's call timeout.

    Its pool waits for a free connection (up to `timeout`) rather than failing: redis-py's
    default pool refuses the call past 100 connections in use ("Too many connections"), which
    turned a burst of concurrent submissions into 503s although Redis was fine.
    """
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=timeout,
        decode_responses=False,
        retry=connection_retry(),
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
    )
    return redis.Redis.from_pool(pool)


def raise_for_redis_error(exc: RedisError) -> NoReturn:
    if isinstance(exc, RedisConnectionError | RedisTimeoutError | ReadOnlyError):
        raise QueueUnavailableError(f"Redis is unavailable: {exc}") from exc
    # redis-py turns OOM, TRYAGAIN and MASTERDOWN replies into classes of their own and strips
    # the code from the message, so the text check below would miss them.
    if isinstance(exc, OutOfMemoryError | TryAgainError | MasterDownError) or (
        isinstance(exc, ResponseError) and str(exc).startswith(_TRANSIENT_REPLIES)
    ):
        raise QueueUnavailableError(f"Redis refused the operation for now: {exc}") from exc
    raise WorkQueueError(f"Redis rejected a work-queue operation: {exc}") from exc


async def bounded(call: Awaitable[T], within: float) -> T:
    """Awaits one Redis call for at most `within` seconds.

    A call cut short may still have run on the server (its reply was what timed out); every
    script is safe to repeat for that reason (see connection_retry). redis-py drops the
    connection of a cancelled call, so no late reply is ever read as another call's answer.
    """
    started = time.perf_counter()
    outcome = "error"
    try:
        async with asyncio.timeout(within):
            result = await call
        outcome = "ok"
        return result
    except TimeoutError as exc:
        outcome = "timeout"
        raise QueueUnavailableError(f"Redis did not answer within {within:g}s") from exc
    except RedisError as exc:
        raise_for_redis_error(exc)
    finally:
        metrics.REDIS_SECONDS.labels(outcome).observe(time.perf_counter() - started)
