"""Regular expressions for decimal strings within a 64-bit integer range.

The proto3 JSON mapping writes 64-bit integers as decimal strings, and JSON Schema bounds
(`minimum`, `maximum`) apply to numbers only, so the range the parsers enforce is stated as a
pattern instead. Leading zeros and `-0` are allowed because every parser of the surface (the
routers' query parser, protobuf's JSON parser) reads them as the same number.
"""

from __future__ import annotations

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
UINT64_MAX = 2**64 - 1


def at_most(bound: int) -> str:
    """A regex alternation (no anchors) of the digit strings, leading zeros stripped, <= bound."""
    digits = str(bound)
    width = len(digits)
    choices = [f"[0-9]{{1,{width - 1}}}"] if width > 1 else []
    for index, char in enumerate(digits):
        top = int(char)
        if top == 0:
            continue
        rest = width - index - 1
        low = "0" if top == 1 else f"[0-{top - 1}]"
        choices.append(digits[:index] + low + (f"[0-9]{{{rest}}}" if rest else ""))
    choices.append(digits)
    return "|".join(choices)


def signed(low: int, high: int) -> str:
    """An anchored pattern of the decimal strings in [low, high], low < 0 <= high."""
    positive = at_most(high)
    # Two's complement ranges reach one further below zero: only that number needs a branch.
    negative = str(-low) if -low == high + 1 else at_most(-low)
    return f"^(?:-?0*(?:{positive})|-0*(?:{negative}))$"


def unsigned(high: int) -> str:
    """An anchored pattern of the decimal strings in [0, high]."""
    return f"^0*(?:{at_most(high)})$"


INT64_RANGE_PATTERN = signed(INT64_MIN, INT64_MAX)
UINT64_RANGE_PATTERN = unsigned(UINT64_MAX)
