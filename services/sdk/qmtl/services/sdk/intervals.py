"""Bar intervals and periods as the platform counts them (domain.md §2.4).

An interval is whole seconds, 1..86400, given as an int or as `"<n>s"`, `"<n>m"` or `"<n>h"`
(`"60s"`, `"1m"`, `"1h"`); days are spelled `"24h"` or `86400`. A period is a bar count,
1..10000. The bounds are the DAG validator's, so what parses here the Gateway accepts.
"""

from __future__ import annotations

import re

from qmtl.runtime.dag_validation import MAX_INTERVAL_SECONDS, MAX_PERIOD

# [0-9], not \d: \d also matches non-ASCII digits such as "٣".
_INTERVAL_TEXT = re.compile(r"([0-9]+)([smh])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}


def parse_interval(value: int | str) -> int:
    """Seconds of `value`; raises ValueError saying what is accepted."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(
            f"must be an int of seconds or a string like '60s', '1m', '1h', got {value!r}"
        )
    if isinstance(value, str):
        match = _INTERVAL_TEXT.fullmatch(value)
        if match is None:
            raise ValueError(
                f"{value!r} is not <digits><s|m|h> (e.g. '60s', '1m', '1h'); "
                "days are '24h' or 86400"
            )
        seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    else:
        seconds = value
    if not 0 < seconds <= MAX_INTERVAL_SECONDS:
        raise ValueError(f"must be 1..{MAX_INTERVAL_SECONDS} seconds, got {value!r}")
    return seconds


def check_period(value: int) -> int:
    """`value` if it is a bar count the platform accepts; raises ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"must be an int bar count, got {value!r}")
    if not 1 <= value <= MAX_PERIOD:
        raise ValueError(f"must be 1..{MAX_PERIOD} bars, got {value}")
    return value
