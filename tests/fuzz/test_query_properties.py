"""Query strings: any query string, on any route, builds the request or is a typed 400/422.

Runs tests/fuzz/targets.py `check_query` on query strings made of each route's own parameter
names with edge values, repeated, unknown, escaped and half-escaped (tests/fuzz/strategies.py).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qmtl.runtime.errors import QmtlError
from qmtl.runtime.http.params import MAX_QUERY_PARAMETERS, split_query
from qmtl.runtime.http.server import Binding
from tests.fuzz import known_defects, strategies
from tests.fuzz.profile import FUZZ, FUZZ_PER_ITEM
from tests.fuzz.targets import BINDINGS, check_query

ROUTES = [
    pytest.param(binding, id=name.removeprefix("qmtl.")) for name, binding in BINDINGS.items()
]


@pytest.mark.parametrize("binding", ROUTES)
def test_query_strings_build_the_request_or_are_refused(binding: Binding[Any]) -> None:
    @settings(FUZZ_PER_ITEM)
    @given(query=strategies.query_string(binding))
    def holds(query: bytes) -> None:
        with known_defects.tolerated():
            check_query(binding, query)

    holds()


@settings(FUZZ)
@given(pairs=st.lists(st.tuples(strategies.edge_text, strategies.edge_text)))
def test_split_query_reads_back_what_form_encoding_wrote(pairs: list[tuple[str, str]]) -> None:
    # Whatever the names and values, escaping them all reads them back exactly.
    from urllib.parse import quote_plus

    encodable = [(n, v) for n, v in pairs if n and _utf8(n) and _utf8(v)]
    raw = "&".join(f"{quote_plus(n)}={quote_plus(v)}" for n, v in encodable).encode()
    assert split_query(raw) == encodable


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def test_more_than_the_parameter_limit_is_a_typed_400() -> None:
    with pytest.raises(QmtlError) as raised:
        split_query(b"&".join([b"a=1"] * (MAX_QUERY_PARAMETERS + 1)))
    assert raised.value.http_status == 400
