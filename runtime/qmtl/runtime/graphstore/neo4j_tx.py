"""One port call = one explicit Neo4j transaction, retried a bounded number of times.

Retried: what a later attempt can get past. The server or a cluster member is briefly away
(ServiceUnavailable, SessionExpired), a deadlock or lock timeout between concurrent writers
(TransientError), and a unique constraint hit because a concurrent writer created the same
node or took the same topic first (ConstraintError): the work function re-reads the graph on
the next attempt and either reuses that node or raises TopicConflictError. Every work function
is a whole call (checks and writes), so a retry is always safe. When the attempts are spent:
GraphStoreUnavailableError (retryable). Anything else from the driver is a typed error too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from neo4j import READ_ACCESS, WRITE_ACCESS, AsyncDriver, AsyncTransaction
from neo4j.exceptions import (
    AuthError,
    ConstraintError,
    DriverError,
    Neo4jError,
    ServiceUnavailable,
    SessionExpired,
    TransientError,
)

from qmtl.runtime import metrics

from .errors import GraphStoreError, GraphStoreUnavailableError

T = TypeVar("T")
Work = Callable[[AsyncTransaction], Awaitable[T]]

_RETRIED = (ServiceUnavailable, SessionExpired, TransientError, ConstraintError)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Attempts per call and the exponential backoff between them (documented in
    docs/operations/graph-store.md). The defaults ride out a deadlock or a restart of a few
    hundred milliseconds; a longer outage is the caller's to retry (the error is retryable)."""

    attempts: int = 5
    base_s: float = 0.05
    cap_s: float = 1.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt number `attempt` (1 = the first retry)."""
        return float(min(self.cap_s, self.base_s * 2 ** (attempt - 1)))


async def run(tx: AsyncTransaction, query: str, **params: Any) -> list[dict[str, Any]]:
    result = await tx.run(query, params)
    return [record.data() async for record in result]


async def run_rows(tx: AsyncTransaction, query: str, **params: Any) -> list[list[Any]]:
    """The `rows` list of a statement that collects its answer into one record."""
    result = await tx.run(query, params)
    record = await result.single(strict=True)
    rows: list[list[Any]] = record["rows"]
    return rows


async def transact(
    driver: AsyncDriver,
    work: Work[T],
    *,
    database: str | None,
    retry: RetryPolicy,
    write: bool = True,
) -> T:
    started = time.perf_counter()
    outcome = "error"
    try:
        result = await _with_retries(driver, work, database=database, retry=retry, write=write)
        outcome = "ok"
        return result
    finally:
        metrics.NEO4J_SECONDS.labels("write" if write else "read", outcome).observe(
            time.perf_counter() - started
        )


async def _with_retries(
    driver: AsyncDriver, work: Work[T], *, database: str | None, retry: RetryPolicy, write: bool
) -> T:
    last: Exception | None = None
    for attempt in range(retry.attempts):
        if attempt:
            await asyncio.sleep(retry.delay(attempt))
        try:
            return await _once(driver, work, database=database, write=write)
        except GraphStoreError:
            raise
        except _RETRIED as exc:
            last = exc
        except AuthError as exc:
            raise GraphStoreUnavailableError(
                f"Neo4j refused the credentials: {exc}", retryable=False
            ) from exc
        except DriverError as exc:
            raise GraphStoreUnavailableError(f"Neo4j driver: {exc}") from exc
        except Neo4jError as exc:
            # A statement the server rejects for good (e.g. the TAG index missing on an
            # unmigrated graph): not the caller's input, so an internal error.
            raise GraphStoreError(f"Neo4j: {exc.code}: {exc.message}") from exc
    raise GraphStoreUnavailableError(
        f"Neo4j: {type(last).__name__} after {retry.attempts} attempts: {last}"
    ) from last


async def _once(driver: AsyncDriver, work: Work[T], *, database: str | None, write: bool) -> T:
    # Notifications off: a fresh graph has labels and properties the planner warns about.
    async with driver.session(
        database=database,
        default_access_mode=WRITE_ACCESS if write else READ_ACCESS,
        notifications_min_severity="OFF",
    ) as session:
        tx = await session.begin_transaction()
        async with tx:  # rolls back when `work` raises: a failed call writes nothing
            result = await work(tx)
            await tx.commit()
        return result
