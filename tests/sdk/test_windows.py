"""Window logic: alignment (a node computes bucket t once, when every input has t), the
window of `period` bars at or before t, its hash, repeats, pruning and late bars."""

from __future__ import annotations

from qmtl.services.sdk.runner.windows import Bar, NodeWindows


def bar(bucket: int, value: float, ident: str | None = None) -> Bar:
    return Bar(bucket, value, ident or f"id-{bucket}-{value}")


def test_a_single_input_node_is_ready_at_each_new_bucket() -> None:
    windows = NodeWindows(("src",), period=3)
    ready = []
    for t in range(0, 300, 60):
        ready.append(windows.add("src", bar(t, t / 60)))
        windows.mark_computed(t)
    assert ready == [0, 60, 120, 180, 240]
    assert [b.value for b in windows.window("src", 240)] == [2.0, 3.0, 4.0]
    assert [b.value for b in windows.window("src", 60)] == []  # pruned: older than the window


def test_the_window_holds_at_most_period_bars_at_or_before_the_bucket() -> None:
    windows = NodeWindows(("src",), period=3)
    for t in (0, 60, 120, 180):
        windows.add("src", bar(t, t))
    assert [b.bucket for b in windows.window("src", 120)] == [0, 60, 120]
    assert [b.bucket for b in windows.window("src", 60)] == [0, 60]
    assert [b.bucket for b in windows.window("src", 180)] == [60, 120, 180]


def test_a_two_input_node_waits_until_both_inputs_have_the_bucket() -> None:
    windows = NodeWindows(("fast", "slow"), period=2)
    assert windows.add("fast", bar(0, 1.0)) is None
    assert windows.add("fast", bar(60, 2.0)) is None
    assert windows.add("slow", bar(60, 9.0)) == 60  # 0 never computes: slow has no bar for it
    windows.mark_computed(60)
    assert windows.add("slow", bar(120, 8.0)) is None
    assert windows.add("fast", bar(120, 3.0)) == 120


def test_each_bucket_is_ready_once_and_a_repeated_bar_is_ignored() -> None:
    windows = NodeWindows(("src",), period=2)
    assert windows.add("src", bar(0, 1.0)) == 0
    windows.mark_computed(0)
    assert windows.add("src", bar(0, 1.0)) is None  # a redelivery
    assert windows.add("src", bar(0, 5.0, "corrected")) is None  # computed already
    assert windows.computed(0)
    assert windows.add("src", bar(60, 2.0)) == 60
    assert windows.add("src", bar(60, 2.0)) is None  # not computed yet, but the same bar


def test_the_window_hash_changes_with_the_window_and_only_with_it() -> None:
    one, two = NodeWindows(("src",), period=2), NodeWindows(("src",), period=2)
    for windows in (one, two):
        windows.add("src", bar(0, 1.0))
        windows.add("src", bar(60, 2.0))
    assert one.window_hash(60) == two.window_hash(60)
    assert len(one.window_hash(60)) == 64
    assert ":" not in one.window_hash(60)
    assert one.window_hash(0) != one.window_hash(60)
    two.add("src", bar(60, 2.5, "other"))  # a different bar for the same bucket
    assert one.window_hash(60) != two.window_hash(60)
    assert one.window_hash(0) == two.window_hash(0)


def test_a_bar_older_than_what_is_kept_is_too_late() -> None:
    windows = NodeWindows(("src",), period=2)
    for t in (0, 60, 120, 180):
        windows.add("src", bar(t, t))
        windows.mark_computed(t)
    assert windows.add("src", bar(0, 99.0, "late")) is None
    assert [b.bucket for b in windows.window("src", 180)] == [120, 180]
    assert len(windows) == 2


def test_an_input_added_later_must_have_the_bucket_too() -> None:
    windows = NodeWindows(("a",), period=2)
    assert windows.add("a", bar(0, 1.0)) == 0
    windows.mark_computed(0)
    windows.add_input("b")
    assert windows.add("a", bar(60, 2.0)) is None
    assert windows.add("b", bar(60, 7.0)) == 60
    assert windows.inputs == ("a", "b")
