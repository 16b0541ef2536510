"""Per-listener negotiation default and JSON with default-valued fields (codec.py)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings

from qmtl.common.v1 import match_mode_pb2
from qmtl.gateway.v1.queue_messages_pb2 import GetQueuesByTagRequest
from qmtl.gateway.v1.strategy_messages_pb2 import GetStrategyResponse
from qmtl.runtime import codec
from qmtl.runtime.errors import QmtlError
from tests.fuzz import strategies
from tests.fuzz.profile import FUZZ

P, J = codec.Encoding.PROTOBUF, codec.Encoding.JSON


@pytest.mark.parametrize(
    "accept",
    [
        None,
        "",
        "*/*",
        "application/*",
        "text/html, application/xhtml+xml, */*;q=0.8",
        "application/json, application/x-protobuf",
        "application/json;q=0.5, application/x-protobuf;q=0.5",
        "application/json;q=oops",  # no readable range at all
    ],
)
@pytest.mark.parametrize("default", [P, J])
def test_an_accept_that_leaves_the_choice_open_gets_the_listeners_default(
    accept: str | None, default: codec.Encoding
) -> None:
    assert codec.negotiate(accept, default=default) is default
    assert codec.negotiate_for_error(accept, default=default) is default


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("application/json", J),
        ("application/x-protobuf", P),
        ("application/x-protobuf;q=0.9, application/json;q=0.8", P),
        ("application/json;q=0.2, */*;q=0.1", J),
        ("application/*, application/json;q=0", P),
        ("*/*, application/x-protobuf;q=0", J),
    ],
)
@pytest.mark.parametrize("default", [P, J])
def test_an_explicit_accept_always_wins_over_the_default(
    accept: str, expected: codec.Encoding, default: codec.Encoding
) -> None:
    assert codec.negotiate(accept, default=default) is expected
    assert codec.negotiate_for_error(accept, default=default) is expected


@pytest.mark.parametrize("default", [P, J])
def test_the_default_does_not_make_an_unacceptable_accept_acceptable(
    default: codec.Encoding,
) -> None:
    with pytest.raises(QmtlError) as raised:
        codec.negotiate("text/html", default=default)
    assert raised.value.wire_code == "E_NOT_ACCEPTABLE"
    assert codec.negotiate_for_error("text/html", default=default) is J


def test_without_a_default_the_choice_stays_protobuf_as_before() -> None:
    assert codec.negotiate(None) is P
    assert codec.negotiate("*/*") is P


def _outcome(accept: str, default: codec.Encoding) -> codec.Encoding | None:
    try:
        return codec.negotiate(accept, default=default)
    except QmtlError:
        return None


@settings(FUZZ)
@given(accept=strategies.media_header)
def test_the_default_only_decides_what_accept_leaves_open(accept: str) -> None:
    to_protobuf, to_json = _outcome(accept, P), _outcome(accept, J)
    if to_protobuf is not to_json:
        # Only a tie differs, and then each listener answers in its own default.
        assert (to_protobuf, to_json) == (P, J)
        assert codec.negotiate(accept) is P  # callers passing no default are unchanged


def test_json_leaves_default_values_out_unless_asked() -> None:
    msg = GetQueuesByTagRequest()
    assert codec.encode(msg, J) == b"{}"
    full = json.loads(codec.encode(msg, J, emit_defaults=True))
    # interval is a plain int64 (0 = none), so it is printed with its default like the rest.
    assert full == {"tags": [], "interval": "0", "matchMode": "MATCH_MODE_UNSPECIFIED"}
    assert codec.decode(GetQueuesByTagRequest, codec.encode(msg, J, emit_defaults=True), J) == msg


def test_emit_defaults_keeps_set_values_and_leaves_binary_alone() -> None:
    msg = GetQueuesByTagRequest(tags=["t"], interval=0, match_mode=match_mode_pb2.MATCH_MODE_ALL)
    full = json.loads(codec.encode(msg, J, emit_defaults=True))
    assert full == {"tags": ["t"], "interval": "0", "matchMode": "MATCH_MODE_ALL"}  # int64
    assert codec.encode(msg, P, emit_defaults=True) == codec.encode(msg, P)
    # An unset message field has presence: it stays out, as null would mean something else.
    assert codec.encode(GetStrategyResponse(), J, emit_defaults=True) == b"{}"
