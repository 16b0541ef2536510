"""The pure parts of the events bench: the 1 KB events, the round order and the figures.

Nothing here talks to a broker, so tests/unit/test_bench_events.py checks it without one.
"""

from __future__ import annotations

import statistics
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from google.protobuf import timestamp_pb2

from qmtl.events.v1 import alert_events_pb2, event_pb2

EVENT_TYPE = "qmtl.ops.alert_raised"
SOURCE = "qmtl/bench/events"
# The message text is padded until the serialized Event is exactly this long.
PAD = "x"


class WorkloadError(Exception):
    """A workload the bench cannot build (a size below an empty event's, no subjects)."""


def make_event(index: int, run: str, size: int, subjects: int) -> event_pb2.Event:
    """Event number `index` of a run, serialized to exactly `size` bytes.

    Real alerts carry ids, a subject and text; the subject cycles through `subjects` values so
    the events spread over partitions by key, as a service's events do."""
    if subjects < 1:
        raise WorkloadError(f"subjects must be >= 1, got {subjects}")
    event = event_pb2.Event(
        id=f"{run}-{index:09d}",
        type=EVENT_TYPE,
        source=SOURCE,
        time=timestamp_pb2.Timestamp(seconds=1_700_000_000 + index),
        subject=f"services/bench-{index % subjects:04d}",
        idempotency_key=f"bench:{run}:{index}",
        alert_raised=alert_events_pb2.AlertRaised(
            level=alert_events_pb2.ALERT_LEVEL_INFO, name="BenchEvent", target_id=run
        ),
    )
    base = event.ByteSize()
    if size < base + 2:  # field tag + length byte of the smallest message
        raise WorkloadError(f"size {size} is below the {base + 2} bytes of an empty bench event")
    # The length prefix of the text grows by a byte at 128 and 16,384: pad, measure, trim.
    event.alert_raised.message = PAD * (size - base - 2)
    while event.ByteSize() > size:
        event.alert_raised.message = event.alert_raised.message[:-1]
    if event.ByteSize() != size:
        raise WorkloadError(f"no padding makes the event exactly {size} bytes")
    return event


def make_events(count: int, size: int, subjects: int) -> list[event_pb2.Event]:
    run = uuid.uuid4().hex[:12]
    return [make_event(i, run, size, subjects) for i in range(count)]


def batches(events: Sequence[event_pb2.Event], size: int) -> list[Sequence[event_pb2.Event]]:
    """The publish calls of a round: `size` events each, the last one shorter."""
    if size < 1:
        raise WorkloadError(f"batch size must be >= 1, got {size}")
    return [events[start : start + size] for start in range(0, len(events), size)]


def round_order(round_index: int, contenders: Sequence[str]) -> list[str]:
    """Who goes first alternates round by round, so warming (page cache, JIT-free as CPython
    is, the broker's log segments) and drifting load favour neither side."""
    ordered = list(contenders)
    return ordered if round_index % 2 == 0 else ordered[::-1]


@dataclass(frozen=True, slots=True)
class RoundResult:
    """One contender's round: `count` events published in `publish_s` (time of the last
    acknowledgement) and all of them handled by the consumer `total_s` after the start; then
    a second group handling all of them from the topic in `replay_s` (consume alone);
    `redelivered` deliveries of an id already handled (0 in a healthy run)."""

    count: int
    publish_s: float
    total_s: float
    replay_s: float = 0.0
    redelivered: int = 0

    @property
    def events_per_s(self) -> float:
        return self.count / self.total_s

    @property
    def publish_events_per_s(self) -> float:
        return self.count / self.publish_s

    @property
    def replay_events_per_s(self) -> float:
        return self.count / self.replay_s if self.replay_s > 0 else 0.0


@dataclass(frozen=True, slots=True)
class Figures:
    """The median round of a contender (medians are robust to one round hit by other work)."""

    rounds: int
    events_per_s: float
    publish_events_per_s: float
    replay_events_per_s: float
    mb_per_s: float
    spread: tuple[float, float]  # slowest and fastest round, events/s

    def as_dict(self) -> dict[str, object]:
        return {
            "rounds": self.rounds,
            "events_per_s": round(self.events_per_s),
            "publish_events_per_s": round(self.publish_events_per_s),
            "replay_events_per_s": round(self.replay_events_per_s),
            "mb_per_s": round(self.mb_per_s, 2),
            "slowest_round_events_per_s": round(self.spread[0]),
            "fastest_round_events_per_s": round(self.spread[1]),
        }


def figures(results: Sequence[RoundResult], event_size: int) -> Figures:
    if not results:
        raise WorkloadError("figures of no rounds")
    throughput = [r.events_per_s for r in results]
    median = statistics.median(throughput)
    return Figures(
        rounds=len(results),
        events_per_s=median,
        publish_events_per_s=statistics.median(r.publish_events_per_s for r in results),
        replay_events_per_s=statistics.median(r.replay_events_per_s for r in results),
        mb_per_s=median * event_size / 1_000_000,
        spread=(min(throughput), max(throughput)),
    )


def ratio(ours: Figures, baseline: Figures) -> float:
    """Ours / baseline in events per second: 1.0 is parity, the goal is >= 0.8."""
    if baseline.events_per_s <= 0:
        raise WorkloadError("the baseline handled no events")
    return ours.events_per_s / baseline.events_per_s


def paired_ratio(ours: Sequence[RoundResult], baseline: Sequence[RoundResult]) -> float:
    """The median of ours / baseline within each round: the two ran back to back, so a load
    that drifts over the run (other work on the machine) cancels out of each pair."""
    if not ours or len(ours) != len(baseline):
        raise WorkloadError(f"{len(ours)} rounds of ours against {len(baseline)} of the baseline")
    pairs = zip(ours, baseline, strict=True)
    return statistics.median(o.events_per_s / b.events_per_s for o, b in pairs)
