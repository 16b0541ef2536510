"""Every generated route behaves as docs/api/HTTP.md says, for every rpc the schemas declare.

The apps are the generated ones (`create_<service>_public_app` / `_internal_app`), with a
handler answering each rpc with its golden response fixture; requests are built from the
golden request fixtures, so each test covers every field the schemas define.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import httpx
import pytest
from google.protobuf import json_format

from qmtl.common.v1.error_pb2 import ErrorDetail
from qmtl.runtime.auth import issue_token
from qmtl.runtime.errors import QmtlError
from tests.http.conftest import ServiceApps
from tests.http.surface import (
    ANONYMOUS,
    AUTHENTICATED,
    INTERNAL,
    OPERATIONS,
    PUBLIC,
    WITH_BODY,
    Op,
    auth_headers,
    body_json,
    body_message,
    ids,
    query_params,
    request_fixture,
    required_fields,
    served_json,
    served_response,
    token,
    url_path,
)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
# Methods a public path must refuse; HEAD is served with GET.
NON_GET = ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
# The WWW-Authenticate of every 401 (RFC 6750), before any error code.
CHALLENGE = 'Bearer realm="qmtl"'
# Well formed and signed, but with a secret the apps' verifier does not hold.
OTHER_KEY_TOKEN = issue_token(b"not-the-apps-secret", "test:caller", ["queues:read"])
# One authenticated public operation per service: it answers both a 401 and a 405.
ONE_PUBLIC_PER_SERVICE = list(
    {op.service.full_name: op for op in PUBLIC if op in AUTHENTICATED}.values()
)


def test_the_schemas_declare_public_and_internal_operations() -> None:
    # An empty list would turn every parametrized test below into nothing.
    assert len(PUBLIC) >= 10
    assert len(INTERNAL) >= 5


async def send(
    client: httpx.AsyncClient,
    op: Op,
    *,
    accept: str | None = PROTOBUF,
    encoding: str = PROTOBUF,
    headers: dict[str, str] | None = None,
    params: Sequence[tuple[str, str]] | None = None,
    body: bytes | None = None,
) -> httpx.Response:
    """The op called with its request fixture: path and query, or a body in `encoding`."""
    request = request_fixture(op)
    sent = dict(auth_headers(op) if headers is None else headers)
    if accept is not None:
        sent["Accept"] = accept
    if op.body:
        if body is None:
            sent_body = body_message(op)
            body = (
                sent_body.SerializeToString()
                if encoding == PROTOBUF
                else json_format.MessageToJson(sent_body).encode()
            )
        sent.setdefault("Content-Type", encoding)
        return await client.request(op.verb, url_path(op, request), content=body, headers=sent)
    query = query_params(op, request) if params is None else tuple(params)
    return await client.request(op.verb, url_path(op, request), params=query, headers=sent)


def error_of(response: httpx.Response) -> ErrorDetail:
    """The ErrorDetail body, in whichever encoding the response declares."""
    if response.headers["content-type"].startswith(JSON):
        return json_format.Parse(response.text, ErrorDetail())
    assert response.headers["content-type"] == PROTOBUF
    return ErrorDetail.FromString(response.content)


def assert_error(response: httpx.Response, status: int, code: str) -> ErrorDetail:
    detail = error_of(response)
    assert (response.status_code, detail.code) == (status, code), detail.message
    return detail


@pytest.mark.parametrize("op", OPERATIONS, ids=ids)
async def test_route_answers_in_protobuf_with_the_request_it_was_sent(
    op: Op, apps: ServiceApps, client: httpx.AsyncClient
) -> None:
    response = await send(client, op)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == PROTOBUF
    assert op.response_class.FromString(response.content) == served_response(op)
    [call] = apps.handler.calls
    assert (call.rpc, call.request) == (op.python_name, request_fixture(op))


@pytest.mark.parametrize("op", OPERATIONS, ids=ids)
async def test_route_answers_in_json_when_json_is_accepted(
    op: Op, apps: ServiceApps, client: httpx.AsyncClient
) -> None:
    response = await send(client, op, accept=JSON, encoding=JSON)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == JSON
    assert response.json() == served_json(op)
    [call] = apps.handler.calls
    assert call.request == request_fixture(op)


@pytest.mark.parametrize("op", OPERATIONS, ids=ids)
@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        # An open choice goes to the listener's default: JSON public, protobuf internal.
        (None, "default"),
        ("*/*", "default"),
        ("application/json;q=0.5, application/x-protobuf;q=0.9", PROTOBUF),
        ("application/x-protobuf;q=0.1, application/json", JSON),
        ("text/html, application/*;q=0.2", "default"),
    ],
)
async def test_response_encoding_follows_accept_q_values(
    op: Op, client: httpx.AsyncClient, accept: str | None, expected: str
) -> None:
    response = await send(client, op, accept=accept)

    if expected == "default":
        expected = JSON if op.public else PROTOBUF
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == expected


@pytest.mark.parametrize("op", AUTHENTICATED, ids=ids)
@pytest.mark.parametrize("accept", [PROTOBUF, JSON])
async def test_route_without_a_token_is_401(
    op: Op, apps: ServiceApps, client: httpx.AsyncClient, accept: str
) -> None:
    response = await send(client, op, headers={}, accept=accept)

    assert_error(response, 401, "E_UNAUTHENTICATED")
    assert response.headers["content-type"] == accept
    # RFC 6750 section 3: no credentials sent, so the challenge carries no error code.
    assert response.headers["www-authenticate"] == CHALLENGE
    assert apps.handler.calls == []


@pytest.mark.parametrize("op", ONE_PUBLIC_PER_SERVICE, ids=ids)
async def test_the_401_challenge_matches_the_one_the_document_states(
    op: Op, public_client: httpx.AsyncClient
) -> None:
    document = (await public_client.get("/openapi.json")).json()
    operation_id = f"{op.service.name}_{op.method.name}"
    (unauthorized,) = (
        operation["responses"]["401"]
        for item in document["paths"].values()
        for operation in item.values()
        if operation["operationId"] == operation_id
    )
    header = unauthorized["headers"]["WWW-Authenticate"]

    for authorization in (None, "Bearer not-a-token"):
        sent = {} if authorization is None else {"Authorization": authorization}
        response = await send(public_client, op, headers=sent)
        assert response.status_code == 401
        assert re.search(header["schema"]["pattern"], response.headers["www-authenticate"])


@pytest.mark.parametrize("op", AUTHENTICATED, ids=ids)
@pytest.mark.parametrize(
    ("authorization", "challenge"),
    [
        ("Bearer not-a-token", f'{CHALLENGE}, error="invalid_token"'),
        ("Basic dXNlcjpwYXNz", CHALLENGE),
        ("Bearer ", f'{CHALLENGE}, error="invalid_request"'),
        ("Bearer a.b", f'{CHALLENGE}, error="invalid_token"'),
        (f"Bearer {OTHER_KEY_TOKEN}", f'{CHALLENGE}, error="invalid_token"'),
    ],
)
async def test_route_with_a_garbled_token_is_401(
    op: Op, client: httpx.AsyncClient, authorization: str, challenge: str
) -> None:
    response = await send(client, op, headers={"Authorization": authorization})

    assert_error(response, 401, "E_UNAUTHENTICATED")
    assert response.headers["www-authenticate"] == challenge


@pytest.mark.parametrize("op", OPERATIONS[:1] + INTERNAL[:1], ids=ids)
async def test_a_401_the_handler_raises_carries_the_challenge_too(
    op: Op, apps: ServiceApps, client: httpx.AsyncClient
) -> None:
    apps.handler.failures[op.python_name] = QmtlError.unauthenticated("session revoked")

    response = await send(client, op)

    assert_error(response, 401, "E_UNAUTHENTICATED")
    assert response.headers["www-authenticate"] == f'{CHALLENGE}, error="invalid_token"'


@pytest.mark.parametrize("op", [op for op in AUTHENTICATED if op.scopes][:2], ids=ids)
async def test_a_403_carries_no_challenge(op: Op, client: httpx.AsyncClient) -> None:
    response = await send(client, op, headers={"Authorization": f"Bearer {token()}"})

    assert_error(response, 403, "E_PERMISSION_DENIED")
    assert "www-authenticate" not in response.headers


@pytest.mark.parametrize("op", [op for op in AUTHENTICATED if op.scopes], ids=ids)
async def test_route_with_a_token_lacking_its_scope_is_403(
    op: Op, apps: ServiceApps, client: httpx.AsyncClient
) -> None:
    others = {scope for other in OPERATIONS for scope in other.scopes} - set(op.scopes)
    headers = {"Authorization": f"Bearer {token(*sorted(others))}"}

    response = await send(client, op, headers=headers)

    detail = assert_error(response, 403, "E_PERMISSION_DENIED")
    assert json_format.MessageToDict(detail.details)["required_scopes"] == list(op.scopes)
    assert apps.handler.calls == []


@pytest.mark.parametrize("op", ANONYMOUS, ids=ids)
async def test_anonymous_route_answers_without_a_token(
    op: Op, apps: ServiceApps, client: httpx.AsyncClient
) -> None:
    response = await send(client, op, headers={})

    assert response.status_code == 200
    assert apps.handler.calls[0].principal is None


@pytest.mark.parametrize("op", PUBLIC, ids=ids)
@pytest.mark.parametrize("method", NON_GET)
async def test_public_path_refuses_other_methods_with_405(
    op: Op, apps: ServiceApps, public_client: httpx.AsyncClient, method: str
) -> None:
    response = await public_client.request(
        method, url_path(op, request_fixture(op)), headers=auth_headers(op)
    )

    assert_error(response, 405, "E_METHOD_NOT_ALLOWED")
    assert [m.strip() for m in response.headers["allow"].split(",")] == ["GET", "HEAD"]
    assert apps.handler.calls == []


@pytest.mark.parametrize("op", ONE_PUBLIC_PER_SERVICE, ids=ids)
async def test_the_public_document_states_the_allow_header_a_405_sends(
    op: Op, public_client: httpx.AsyncClient
) -> None:
    refused = await public_client.post(url_path(op, request_fixture(op)), headers=auth_headers(op))
    document = (await public_client.get("/openapi.json")).json()

    assert refused.status_code == 405
    assert f"`Allow: {refused.headers['allow']}`" in document["info"]["description"]


@pytest.mark.parametrize("op", PUBLIC, ids=ids)
async def test_public_route_answers_head_without_a_body(
    op: Op, public_client: httpx.AsyncClient
) -> None:
    request = request_fixture(op)
    response = await public_client.head(
        url_path(op, request), params=query_params(op, request), headers=auth_headers(op)
    )

    assert response.status_code == 200
    assert response.content == b""


@pytest.mark.parametrize("op", INTERNAL, ids=ids)
async def test_public_app_never_routes_an_internal_operation(
    op: Op, apps: ServiceApps, public_client: httpx.AsyncClient
) -> None:
    request = request_fixture(op)
    response = await public_client.request(
        op.verb,
        url_path(op, request),
        content=request.SerializeToString(),
        headers={**auth_headers(op), "Content-Type": PROTOBUF},
    )

    assert_error(response, 404, "E_NOT_FOUND")
    assert apps.handler.calls == []


@pytest.mark.parametrize("op", PUBLIC, ids=ids)
async def test_internal_app_does_not_serve_public_operations(
    op: Op, internal_client: httpx.AsyncClient
) -> None:
    request = request_fixture(op)
    response = await internal_client.get(
        url_path(op, request), params=query_params(op, request), headers=auth_headers(op)
    )

    assert_error(response, 404, "E_NOT_FOUND")


@pytest.mark.parametrize("op", OPERATIONS, ids=ids)
@pytest.mark.parametrize("accept", [PROTOBUF, JSON])
async def test_unknown_path_is_404_with_an_error_body(
    op: Op, client: httpx.AsyncClient, accept: str
) -> None:
    response = await client.get("/v1/no/such/route", headers={"Accept": accept})

    assert_error(response, 404, "E_NOT_FOUND")
    assert response.headers["content-type"] == accept


@pytest.mark.parametrize("op", OPERATIONS, ids=ids)
async def test_trailing_slash_is_not_redirected(op: Op, client: httpx.AsyncClient) -> None:
    response = await client.get(url_path(op, request_fixture(op)) + "/", headers=auth_headers(op))

    assert_error(response, 404, "E_NOT_FOUND")


@pytest.mark.parametrize("op", OPERATIONS, ids=ids)
async def test_unacceptable_accept_is_406_with_a_json_error(
    op: Op, apps: ServiceApps, client: httpx.AsyncClient
) -> None:
    response = await send(client, op, accept="text/html")

    assert_error(response, 406, "E_NOT_ACCEPTABLE")
    assert response.headers["content-type"] == JSON
    assert apps.handler.calls == []


@pytest.mark.parametrize("op", WITH_BODY, ids=ids)
async def test_body_in_another_media_type_is_415(
    op: Op, apps: ServiceApps, client: httpx.AsyncClient
) -> None:
    response = await send(
        client, op, headers={**auth_headers(op), "Content-Type": "text/plain"}, body=b"hello"
    )

    assert_error(response, 415, "E_UNSUPPORTED_MEDIA_TYPE")
    assert apps.handler.calls == []


@pytest.mark.parametrize("op", WITH_BODY, ids=ids)
async def test_body_without_a_content_type_is_415_saying_so(
    op: Op, apps: ServiceApps, client: httpx.AsyncClient
) -> None:
    response = await client.request(
        op.verb, url_path(op, request_fixture(op)), content=b"hello", headers=auth_headers(op)
    )

    detail = assert_error(response, 415, "E_UNSUPPORTED_MEDIA_TYPE")
    assert "None" not in detail.message
    assert "no Content-Type" in detail.message
    assert apps.handler.calls == []


@pytest.mark.parametrize("op", WITH_BODY, ids=ids)
@pytest.mark.parametrize(
    ("encoding", "body"),
    [(PROTOBUF, b"\xff\xff\xff\xff"), (JSON, b"{not json"), (JSON, b'{"noSuchField": 1}')],
)
async def test_body_that_does_not_decode_is_400(
    op: Op, apps: ServiceApps, client: httpx.AsyncClient, encoding: str, body: bytes
) -> None:
    response = await send(client, op, encoding=encoding, body=body)

    assert_error(response, 400, "E_MALFORMED_BODY")
    assert apps.handler.calls == []


@pytest.mark.parametrize("encoding", [PROTOBUF, JSON])
@pytest.mark.parametrize("op", [op for op in WITH_BODY if op.path_fields], ids=ids)
async def test_path_bound_field_in_the_body_is_400_whatever_its_value(
    op: Op, apps: ServiceApps, client: httpx.AsyncClient, encoding: str
) -> None:
    # google.api.http: a `body: "*"` body is every field the path does NOT bind, and the
    # document's closed body schema leaves them out; equal to the path or not, it is a 400.
    for value in ("somebody-else", getattr(request_fixture(op), op.path_fields[0])):
        request = body_message(op)
        setattr(request, op.path_fields[0], value)
        body = (
            request.SerializeToString()
            if encoding == PROTOBUF
            else json_format.MessageToJson(request).encode()
        )

        response = await send(client, op, encoding=encoding, body=body)

        detail = assert_error(response, 400, "E_INVALID_ARGUMENT")
        assert "bound to the path" in detail.message
    assert apps.handler.calls == []


@pytest.mark.parametrize("op", [op for op in WITH_BODY if op.path_fields], ids=ids)
async def test_path_bound_field_in_a_json_body_is_400_even_when_empty_or_null(
    op: Op, client: httpx.AsyncClient
) -> None:
    # Decoded, `""` and `null` leave the field unset; the key itself is what is refused.
    field = op.request_class.DESCRIPTOR.fields_by_name[op.path_fields[0]]
    for key in (field.json_name, field.name):
        for value in ("", None):
            body = json.dumps({**body_json(op), key: value}).encode()

            response = await send(client, op, encoding=JSON, body=body)

            assert_error(response, 400, "E_INVALID_ARGUMENT")


@pytest.mark.parametrize("op", [op for op in OPERATIONS if not op.body], ids=ids)
async def test_unknown_query_parameter_is_400_naming_it(
    op: Op, apps: ServiceApps, client: httpx.AsyncClient
) -> None:
    params = [*query_params(op, request_fixture(op)), ("noSuchParameter", "1")]

    response = await send(client, op, params=params)

    detail = assert_error(response, 400, "E_INVALID_ARGUMENT")
    assert json_format.MessageToDict(detail.details) == {"parameter": "noSuchParameter"}
    assert apps.handler.calls == []


@pytest.mark.parametrize("op", [op for op in PUBLIC if op.path_fields], ids=ids)
async def test_path_variable_is_not_also_a_query_parameter(
    op: Op, client: httpx.AsyncClient
) -> None:
    params = [*query_params(op, request_fixture(op)), (op.path_fields[0], "x")]

    response = await send(client, op, params=params)

    assert_error(response, 400, "E_INVALID_ARGUMENT")


def _ops_with_required_query_fields() -> list[tuple[Op, str]]:
    found = []
    for op in OPERATIONS:
        for field in required_fields(op.method.input_type):
            if field.name not in op.path_fields:
                found.append((op, field.name))
    return found


@pytest.mark.parametrize(
    ("op", "field"),
    _ops_with_required_query_fields(),
    ids=[f"{op.id}-{field}" for op, field in _ops_with_required_query_fields()],
)
async def test_missing_required_field_is_422_naming_it(
    op: Op, field: str, apps: ServiceApps, client: httpx.AsyncClient
) -> None:
    request = request_fixture(op)
    request.ClearField(field)

    if op.body:
        response = await send(client, op, body=body_message(op, request).SerializeToString())
    else:
        response = await send(client, op, params=query_params(op, request))

    detail = assert_error(response, 422, "E_VALIDATION")
    json_name = op.method.input_type.fields_by_name[field].json_name
    assert json_format.MessageToDict(detail.details) == {"field": json_name}
    assert apps.handler.calls == []


def test_get_queues_by_tag_without_interval_is_among_the_422_cases() -> None:
    # The example HTTP.md and the schema comments give; it must stay covered.
    cases = {(op.id, field) for op, field in _ops_with_required_query_fields()}
    assert ("GatewayService.GetQueuesByTag", "interval") in cases
    assert ("DagManagerService.GetQueuesByTag", "interval") in cases


@pytest.mark.parametrize("op", [op for op in PUBLIC if op.method.name == "GetQueuesByTag"], ids=ids)
async def test_get_queues_by_tag_with_interval_zero_is_422(
    op: Op, apps: ServiceApps, client: httpx.AsyncClient
) -> None:
    # `interval` is a plain int64 everywhere, 0 meaning none: `interval=0` is no interval.
    response = await send(client, op, params=[("tags", "BTC"), ("interval", "0")])

    detail = assert_error(response, 422, "E_VALIDATION")
    assert json_format.MessageToDict(detail.details) == {"field": "interval"}
    assert apps.handler.calls == []


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ([("interval", "sixty")], "interval"),
        ([("interval", "60"), ("interval", "61")], "interval"),
        ([("interval", "9223372036854775808")], "interval"),
        ([("interval", "60"), ("matchMode", "MATCH_MODE_SOMETIMES")], "matchMode"),
        ([("interval", "60"), ("match_mode", "99")], "match_mode"),
    ],
)
@pytest.mark.parametrize("op", [op for op in PUBLIC if op.method.name == "GetQueuesByTag"], ids=ids)
async def test_query_value_that_does_not_parse_is_400_naming_it(
    op: Op, client: httpx.AsyncClient, params: list[tuple[str, str]], parameter: str
) -> None:
    response = await send(client, op, params=params)

    detail = assert_error(response, 400, "E_INVALID_ARGUMENT")
    assert json_format.MessageToDict(detail.details) == {"parameter": parameter}


@pytest.mark.parametrize("op", [op for op in PUBLIC if op.method.name == "GetQueuesByTag"], ids=ids)
async def test_query_accepts_proto_names_enum_numbers_and_repeats(
    op: Op, apps: ServiceApps, client: httpx.AsyncClient
) -> None:
    params = [("tags", "BTC"), ("tags", "price"), ("interval", "60"), ("match_mode", "2")]

    response = await send(client, op, params=params)

    assert response.status_code == 200, response.text
    received = json_format.MessageToDict(apps.handler.calls[0].request)
    assert received == {"tags": ["BTC", "price"], "interval": "60", "matchMode": "MATCH_MODE_ALL"}


@pytest.mark.parametrize("op", [op for op in PUBLIC if op.method.name == "GetNode"], ids=ids)
@pytest.mark.parametrize("raw", ["blake3:1d38ab", "blake3%3A1d38ab"])
async def test_path_value_may_contain_a_colon_raw_or_escaped(
    op: Op, apps: ServiceApps, client: httpx.AsyncClient, raw: str
) -> None:
    response = await client.get(
        op.path.replace("{node_id}", raw), headers={**auth_headers(op), "Accept": JSON}
    )

    assert response.status_code == 200, response.text
    assert apps.handler.calls[0].request.node_id == "blake3:1d38ab"  # type: ignore[attr-defined]


@pytest.mark.parametrize("op", OPERATIONS, ids=ids)
@pytest.mark.parametrize("accept", [PROTOBUF, JSON])
async def test_handler_error_is_served_with_its_code_and_status(
    op: Op, apps: ServiceApps, client: httpx.AsyncClient, accept: str
) -> None:
    apps.handler.failures[op.python_name] = QmtlError.not_found("no such thing", resource="thing-1")

    response = await send(client, op, accept=accept)

    detail = assert_error(response, 404, "E_NOT_FOUND")
    assert response.headers["content-type"] == accept
    assert detail.message == "no such thing"
    assert json_format.MessageToDict(detail.details) == {"resource": "thing-1"}


@pytest.mark.parametrize("op", OPERATIONS, ids=ids)
async def test_retry_after_is_mirrored_in_a_header_rounded_up(
    op: Op, apps: ServiceApps, client: httpx.AsyncClient
) -> None:
    apps.handler.failures[op.python_name] = QmtlError.unavailable(
        "graph store is down", retry_after=2.5, backend="neo4j"
    )

    response = await send(client, op)

    detail = assert_error(response, 503, "E_UNAVAILABLE")
    assert response.headers["retry-after"] == "3"
    assert detail.retryable
    assert detail.retry_after.ToTimedelta().total_seconds() == 2.5


@pytest.mark.parametrize("op", OPERATIONS, ids=ids)
@pytest.mark.parametrize("accept", [PROTOBUF, JSON])
async def test_unexpected_handler_exception_is_500_without_a_traceback(
    op: Op, apps: ServiceApps, client: httpx.AsyncClient, accept: str
) -> None:
    apps.handler.failures[op.python_name] = RuntimeError("secret connection string")

    response = await send(client, op, accept=accept)

    detail = assert_error(response, 500, "E_INTERNAL")
    text = response.content.decode("utf-8", "replace")
    for leak in ("Traceback", "RuntimeError", "secret connection string", ".py"):
        assert leak not in text
    assert not detail.retryable


@pytest.mark.parametrize("op", OPERATIONS, ids=ids)
async def test_handler_reply_sets_another_success_status_and_headers(
    op: Op, apps: ServiceApps, client: httpx.AsyncClient
) -> None:
    apps.handler.statuses[op.python_name] = 202

    response = await send(client, op, accept=JSON)

    assert response.status_code == 202
    assert response.headers["location"] == f"/somewhere/{op.python_name}"
    assert response.json() == served_json(op)


@pytest.mark.parametrize("op", OPERATIONS, ids=ids)
async def test_middleware_added_to_the_app_sees_generated_routes(op: Op, apps: ServiceApps) -> None:
    # The apps hand plain routes their requests directly; added middleware must still run.
    seen: list[str] = []
    app = apps.app_for(op)

    class Witness:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            seen.append(scope["path"])
            await self.inner(scope, receive, send)

    app.add_middleware(Witness)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await send(http, op)

    assert response.status_code == 200
    assert seen == [url_path(op, request_fixture(op))]


@pytest.mark.parametrize("op", OPERATIONS, ids=ids)
async def test_principal_reaching_the_handler_is_the_token_subject(
    op: Op, apps: ServiceApps, client: httpx.AsyncClient
) -> None:
    await send(client, op)

    principal = apps.handler.calls[0].principal
    assert principal is not None
    assert principal.subject == "test:caller"
    assert principal.has_scopes(op.scopes)


@pytest.mark.parametrize("op", [OPERATIONS[0]], ids=ids)
@pytest.mark.parametrize("listener", ["public", "internal"])
async def test_each_listener_serves_its_generated_openapi_document(
    op: Op, apps: ServiceApps, listener: str
) -> None:
    app = apps.public if listener == "public" else apps.internal
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await http.get("/openapi.json")
        refused = await http.post("/openapi.json")
        # FastAPI's own pages stay off; /docs is the runtime's Redoc page (tests/serve).
        absent = await http.get("/redoc")

    assert response.status_code == 200
    document: dict[str, Any] = json.loads(response.content)
    assert document["openapi"].startswith("3.1")
    served = {(verb.upper(), path) for path, item in document["paths"].items() for verb in item}
    expected = {
        (o.verb, o.path)
        for o in OPERATIONS
        if o.service is op.service and o.public == (listener == "public")
    }
    assert served == expected
    assert_error(refused, 405, "E_METHOD_NOT_ALLOWED")
    assert_error(absent, 404, "E_NOT_FOUND")
