"""JSON bodies have their message's shape at every depth (issue 8, item 11).

protobuf's json_format merged a message from any iterable JSON value, so a top-level `[]` or
`{"dag": []}` decoded as an empty message and SubmitStrategy answered 200. Every internal
write is sent its golden JSON fixture with one value replaced by a value of the wrong kind,
at every place of the fixture where a message, a repeated field or a map sits.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from google.protobuf import json_format
from google.protobuf.struct_pb2 import Struct

from qmtl.common.v1.error_pb2 import ErrorDetail
from qmtl.dag.v1.queue_pb2 import QueueMap
from qmtl.gateway.v1.strategy_messages_pb2 import SubmitStrategyRequest
from qmtl.runtime import codec, json_shape
from qmtl.runtime.errors import QmtlError
from tests.http.conftest import ServiceApps
from tests.http.surface import (
    INTERNAL,
    Op,
    auth_headers,
    body_json,
    ids,
    request_fixture,
    url_path,
)

JSON = "application/json"
WRITES = [op for op in INTERNAL if op.body]
# What each kind of place must refuse: anything that is not its JSON kind.
NOT_AN_OBJECT: list[Any] = [[], [{}], "", "x", 0, 1.5, True]
NOT_AN_ARRAY: list[Any] = [{}, "", "x", 1, True]


def test_every_internal_write_is_covered() -> None:
    assert len(WRITES) >= 5
    assert all(op.body == "*" for op in WRITES)  # the fixture JSON is the whole body


@dataclass(frozen=True)
class Place:
    """Where in a JSON document a value sits, and which kind of value it must be."""

    path: tuple[str | int, ...]
    kind: str  # "message", "repeated" or "map"

    def __str__(self) -> str:
        return "/".join(map(str, self.path)) or "<top>"


def places(value: Any, desc: Any, path: tuple[str | int, ...] = ()) -> Iterator[Place]:
    """Every message, repeated field and map in `value`, read alongside the descriptor."""
    if desc.full_name in json_shape._OWN_JSON_FORM:
        return
    yield Place(path, "message")
    for key, item in value.items():
        field = desc.fields_by_name.get(key) or next(f for f in desc.fields if f.json_name == key)
        here = (*path, key)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            yield Place(here, "map")
            value_type = field.message_type.fields_by_name["value"].message_type
            if value_type is not None:
                for map_key, entry in item.items():
                    yield from places(entry, value_type, (*here, map_key))
        elif field.is_repeated:
            yield Place(here, "repeated")
            if field.message_type is not None:
                for position, element in enumerate(item):
                    yield from places(element, field.message_type, (*here, position))
        elif field.message_type is not None:
            yield from places(item, field.message_type, here)


def replaced(document: Any, path: tuple[str | int, ...], new: Any) -> Any:
    if not path:
        return new
    copy = json.loads(json.dumps(document))
    holder = copy
    for step in path[:-1]:
        holder = holder[step]
    holder[path[-1]] = new
    return copy


def fixture_document(op: Op) -> Any:
    return body_json(op)


async def post_json(client: httpx.AsyncClient, op: Op, document: Any) -> httpx.Response:
    return await client.post(
        url_path(op, request_fixture(op)),
        content=json.dumps(document).encode(),
        headers={**auth_headers(op), "Accept": JSON, "Content-Type": JSON},
    )


def code_of(response: httpx.Response) -> str:
    if response.is_success:
        return "<success>"
    return json_format.Parse(response.text, ErrorDetail()).code


@pytest.mark.parametrize("op", WRITES, ids=ids)
def test_the_fixtures_reach_messages_repeated_fields_and_maps(op: Op) -> None:
    # A fixture with no nested message would leave the walk below with only the top level.
    found = list(places(fixture_document(op), op.request_class.DESCRIPTOR))
    assert found[0] == Place((), "message")
    if op.method.name in ("SubmitStrategy", "DryRunStrategy", "Diff"):
        assert {place.kind for place in found} >= {"message", "repeated"}
        assert len([p for p in found if p.kind == "message"]) > 5


@pytest.mark.parametrize("op", WRITES, ids=ids)
@pytest.mark.parametrize("body", [b"[]", b"[{}]", b'""', b'"x"', b"1", b"true", b"null"])
async def test_top_level_body_that_is_not_an_object_is_400(
    op: Op, apps: ServiceApps, client: httpx.AsyncClient, body: bytes
) -> None:
    response = await client.post(
        url_path(op, request_fixture(op)),
        content=body,
        headers={**auth_headers(op), "Accept": JSON, "Content-Type": JSON},
    )

    assert (response.status_code, code_of(response)) == (400, "E_MALFORMED_BODY")
    assert apps.handler.calls == []


@pytest.mark.parametrize("op", WRITES, ids=ids)
async def test_value_of_the_wrong_kind_at_any_depth_is_400(
    op: Op, apps: ServiceApps, client: httpx.AsyncClient
) -> None:
    document = fixture_document(op)
    accepted = []
    for place in places(document, op.request_class.DESCRIPTOR):
        if not place.path:
            continue  # the top level has its own test; some requests have nothing below it
        wrong = NOT_AN_OBJECT if place.kind in ("message", "map") else NOT_AN_ARRAY
        for value in wrong:
            response = await post_json(client, op, replaced(document, place.path, value))
            if (response.status_code, code_of(response)) != (400, "E_MALFORMED_BODY"):
                accepted.append(f"{place}={value!r}: {response.status_code} {code_of(response)}")

    assert accepted == []
    assert apps.handler.calls == []


@pytest.mark.parametrize("op", WRITES, ids=ids)
async def test_null_is_still_the_default_wherever_proto3_json_allows_it(
    op: Op, apps: ServiceApps, client: httpx.AsyncClient
) -> None:
    document = fixture_document(op)
    for place in places(document, op.request_class.DESCRIPTOR):
        if not place.path or isinstance(place.path[-1], int):
            continue  # null is no element of a repeated field; the top level is not a field
        response = await post_json(client, op, replaced(document, place.path, None))

        # A REQUIRED field left empty is a 422, never a malformed body.
        assert code_of(response) in ("<success>", "E_VALIDATION"), place


@pytest.mark.parametrize("op", WRITES, ids=ids)
async def test_the_fixture_itself_is_accepted(
    op: Op, apps: ServiceApps, client: httpx.AsyncClient
) -> None:
    response = await post_json(client, op, fixture_document(op))

    assert response.is_success, response.text
    assert [call.request for call in apps.handler.calls] == [request_fixture(op)]


# -- the decoder itself -----------------------------------------------------------------------


def malformed(cls: type[Any], text: str) -> str:
    with pytest.raises(QmtlError) as raised:
        codec.decode(cls, text.encode(), codec.Encoding.JSON)
    assert raised.value.wire_code == "E_MALFORMED_BODY"
    return raised.value.message


def test_the_error_names_where_the_object_was_missing() -> None:
    assert "dag must be a JSON object (qmtl.dag.v1.Dag), got an array" in malformed(
        SubmitStrategyRequest, '{"dag": []}'
    )
    message = malformed(SubmitStrategyRequest, '{"dag": {"nodes": [{}, ""]}}')
    assert "dag.nodes[1] must be a JSON object" in message


def test_map_values_of_message_type_must_be_objects() -> None:
    assert "queues['q'] must be a JSON object" in malformed(QueueMap, '{"queues": {"q": []}}')
    assert codec.decode(QueueMap, b'{"queues": {"q": {}}}', codec.Encoding.JSON) == QueueMap(
        queues={"q": QueueMap().queues.get_or_create("q")}
    )


def test_struct_contents_stay_free_form_and_proto_names_are_read() -> None:
    decoded = codec.decode(
        SubmitStrategyRequest,
        b'{"callback_url": "u", "meta": {"a": [], "b": "", "c": [[{}]]}}',
        codec.Encoding.JSON,
    )

    expected = Struct()
    expected.update({"a": [], "b": "", "c": [[{}]]})
    assert (decoded.callback_url, decoded.meta) == ("u", expected)


def test_duplicate_keys_and_non_json_stay_malformed() -> None:
    assert "duplicate key" in malformed(SubmitStrategyRequest, '{"dag": {}, "dag": {}}')
    assert "not JSON" in malformed(SubmitStrategyRequest, "{nope")


def test_clients_still_skip_unknown_fields_whatever_their_shape() -> None:
    decoded = codec.decode(
        SubmitStrategyRequest,
        b'{"newField": [], "dag": {"newer": ""}}',
        codec.Encoding.JSON,
        ignore_unknown=True,
    )

    assert decoded.HasField("dag")
