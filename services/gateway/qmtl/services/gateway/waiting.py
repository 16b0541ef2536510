"""Waiting for a strategy to finish (SubmitStrategy's `wait_timeout`) without fixed sleeps.

Two sources end a wait: `Completions.notify(strategy_id)`, which this process's SubmitWorker
calls right after it stored COMPLETED or FAILED (the wait wakes at once), and polling the
store with doubling intervals, which finds a diff finished by another instance's worker.

The strategy is stored and queued before the wait starts, so a poll the store fails for now
(unavailable, or a call cut short while the process was too busy to read its reply) is no
news, not an error: the wait goes on, and at its end the answer is the strategy as last known
(202), never a 503 for a submission that was accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

from qmtl.dag.v1 import strategy_pb2
from qmtl.runtime.port_errors import PortError

from .store.port import StrategyStore

_log = logging.getLogger(__name__)

FINISHED = frozenset({strategy_pb2.STRATEGY_STATE_COMPLETED, strategy_pb2.STRATEGY_STATE_FAILED})


class Completions:
    """In-process wake-ups of the waits on a strategy; share one between the handler and the
    worker of a process. A notify for a strategy nobody waits on costs nothing."""

    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Event]] = {}

    def notify(self, strategy_id: str) -> None:
        for event in self._waiters.get(strategy_id, ()):
            event.set()

    @contextlib.contextmanager
    def watch(self, strategy_id: str) -> Iterator[asyncio.Event]:
        event = asyncio.Event()
        self._waiters.setdefault(strategy_id, set()).add(event)
        try:
            yield event
        finally:
            waiters = self._waiters[strategy_id]
            waiters.discard(event)
            if not waiters:
                del self._waiters[strategy_id]


async def wait_until_finished(
    store: StrategyStore,
    completions: Completions,
    strategy: strategy_pb2.Strategy,
    timeout: float,  # noqa: ASYNC109 - the submission's wait_timeout is the API
    *,
    poll_initial: float,
    poll_max: float,
) -> strategy_pb2.Strategy:
    """The strategy once COMPLETED or FAILED, or as it stands when `timeout` seconds passed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    delay = poll_initial
    current = strategy
    with completions.watch(strategy.strategy_id) as woken:
        while True:
            # Cleared before the read: a notify after the read is kept for the wait below.
            woken.clear()
            try:
                found = await store.get(strategy.strategy_id)
            except PortError as exc:
                if not exc.retryable:
                    raise
                _log.warning("waiting on strategy %s: %s", strategy.strategy_id, exc)
                found = None
            if found is not None:
                current = found
            remaining = deadline - loop.time()
            if current.state in FINISHED or remaining <= 0:
                return current
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), timeout=min(delay, remaining))
            delay = min(delay * 2, poll_max)
