"""A route's REQUIRED check, built once per route, answers as check_required does per field kind."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from google.protobuf import message

from qmtl.dagmanager.v1.node_messages_pb2 import ListNodesRequest
from qmtl.gateway.v1.queue_messages_pb2 import GetQueuesByTagRequest
from qmtl.runtime.errors import QmtlError
from qmtl.runtime.http import params as p
from qmtl.runtime.http.server import Binding

CASES = [
    # (required field, a request that sets it, requests that do not)
    (
        p.Required("tags", "tags"),
        GetQueuesByTagRequest(tags=["BTC"]),
        [GetQueuesByTagRequest(), GetQueuesByTagRequest(interval=60)],
    ),
    (
        p.Required("interval", "interval"),
        GetQueuesByTagRequest(interval=-1),
        [GetQueuesByTagRequest(), GetQueuesByTagRequest(tags=["BTC"], interval=0)],
    ),
    (
        p.Required("page", "page"),
        ListNodesRequest(page={}),
        [ListNodesRequest(), ListNodesRequest(node_type="x")],
    ),
    (
        p.Required("page.page_size", "page.pageSize"),
        ListNodesRequest(page={"page_size": 5}),
        [ListNodesRequest(), ListNodesRequest(page={"page_token": "t"})],
    ),
]


def _refusal(
    check: Callable[[message.Message], None], msg: message.Message
) -> tuple[int, dict[str, object], str]:
    with pytest.raises(QmtlError) as raised:
        check(msg)
    return raised.value.http_status, raised.value.details, raised.value.message


@pytest.mark.parametrize(("required", "present", "missing"), CASES)
def test_required_check_agrees_with_check_required(
    required: p.Required, present: message.Message, missing: list[message.Message]
) -> None:
    check = p.required_check(type(present), [required])

    check(present)
    p.check_required(present, [required])
    for msg in missing:
        expected = _refusal(lambda m: p.check_required(m, [required]), msg)
        assert _refusal(check, msg) == expected
        assert expected[:2] == (422, {"field": required.json_name})


def test_the_first_missing_field_is_named() -> None:
    required = [p.Required("tags", "tags"), p.Required("interval", "interval")]
    check = p.required_check(GetQueuesByTagRequest, required)

    assert _refusal(check, GetQueuesByTagRequest())[1] == {"field": "tags"}
    assert _refusal(check, GetQueuesByTagRequest(tags=["a"]))[1] == {"field": "interval"}
    check(GetQueuesByTagRequest(tags=["a"], interval=60))


def test_a_binding_checks_its_required_fields_on_every_request() -> None:
    binding = Binding(
        GetQueuesByTagRequest,
        query=p.QueryParams(
            (
                p.Param(("tags",), ("tags",), p.parse_string, p.Slot.REPEATED),
                p.Param(("interval",), ("interval",), p.parse_int64),
            )
        ),
        required=(p.Required("interval", "interval"),),
    )

    assert binding.from_parameters({}, b"tags=a&interval=5").interval == 5
    with pytest.raises(QmtlError) as raised:
        binding.from_parameters({}, b"tags=a")
    assert raised.value.details == {"field": "interval"}
