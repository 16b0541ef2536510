"""Per-node input windows, by bucket, and the alignment rule (docs/operations/data-plane.md).

A node keeps, for each of its inputs, the bars it received keyed by bucket (Unix seconds).
Alignment: the node computes bucket t once, when every input has a bar for t. The window it
then sees of an input is that input's (at most) `period` most recent bars at or before t,
oldest first. Node topics have one partition, so an input's bars arrive in bucket order and
every bar before t has arrived when t is computed: the window, and its hash, are the same
whenever the same input is replayed.

After computing t an input keeps its `period` most recent bars at or before t plus every bar
after t (waiting for the other inputs); older bars are dropped, and a bar that arrives for a
bucket older than everything kept is ignored as too late.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Bar:
    bucket: int
    value: Any
    ident: str
    """What identifies the bar's content (a hash of its record); equal idents are one bar."""


class NodeWindows:
    """The windows of one node over its inputs (keys: upstream node ids, or topics for a tag
    query, whose inputs are the queues its query resolved to)."""

    def __init__(self, inputs: tuple[str, ...], period: int) -> None:
        self.period = period
        self._bars: dict[str, dict[int, Bar]] = {key: {} for key in inputs}
        self._computed: set[int] = set()
        # Buckets below this were dropped; a bar for one of them is too late to use.
        self._floor: int | None = None

    @property
    def inputs(self) -> tuple[str, ...]:
        return tuple(self._bars)

    def add_input(self, key: str) -> None:
        self._bars.setdefault(key, {})

    def computed(self, bucket: int) -> bool:
        return bucket in self._computed

    def add(self, key: str, bar: Bar) -> int | None:
        """Records `bar` for input `key`; the bucket that is now ready to compute (every input
        has it and it was not computed yet), else None. A repeat of a bar is ignored."""
        bars = self._bars[key]
        if self._floor is not None and bar.bucket < self._floor:
            return None
        known = bars.get(bar.bucket)
        if known is not None and known.ident == bar.ident:
            return None
        bars[bar.bucket] = bar
        if bar.bucket in self._computed:
            return None
        if all(bar.bucket in others for others in self._bars.values()):
            return bar.bucket
        return None

    def window(self, key: str, bucket: int) -> list[Bar]:
        """Input `key`'s (at most) `period` most recent bars at or before `bucket`, oldest
        first."""
        bars = self._bars[key]
        upto = sorted(b for b in bars if b <= bucket)[-self.period :]
        return [bars[b] for b in upto]

    def window_hash(self, bucket: int) -> str:
        """Hash of what the node sees at `bucket`: each input's window, in input order. 64
        hex digits (a Record's input_window_hash must not hold ':' or '#')."""
        digest = hashlib.sha256()
        for key in sorted(self._bars):
            digest.update(f"{key}\n".encode())
            for bar in self.window(key, bucket):
                digest.update(f"{bar.bucket}:{bar.ident}\n".encode())
        return digest.hexdigest()

    def mark_computed(self, bucket: int) -> None:
        self._computed.add(bucket)
        floors: list[int] = []
        for bars in self._bars.values():
            kept = sorted(b for b in bars if b <= bucket)[-self.period :]
            oldest = kept[0] if kept else bucket
            for old in [b for b in bars if b < oldest]:
                del bars[old]
            floors.append(oldest)
        floor = min(floors)
        self._floor = floor if self._floor is None else max(self._floor, floor)
        self._computed = {b for b in self._computed if b >= self._floor}

    def __len__(self) -> int:
        return sum(len(bars) for bars in self._bars.values())
