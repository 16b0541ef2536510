"""Intervals and periods (domain.md §2.4): what parses, what is refused, and that a node's
refusal names the node."""

from __future__ import annotations

from typing import Any

import pytest

from qmtl.services.sdk import AuthoringError, StreamInput, check_period, parse_interval


@pytest.mark.parametrize(
    ("given", "seconds"),
    [
        (1, 1),
        (60, 60),
        (86_400, 86_400),
        ("1s", 1),
        ("60s", 60),
        ("1m", 60),
        ("15m", 900),
        ("1h", 3600),
        ("24h", 86_400),
        ("1440m", 86_400),
        ("007s", 7),
    ],
)
def test_an_interval_is_whole_seconds_from_an_int_or_a_unit_string(
    given: Any, seconds: int
) -> None:
    assert parse_interval(given) == seconds


@pytest.mark.parametrize(
    "given",
    [
        0,
        -60,
        86_401,
        "0s",
        "25h",
        "86401s",
        "1d",  # days are not a unit: "24h" or 86400
        "60",  # a string needs its unit
        "60S",
        " 60s",
        "60s ",
        "60s\n",
        "1.5m",
        "-1m",
        "\u0663s",  # an Arabic-Indic digit matches \d but is not a number here
        "",
        True,
        1.5,
        None,
        [60],
    ],
)
def test_an_interval_outside_the_rule_is_refused(given: Any) -> None:
    with pytest.raises(ValueError, match=r"1\.\.86400|<digits><s\|m\|h>|int of seconds"):
        parse_interval(given)


@pytest.mark.parametrize("period", [1, 30, 10_000])
def test_a_period_is_a_bar_count_of_1_to_10000(period: int) -> None:
    assert check_period(period) == period


@pytest.mark.parametrize("period", [0, -1, 10_001, True, 5.0, "5", None])
def test_a_period_outside_the_rule_is_refused(period: Any) -> None:
    with pytest.raises(ValueError, match="bar"):
        check_period(period)


def test_a_node_gets_the_interval_in_seconds() -> None:
    assert StreamInput(tags=["BTC"], interval="1h", period=3).interval == 3600


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"interval": "1d"}, r"StreamInput 'prices': interval: '1d' is not <digits><s\|m\|h>"),
        ({"interval": 0}, r"StreamInput 'prices': interval: must be 1\.\.86400 seconds, got 0"),
        ({"period": 0}, r"StreamInput 'prices': period: must be 1\.\.10000 bars, got 0"),
        ({"period": 10_001}, r"StreamInput 'prices': period: must be 1\.\.10000 bars"),
    ],
)
def test_a_bad_interval_or_period_is_an_authoring_error_naming_the_node(
    fields: dict[str, Any], message: str
) -> None:
    arguments: dict[str, Any] = {"tags": ["BTC"], "interval": 60, "period": 5, "name": "prices"}
    with pytest.raises(AuthoringError, match=message):
        StreamInput(**(arguments | fields))
