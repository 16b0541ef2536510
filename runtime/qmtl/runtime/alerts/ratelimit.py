"""Which alerts reach the notifiers: one FIRING and one RESOLVED per dedupe key per window.

A flapping condition (a backend that goes down and up every few seconds) would otherwise send
hundreds of messages. Per dedupe key the gate remembers the state last *notified* and the state
last *observed*:
- a FIRING is sent when the key is not already notified as firing and no FIRING of that key
  was sent within `window_s`; otherwise it is only observed;
- a RESOLVED is sent when the key is notified as firing (a resolve of something never
  announced is dropped);
- `due()` sends what the window held back: a key whose window has passed and that was last
  observed FIRING while notified RESOLVED fires once more, so a flap that ends down is not
  left looking resolved.
Keys are kept in LRU order up to `capacity` (one-off alerts such as dead letters each have a
key of their own).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from .model import Alert

DEFAULT_WINDOW_S = 300.0
DEFAULT_CAPACITY = 10_000


@dataclass(slots=True)
class _KeyState:
    notified_firing: bool = False
    last_fire_sent: float = float("-inf")
    observed: Alert | None = None


class AlertGate:
    def __init__(
        self,
        *,
        window_s: float = DEFAULT_WINDOW_S,
        capacity: int = DEFAULT_CAPACITY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window_s = window_s
        self.capacity = capacity
        self._clock = clock
        self._keys: OrderedDict[str, _KeyState] = OrderedDict()
        self.suppressed = 0

    def admit(self, alert: Alert) -> bool:
        """True when `alert` is to be notified now."""
        key = self._state(alert.dedupe_key)
        key.observed = alert
        now = self._clock()
        if alert.firing:
            if key.notified_firing or now - key.last_fire_sent < self.window_s:
                self.suppressed += 1
                return False
            key.notified_firing, key.last_fire_sent = True, now
            return True
        if not key.notified_firing:
            self.suppressed += 1
            return False
        key.notified_firing = False
        return True

    def due(self) -> list[Alert]:
        """FIRING alerts held back by a window that has now passed."""
        now = self._clock()
        out = []
        for key in self._keys.values():
            observed = key.observed
            if (
                observed is not None
                and observed.firing
                and not key.notified_firing
                and now - key.last_fire_sent >= self.window_s
            ):
                key.notified_firing, key.last_fire_sent = True, now
                out.append(observed)
        return out

    def _state(self, dedupe_key: str) -> _KeyState:
        state = self._keys.get(dedupe_key)
        if state is None:
            state = self._keys[dedupe_key] = _KeyState()
            while len(self._keys) > self.capacity:
                self._keys.popitem(last=False)
        else:
            self._keys.move_to_end(dedupe_key)
        return state
