"""Patterns of the JSON strings of google.protobuf.Duration and Timestamp, exact to the range.

The proto3 JSON mapping defines Durations of at most +-315,576,000,000 s (10,000 years) and
Timestamps from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z; the servers refuse a
value outside either (400). `format: date-time` alone admits year 0000, lower-case `t`/`z`,
leap seconds and offsets past the range, none of which the servers read, so the documents
state these patterns instead of leaving the range to prose. Both are ECMA-262 and Python
compatible (one negative lookahead, no other extensions).
"""

from __future__ import annotations

from qmtl_codegen.decimal_range import at_most

DURATION_MAX_SECONDS = 315_576_000_000

# Seconds (leading zeros allowed, as the parser reads them), 1 to 9 fraction digits, then `s`.
DURATION_PATTERN = rf"^-?0*(?:{at_most(DURATION_MAX_SECONDS)})(?:\.[0-9]{{1,9}})?s$"

_DAY_31 = "(?:0[1-9]|[12][0-9]|3[01])"
_DAY_30 = "(?:0[1-9]|[12][0-9]|30)"
_MONTH_DAY = f"(?:(?:0[13578]|1[02])-{_DAY_31}|(?:0[469]|11)-{_DAY_30}|02-(?:0[1-9]|1[0-9]|2[0-8]))"
# Gregorian leap years among 0001-9999: divisible by 4, not by 100 unless by 400 (0000 is not
# a year of the range, and neither branch matches it).
_MULTIPLE_OF_4 = "(?:0[48]|[2468][048]|[13579][26])"
_LEAP_DAY = f"(?:[0-9]{{2}}{_MULTIPLE_OF_4}|{_MULTIPLE_OF_4}00)-02-29"
_DATE = f"(?:(?!0000)[0-9]{{4}}-{_MONTH_DAY}|{_LEAP_DAY})"
_TIME = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,9})?"
_HOURS_MINUTES = "(?:[01][0-9]|2[0-3]):[0-5][0-9]"
_OFFSET = f"(?:Z|[+-]{_HOURS_MINUTES})"
_FIRST_DAY, _LAST_DAY = "0001-01-01", "9999-12-31"

# On the range's first and last day an offset could move the instant out of it; there the
# pattern admits only offsets that cannot (a later UTC time on the first day, an earlier one
# on the last). The servers also read, say, 0001-01-01T05:00:00+01:00; it is left undescribed.
TIMESTAMP_PATTERN = (
    f"^(?:(?!{_FIRST_DAY}|{_LAST_DAY}){_DATE}T{_TIME}{_OFFSET}"
    f"|{_FIRST_DAY}T{_TIME}(?:Z|-{_HOURS_MINUTES}|\\+00:00)"
    f"|{_LAST_DAY}T{_TIME}(?:Z|\\+{_HOURS_MINUTES}|-00:00))$"
)
