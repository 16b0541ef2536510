"""The reaper loop: gives expired leases back, in every worker, alongside the work loop.

Running one per worker means no single reaper process to keep alive; concurrent reapers are
safe because each reclaim is one atomic step that removes the lease it reclaims.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from .errors import WorkQueueError
from .port import WorkQueue

log = logging.getLogger(__name__)


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


async def run_reaper(queue: WorkQueue, *, interval: float, stop: asyncio.Event) -> int:
    """Reaps every `interval` seconds until `stop` is set; returns the number reclaimed."""
    total = 0
    while not stop.is_set():
        try:
            total += await reap_until_clean(queue)
        except WorkQueueError as exc:
            # The store may be restarting; the next round will reclaim what this one missed.
            log.warning("reaper round failed (%s: %s); retrying in %.1fs", exc.code, exc, interval)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
    return total
