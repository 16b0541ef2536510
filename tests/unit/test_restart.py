"""The recovery steps both services close their boot with (qmtl.runtime.restart)."""

from __future__ import annotations

import pytest

from qmtl.events.v1 import event_pb2
from qmtl.runtime.boot import MemoryMarker
from qmtl.runtime.eventbus import OPS_EVENTS, InMemoryEventBus
from qmtl.runtime.outbox import MemoryOutbox
from qmtl.runtime.restart import Restart


def _restarted(bus: InMemoryEventBus) -> list[event_pb2.Event]:
    events = []
    for record in bus.records(OPS_EVENTS):
        event = event_pb2.Event()
        assert record.value is not None
        event.ParseFromString(record.value)
        events.append(event)
    return events


async def test_a_first_boot_is_no_crash_and_a_boot_after_an_unclean_end_is() -> None:
    marker = MemoryMarker()
    first = Restart("gateway", "gw-1", "test")
    assert await first.mark(marker) is False
    # The process dies here: nothing removes its marker.
    second = Restart("gateway", "gw-1", "test")
    assert await second.mark(marker) is True


async def test_a_retried_marker_step_does_not_read_its_own_marker_as_a_crash() -> None:
    marker = MemoryMarker()
    restart = Restart("gateway", "gw-1", "test")
    assert await restart.mark(marker) is False
    assert await restart.mark(marker) is False


async def test_a_clean_shutdown_removes_the_marker_so_the_next_boot_is_clean() -> None:
    marker = MemoryMarker()
    restart = Restart("dag-manager", "dm-1", "test")
    await restart.mark(marker)
    await restart.wind_down(lambda: marker)
    assert await Restart("dag-manager", "dm-1", "test").mark(marker) is False


async def test_a_marker_that_cannot_be_removed_is_logged_and_left(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Stuck(MemoryMarker):
        async def clear(self, instance_id: str) -> None:
            raise ConnectionError("redis went away")

    marker = Stuck()
    restart = Restart("gateway", "gw-1", "test")
    await restart.mark(marker)
    await restart.wind_down(lambda: marker)
    assert restart.marked
    assert "could not remove the clean-shutdown marker" in caplog.text


async def test_the_announcement_carries_every_count_the_boot_gathered() -> None:
    bus = InMemoryEventBus(partitions=1)
    outbox = MemoryOutbox()
    restart = Restart("gateway", "gw-1", "test", started_at=10.0)
    await restart.mark(MemoryMarker())
    restart.recovered_work_items += 3

    assert await restart.drain(outbox, bus) == 0
    reported = await restart.announce(bus)

    [event] = _restarted(bus)
    payload = event.service_restarted
    assert (payload.service, payload.instance_id) == ("gateway", "gw-1")
    assert (payload.crash_detected, payload.recovered_work_items) == (False, 3)
    assert reported == restart.restarted
    assert restart.relay is not None  # made by the drain, started by the service afterwards
