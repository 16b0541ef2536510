"""Waiting for a condition in tests: poll it with a deadline, never sleep a fixed time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol


class Watched(Protocol):
    """Something that can die while a test waits, e.g. a worker process."""

    def check_alive(self) -> None:
        """Raises AssertionError, with whatever explains why, once it has died."""


async def eventually(
    condition: Callable[[], Awaitable[bool]],
    *,
    what: str = "condition",
    within: float = 20.0,
    watch: Iterable[Watched] = (),
) -> None:
    """Polls `condition` until it holds; fails at the deadline, or as soon as a watched thing
    dies, so a crash is reported as itself rather than as a time-out."""
    watched = list(watch)
    deadline = time.monotonic() + within
    while not await condition():
        for thing in watched:
            thing.check_alive()
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {within}s waiting for {what}")
        await asyncio.sleep(0.01)
