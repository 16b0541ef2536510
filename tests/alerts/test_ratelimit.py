"""AlertGate: one FIRING and one RESOLVED per dedupe key per window."""

from __future__ import annotations

from qmtl.runtime.alerts import AlertGate
from tests.alerts.alert_support import alert, resolved


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_flapping_condition_notifies_one_firing_and_one_resolve_per_window() -> None:
    clock = Clock()
    gate = AlertGate(window_s=300, clock=clock)
    admitted = []
    for _ in range(100):
        for a in (alert(key="flap"), resolved("flap")):
            clock.now += 1
            if gate.admit(a):
                admitted.append(a.state_name)
    assert admitted == ["FIRING", "RESOLVED"]
    assert gate.suppressed == 198
    assert gate.due() == []  # the flap ended resolved: nothing held back


def test_a_flap_that_ends_firing_fires_again_once_the_window_has_passed() -> None:
    clock = Clock()
    gate = AlertGate(window_s=300, clock=clock)
    assert gate.admit(alert(key="k"))
    assert gate.admit(resolved("k"))
    clock.now += 10
    assert not gate.admit(alert(key="k"))  # inside the window: held back
    assert gate.due() == []
    clock.now += 300
    [again] = gate.due()
    assert (again.firing, again.dedupe_key) == (True, "k")
    assert gate.due() == []
    assert gate.admit(resolved("k"))  # and its resolve goes out


def test_a_duplicate_firing_and_a_resolve_of_nothing_are_dropped() -> None:
    gate = AlertGate(window_s=0, clock=Clock())
    assert not gate.admit(resolved("never-fired"))
    assert gate.admit(alert(key="k"))
    assert not gate.admit(alert(key="k"))  # already notified as firing
    assert gate.admit(resolved("k"))
    assert not gate.admit(resolved("k"))


def test_keys_are_independent_and_bounded() -> None:
    gate = AlertGate(window_s=300, capacity=2, clock=Clock())
    assert gate.admit(alert(key="a"))
    assert gate.admit(alert(key="b"))
    assert gate.admit(alert(key="c"))  # evicts a
    assert gate.admit(alert(key="a"))  # forgotten: a new condition
    assert not gate.admit(alert(key="c"))
