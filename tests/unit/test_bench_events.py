"""bench/events' pure parts: the 1 KB events, batching, the round order, the figures, the
round's handler, the arguments and the table. No timing is asserted and no broker is used;
the bench itself runs in `make bench`."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench.events import contenders, run
from bench.events.workload import (
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
from bench.results import merge_report
from qmtl.events.v1 import event_pb2
from qmtl.runtime.eventbus import Delivery, decode, encode


@pytest.mark.parametrize("size", [200, 1024, 4096, 20_000])
def test_events_serialize_to_exactly_the_asked_size(size: int) -> None:
    for index in (0, 7, 123_456):
        assert make_event(index, "run1", size, 64).ByteSize() == size


def test_events_are_valid_bus_events_with_unique_ids_and_cycling_subjects() -> None:
    events = make_events(130, 1024, 64)
    assert len({e.id for e in events}) == 130
    assert len({e.subject for e in events}) == 64
    assert events[0].subject == events[64].subject != events[1].subject
    for event in events[:3]:
        wire = encode(event)  # the bus's own wire: key = subject, value = the Event
        assert wire.key == event.subject.encode()
        assert decode(wire.value, wire.headers) == event
        assert event.WhichOneof("payload") == "alert_raised"


def test_a_size_below_an_empty_event_or_no_subjects_is_refused() -> None:
    with pytest.raises(WorkloadError, match="below"):
        make_event(0, "run1", 10, 64)
    with pytest.raises(WorkloadError, match="subjects"):
        make_event(0, "run1", 1024, 0)


def test_batches_cover_every_event_in_order() -> None:
    events = make_events(250, 200, 4)
    chunks = batches(events, 100)
    assert [len(c) for c in chunks] == [100, 100, 50]
    assert [e.id for c in chunks for e in c] == [e.id for e in events]
    with pytest.raises(WorkloadError):
        batches(events, 0)


def test_round_order_alternates_who_goes_first() -> None:
    orders = [round_order(i, ("bus", "raw")) for i in range(-1, 4)]
    assert orders == [
        ["raw", "bus"],
        ["bus", "raw"],
        ["raw", "bus"],
        ["bus", "raw"],
        ["raw", "bus"],
    ]


def test_figures_take_the_median_round_and_the_ratio_compares_medians() -> None:
    ours = figures(
        [
            RoundResult(1000, 0.5, 1.0, 0.1),
            RoundResult(1000, 0.25, 0.5, 0.2),
            RoundResult(1000, 1, 4.0, 0.4),
        ],
        1024,
    )
    assert ours.events_per_s == 1000.0  # median of 1000, 2000, 250
    assert ours.publish_events_per_s == 2000.0
    assert ours.replay_events_per_s == 5000.0  # median of 10,000, 5,000, 2,500
    assert ours.spread == (250.0, 2000.0)
    assert ours.mb_per_s == pytest.approx(1.024)
    baseline = figures([RoundResult(1000, 0.4, 0.8)], 1024)
    assert ratio(ours, baseline) == pytest.approx(0.8)
    assert ours.as_dict()["events_per_s"] == 1000
    with pytest.raises(WorkloadError):
        figures([], 1024)


def test_paired_ratio_is_the_median_of_the_per_round_ratios() -> None:
    ours = [RoundResult(100, 1, 1.0), RoundResult(100, 1, 2.0), RoundResult(100, 1, 0.5)]
    base = [RoundResult(100, 1, 0.5), RoundResult(100, 1, 1.0), RoundResult(100, 1, 1.0)]
    # per round 0.5, 0.5, 2.0; the medians of each side (100 and 100) would say parity
    assert paired_ratio(ours, base) == 0.5
    assert ratio(figures(ours, 1024), figures(base, 1024)) == 1.0
    with pytest.raises(WorkloadError):
        paired_ratio(ours, base[:2])


def _delivery(event_id: str) -> Delivery:
    return Delivery(event_pb2.Event(id=event_id, type="t", subject="s"), "topic", 0, 0)


async def test_tally_counts_the_rounds_events_once_and_notes_redeliveries() -> None:
    tally = run.Tally("setup-", "setup-marker", frozenset({"a", "b"}))
    await tally(_delivery("setup-probe"))
    assert not tally.marker_seen.is_set()
    await tally(_delivery("setup-marker"))
    assert tally.marker_seen.is_set()
    assert not tally.all_seen.is_set()
    await tally(_delivery("a"))
    await tally(_delivery("a"))  # a redelivery: not a new event
    assert not tally.all_seen.is_set()
    await tally(_delivery("elsewhere"))
    await tally(_delivery("b"))
    assert tally.all_seen.is_set()
    assert (tally.deliveries - len(tally.seen), tally.foreign) == (1, 1)
    assert 0 < tally.first_at <= tally.done_at


def test_parse_fills_full_or_quick_defaults_and_refuses_non_positive_values() -> None:
    full, quick = run.parse([]), run.parse(["--quick"])
    assert (full.events, full.rounds, full.size, full.batch) == (10_000, 10, 1024, 100)
    assert (quick.events, quick.rounds) == (2_000, 2)
    assert run.parse(["--quick", "--events", "500"]).events == 500
    with pytest.raises(SystemExit):
        run.parse(["--rounds", "0"])


def _report(bus: int, raw: int, paired: float = 0.85) -> dict[str, object]:
    def fig(eps: int) -> dict[str, object]:
        return {
            "rounds": 5,
            "events_per_s": eps,
            "publish_events_per_s": eps * 2,
            "replay_events_per_s": eps * 3,
            "mb_per_s": eps * 1024 / 1e6,
            "slowest_round_events_per_s": eps - 10,
            "fastest_round_events_per_s": eps + 10,
        }

    return {
        "quick": False,
        "machine": "test machine",
        "settings": {
            "events_per_round": 20_000,
            "event_bytes": 1024,
            "events_per_publish": 100,
            "subjects": 64,
            "partitions": 6,
        },
        "bus": fig(bus),
        "raw": fig(raw),
        "ratio": round(bus / raw, 3),
        "paired_ratio": paired,
        "replay_ratio": 0.75,
        "redeliveries": {"bus": 0, "raw": 0},
        "goal_ratio": run.GOAL_RATIO,
    }


def test_render_prints_both_figures_and_the_ratios_with_the_verdict() -> None:
    met = run.render(_report(9_000, 10_000))
    assert "9,000" in met
    assert "10,000" in met
    assert "27,000" in met  # the bus's replay events/s
    assert "bus / raw = 0.85x, the median of the per-round ratios (goal >= 0.8: met)" in met
    assert "of the median rounds 0.90x; replay (consume alone) 0.75x" in met
    # the verdict follows the per-round ratio, not the ratio of the medians
    missed = run.render(_report(9_000, 10_000, paired=0.79))
    assert "bus / raw = 0.79x, the median of the per-round ratios (goal >= 0.8: NOT met)" in missed


def test_the_report_merges_under_its_section_keeping_the_others(tmp_path: Path) -> None:
    path = tmp_path / "latest.json"
    path.write_text(json.dumps({"graph": {"x": 1}}))
    merge_report(path, run.SECTION, _report(9_000, 10_000))
    stored = json.loads(path.read_text())
    assert stored["graph"] == {"x": 1}
    assert stored["events"]["ratio"] == 0.9


def test_broker_answers_are_read_per_topic_and_a_missing_topic_may_be_ignored() -> None:
    created = SimpleNamespace(topic_errors=[("a", 0, None), ("b", 36, "exists")])
    assert contenders._errors(created) == ["b: error 36"]
    deleted = SimpleNamespace(topic_error_codes=[("a", 0), ("b", contenders.UNKNOWN_TOPIC)])
    assert contenders._errors(deleted, ignore=frozenset({contenders.UNKNOWN_TOPIC})) == []
    assert contenders._errors(deleted) == ["b: error 3"]
