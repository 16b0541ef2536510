"""The `qmtl alerts` process: an AlertDispatcher subscribed to qmtl.events.ops until stopped.

A subscription the bus ends on its own (a broker error the adapter gave up on) is logged and
made again after a backoff; the dispatcher's notifier queues and rate-limit memory survive it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from typing import TextIO

from qmtl.runtime.eventbus import OPS_EVENTS, EventBus

from .dispatcher import AlertDispatcher
from .ratelimit import AlertGate
from .settings import AlertSettings

_log = logging.getLogger("qmtl.alerts")

RESUBSCRIBE_BACKOFF_S = (1.0, 2.0, 5.0, 10.0, 30.0)


def dispatcher_for(settings: AlertSettings) -> AlertDispatcher:
    return AlertDispatcher(
        settings.notifiers(),
        gate=AlertGate(window_s=settings.window_s),
        retry=settings.retry,
        queue_size=settings.queue_size,
        max_age_s=settings.max_age_s,
    )


async def run_dispatcher(
    bus: EventBus,
    settings: AlertSettings,
    *,
    stop: asyncio.Event,
    out: TextIO = sys.stdout,
) -> int:
    """Dispatches until `stop` is set; 0."""
    dispatcher = dispatcher_for(settings)
    names = ",".join(channel.name for channel in dispatcher.channels)
    failures = 0
    # The same two lines as the services print: consuming starts, then it runs.
    print(f"qmtl alerts: listening topic={OPS_EVENTS} group={settings.group}", file=out, flush=True)
    try:
        while not stop.is_set():
            subscription = await dispatcher.subscribe(bus, group=settings.group)
            if failures == 0:
                print(
                    f"qmtl alerts: ready group={settings.group} notifiers={names} "
                    f"window={settings.window_s:g}s",
                    file=out,
                    flush=True,
                )
            ended = asyncio.ensure_future(subscription.wait())
            stopped = asyncio.ensure_future(stop.wait())
            await asyncio.wait({ended, stopped}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if stop.is_set():
                ended.cancel()
                break
            failure = ended.exception() if not ended.cancelled() else None
            delay = RESUBSCRIBE_BACKOFF_S[min(failures, len(RESUBSCRIBE_BACKOFF_S) - 1)]
            failures += 1
            _log.error("alerts: subscription ended (%s); again in %g s", failure, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
    finally:
        await dispatcher.aclose()
    return 0


def stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
