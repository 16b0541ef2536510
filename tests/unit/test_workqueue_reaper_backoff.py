"""The reaper backs off exponentially while the store fails and recovers by itself (issue 8,
item 2). A stand-in queue fails a set number of rounds; the waits are read from the log."""

from __future__ import annotations

import asyncio
import logging
import re

import pytest

from qmtl.runtime.workqueue import (
    InMemoryWorkQueue,
    QueueUnavailableError,
    Reaped,
    run_reaper,
)
from qmtl.runtime.workqueue.reaper import retry_delay
from tests.polling import eventually


class FlakyQueue(InMemoryWorkQueue):
    """Its reap_expired fails `failures` times (as a paused Redis would), then works."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures_left = failures
        self.calls = 0

    async def reap_expired(self) -> Reaped:
        self.calls += 1
        if self.failures_left:
            self.failures_left -= 1
            raise QueueUnavailableError("Redis did not answer within 0.5s")
        return await super().reap_expired()


@pytest.mark.parametrize(
    ("first", "failures", "cap", "expected"),
    [
        (1.0, 1, 60.0, 1.0),
        (1.0, 2, 60.0, 2.0),
        (1.0, 4, 60.0, 8.0),
        (1.0, 7, 60.0, 60.0),
        (1.0, 10_000, 60.0, 60.0),  # no overflow however long the outage
        (10.0, 3, 5.0, 10.0),  # never polls a failing store faster than a healthy one
    ],
)
def test_retry_delay_doubles_from_the_interval_up_to_the_cap(
    first: float, failures: int, cap: float, expected: float
) -> None:
    assert retry_delay(first, failures, cap) == expected


async def test_the_reaper_backs_off_while_the_store_fails_and_recovers_on_its_own(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="qmtl.runtime.workqueue.reaper")
    queue = FlakyQueue(failures=4)
    stop = asyncio.Event()
    reaper = asyncio.create_task(run_reaper(queue, interval=0.01, stop=stop, max_backoff=0.04))

    async def healthy_rounds() -> bool:
        return queue.calls >= 7 or reaper.done()

    try:
        await eventually(healthy_rounds, what="reaper rounds after the outage")
    finally:
        stop.set()
        assert await asyncio.wait_for(reaper, 10) == 0

    messages = [record.getMessage() for record in caplog.records]
    waits = [float(m) for m in re.findall(r"retrying in ([0-9.]+)s", "\n".join(messages))]
    assert waits == [0.01, 0.02, 0.04, 0.04]
    assert "reaper recovered after 4 failed round(s)" in messages
