"""The reaper loop: gives expired leases back and enforces the dead-letter retention, in every
worker, alongside the work loop.

Running one per worker means no single reaper process to keep alive; concurrent reapers are
safe because each reclaim (and each purge) is one atomic step that removes what it handles.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from .errors import WorkQueueError
from .port import WorkQueue

log = logging.getLogger(__name__)

DEFAULT_REAP_MAX_BACKOFF = 60.0
"""Longest wait between reaper rounds while the store keeps failing."""


def retry_delay(first: float, failures: int, cap: float) -> float:
    """The wait after `failures` consecutive failures: first, 2*first, 4*first, ... up to cap.

    Never shorter than `first`, so a failing store is never polled faster than a healthy one.
    """
    exponent = min(max(failures - 1, 0), 32)  # 2**32 * any sane first is past every cap
    return max(first, min(cap, first * 2.0**exponent))


async def reap_until_clean(queue: WorkQueue) -> int:
    """Reaps in batches until a batch comes back short; returns how many leases were reclaimed."""
    total = 0
    while True:
        reaped = await queue.reap_expired()
        total += reaped.total
        if reaped.dead_lettered:
            log.warning("reaper dead-lettered %d jobs out of attempts", reaped.dead_lettered)
        if reaped.total == 0:
            return total


async def run_reaper(
    queue: WorkQueue,
    *,
    interval: float,
    stop: asyncio.Event,
    max_backoff: float = DEFAULT_REAP_MAX_BACKOFF,
) -> int:
    """Every `interval` seconds until `stop` is set: reclaims expired leases, then purges DEAD
    jobs past the queue's dead_retention. Returns the number of leases reclaimed.

    While the store fails (QueueUnavailableError, or any other queue error) the rounds back off
    exponentially from `interval` up to `max_backoff`, and return to `interval` after the
    first round that succeeds; every failure and the recovery are logged.
    """
    total = 0
    failures = 0
    while not stop.is_set():
        try:
            total += await reap_until_clean(queue)
            purged = await queue.purge_dead()
        except WorkQueueError as exc:
            # The store may be restarting or paused; a later round reclaims what this one missed.
            failures += 1
            wait = retry_delay(interval, failures, max_backoff)
            log.warning(
                "reaper round failed %d time(s) in a row (%s: %s); retrying in %.2fs",
                failures,
                exc.code,
                exc,
                wait,
            )
        else:
            if purged:
                log.info("reaper purged %d dead jobs past their retention", purged)
            if failures:
                log.warning("reaper recovered after %d failed round(s)", failures)
            failures = 0
            wait = interval
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=wait)
    return total
