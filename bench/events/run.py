"""Publish+consume throughput of 1 KB events: the EventBus's Kafka adapter against raw aiokafka
with the same safe settings, on the same broker, in the same run (bench/events/README.md).

    .venv/bin/python -m bench.events.run [--quick] [--events N] [--rounds R] [--results PATH]

A round of one contender: a fresh topic (6 partitions) and consumer group; the subscriber
starts and a marker event is published and awaited, so group join and partition assignment
are behind us; then the clock starts, N events are published 100 per call (each call returns
once the broker acknowledged all of them) while the subscriber handles them, and the clock
stops when the handler has seen every one. Contenders alternate who goes first round by
round; the median round is reported, with the ratio bus / raw (goal >= 0.8). Progress goes to
stderr, the table to stdout, the figures into bench/results/latest.json under "events".
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.graph.stats import format_table
from bench.results import RESULTS, Figure, merge_report, print_figures
from qmtl.runtime.endpoints import ServiceEndpoints
from qmtl.runtime.eventbus import Delivery
from qmtl.runtime.eventbus.topics import EVENT_TOPIC_PARTITIONS

from .contenders import (
    BrokerSetupError,
    BusContender,
    Contender,
    RawContender,
    create_topic,
    delete_topics,
)
from .workload import (
    RoundResult,
    WorkloadError,
    batches,
    figures,
    make_event,
    make_events,
    paired_ratio,
    ratio,
    round_order,
)

SECTION = "events"
GOAL_RATIO = 0.8
FULL = {"events": 10_000, "rounds": 10}
QUICK = {"events": 2_000, "rounds": 2}
# A round that has not seen every event after this long has lost some: the bench stops.
ROUND_TIMEOUT_S = 120.0


class BenchCheckError(Exception):
    """What was measured is not the work claimed (events lost, foreign events, a timeout)."""


def progress(message: str) -> None:
    print(f"[events] {message}", file=sys.stderr, flush=True)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke test: 2,000 events, 2 rounds")
    parser.add_argument("--events", type=int, help="events per round (10,000)")
    parser.add_argument("--rounds", type=int, help="timed rounds per contender (10)")
    parser.add_argument("--size", type=int, default=1024, help="serialized event bytes (1024)")
    parser.add_argument("--batch", type=int, default=100, help="events per publish call (100)")
    parser.add_argument("--subjects", type=int, default=64, help="distinct subjects (keys) (64)")
    parser.add_argument(
        "--partitions", type=int, default=EVENT_TOPIC_PARTITIONS, help="partitions per topic"
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help="JSON file to merge into")
    args = parser.parse_args(argv)
    defaults = QUICK if args.quick else FULL
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    for name in ("events", "rounds", "size", "batch", "subjects", "partitions"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1")
    return args


@dataclass(slots=True)
class Tally:
    """The handler of a round: counts the round's events, spots the marker among the set-up
    events (ids starting with `setup_prefix`: the partition probes and the marker), and
    remembers deliveries beyond the first of an id (a redelivery would inflate the figure)."""

    setup_prefix: str
    marker_id: str
    expected: frozenset[str]
    marker_seen: asyncio.Event = field(default_factory=asyncio.Event)
    all_seen: asyncio.Event = field(default_factory=asyncio.Event)
    seen: set[str] = field(default_factory=set)
    deliveries: int = 0
    foreign: int = 0
    # perf_counter of the first delivery of any kind and of the last expected event's
    first_at: float = 0.0
    done_at: float = 0.0

    async def __call__(self, delivery: Delivery) -> None:
        if not self.first_at:
            self.first_at = time.perf_counter()
        event_id = delivery.event.id
        if event_id.startswith(self.setup_prefix):
            if event_id == self.marker_id:
                self.marker_seen.set()
            return
        if event_id not in self.expected:
            self.foreign += 1
            return
        self.deliveries += 1
        self.seen.add(event_id)
        if len(self.seen) == len(self.expected) and not self.all_seen.is_set():
            self.done_at = time.perf_counter()
            self.all_seen.set()


async def _await(what: asyncio.Event, contender: str, step: str) -> None:
    try:
        await asyncio.wait_for(what.wait(), ROUND_TIMEOUT_S)
    except TimeoutError:
        raise BenchCheckError(
            f"{contender}: {step} not seen after {ROUND_TIMEOUT_S:.0f} s"
        ) from None


async def run_round(
    contender: Contender, bootstrap: str, topic: str, count: int, args: argparse.Namespace
) -> RoundResult:
    events = make_events(count, args.size, args.subjects)
    setup = f"{topic}-setup"
    probes = [make_event(p, setup, args.size, args.subjects) for p in range(args.partitions)]
    marker = make_event(args.partitions, setup, args.size, args.subjects)
    tally = Tally(setup, marker.id, frozenset(e.id for e in events))
    await create_topic(bootstrap, topic, args.partitions, probes)
    subscription = await contender.subscribe(topic, f"{topic}-group", tally)
    try:
        await contender.publish(topic, [marker])
        await _await(tally.marker_seen, contender.name, "the marker event")
        start = time.perf_counter()
        for chunk in batches(events, args.batch):
            await contender.publish(topic, chunk)
        published = time.perf_counter() - start
        await _await(tally.all_seen, contender.name, f"all {count:,} events")
        total = time.perf_counter() - start
    finally:
        await subscription.stop()
    replay = await replay_round(contender, topic, tally)
    for done in (tally, replay):
        if done.foreign:
            raise BenchCheckError(f"{contender.name}: {done.foreign} events of another run")
    redelivered = tally.deliveries - len(tally.seen) + replay.deliveries - len(replay.seen)
    return RoundResult(count, published, total, replay.done_at - replay.first_at, redelivered)


async def replay_round(contender: Contender, topic: str, live: Tally) -> Tally:
    """A new group reads the whole topic: consume alone, timed from its first delivery (so
    the group join is not counted) to its last expected event."""
    replay = Tally(live.setup_prefix, live.marker_id, live.expected)
    subscription = await contender.subscribe(topic, f"{topic}-replay", replay)
    try:
        await _await(replay.all_seen, contender.name, f"the replay of {len(live.expected):,}")
    finally:
        await subscription.stop()
    return replay


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    endpoints = ServiceEndpoints.from_env()
    bootstrap = endpoints.kafka_bootstrap
    load = os.getloadavg()[0]  # other work on the machine moves every figure; say how much
    run_id = uuid.uuid4().hex[:8]
    topics: list[str] = []
    results: dict[str, list[RoundResult]] = {"bus": [], "raw": []}
    contenders: dict[str, Contender] = {}
    try:
        contenders["bus"] = await BusContender.connect(bootstrap)
        contenders["raw"] = await RawContender.connect(bootstrap)
        for index in range(-1, args.rounds):  # round -1 warms both up and is not counted
            count = max(args.batch, args.events // 10) if index < 0 else args.events
            for name in round_order(index, ("bus", "raw")):
                topic = f"qmtl-bench-events-{run_id}-{name}-{index + 1}"
                topics.append(topic)
                result = await run_round(contenders[name], bootstrap, topic, count, args)
                label = "warm-up" if index < 0 else f"round {index + 1}/{args.rounds}"
                progress(
                    f"{label} {name}: {result.events_per_s:,.0f} events/s, "
                    f"replay {result.replay_events_per_s:,.0f} events/s"
                )
                if index >= 0:
                    results[name].append(result)
    finally:
        try:
            for contender in contenders.values():
                await contender.aclose()
        finally:
            await delete_topics(bootstrap, topics)
    bus, raw = figures(results["bus"], args.size), figures(results["raw"], args.size)
    return {
        "run_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "quick": args.quick,
        "machine": f"{platform.machine()} x{os.cpu_count()}, load average {load:.1f} at start, "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"Kafka at {bootstrap}",
        "settings": {
            "events_per_round": args.events,
            "event_bytes": args.size,
            "events_per_publish": args.batch,
            "subjects": args.subjects,
            "partitions": args.partitions,
        },
        "bus": bus.as_dict(),
        "raw": raw.as_dict(),
        "ratio": round(ratio(bus, raw), 3),
        "replay_ratio": round(bus.replay_events_per_s / raw.replay_events_per_s, 3),
        "paired_ratio": round(paired_ratio(results["bus"], results["raw"]), 3),
        "redeliveries": {name: sum(r.redelivered for r in rs) for name, rs in results.items()},
        "goal_ratio": GOAL_RATIO,
    }


def _row(label: str, fig: dict[str, Any]) -> list[str]:
    return [
        label,
        f"{fig['events_per_s']:,}",
        f"{fig['mb_per_s']:.2f}",
        f"{fig['publish_events_per_s']:,}",
        f"{fig['replay_events_per_s']:,}",
        f"{fig['slowest_round_events_per_s']:,} - {fig['fastest_round_events_per_s']:,}",
    ]


def render(report: dict[str, Any]) -> str:
    settings = report["settings"]
    # The verdict is on the per-round ratio: each pair ran back to back, so load from other
    # work on the machine, which drifts over a run, cancels out of it.
    met = "met" if report["paired_ratio"] >= report["goal_ratio"] else "NOT met"
    headers = [
        "1 KB events, median round",
        "events/s",
        "MB/s",
        "publish events/s",
        "replay events/s",
        "rounds (events/s)",
    ]
    return "\n".join(
        [
            f"events bench{' (--quick)' if report['quick'] else ''}: {report['machine']}",
            f"{settings['events_per_round']:,} events of {settings['event_bytes']} B per round, "
            f"{settings['events_per_publish']} per publish call, {settings['subjects']} subjects "
            f"over {settings['partitions']} partitions; {report['bus']['rounds']} rounds each",
            "",
            format_table(
                headers,
                [
                    _row("EventBus (KafkaEventBus)", report["bus"]),
                    _row("raw aiokafka, same settings", report["raw"]),
                ],
            ),
            "",
            f"bus / raw = {report['paired_ratio']:.2f}x, the median of the per-round ratios "
            f"(goal >= {report['goal_ratio']}: {met}); of the median rounds "
            f"{report['ratio']:.2f}x; replay (consume alone) {report['replay_ratio']:.2f}x",
            f"redeliveries: bus {report['redeliveries']['bus']}, "
            f"raw {report['redeliveries']['raw']}",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    try:
        report = asyncio.run(bench(args))
    except (BenchCheckError, BrokerSetupError, WorkloadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(render(report))
    # A smoke run must not replace the figures of a full one.
    section = f"{SECTION}-quick" if args.quick else SECTION
    data = [
        Figure(
            "EventBus vs raw aiokafka (paired rounds)",
            report["bus"]["events_per_s"],
            report["raw"]["events_per_s"],
            "events/s",
            report["goal_ratio"],
            ratio=report["paired_ratio"],
        ),
        Figure(
            "replay vs raw aiokafka",
            report["bus"]["replay_events_per_s"],
            report["raw"]["replay_events_per_s"],
            "events/s",
            None,
        ),
    ]
    print_figures(section, data)
    merge_report(args.results, section, report, data)
    print(f"\nfigures merged into {args.results} under {section!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
