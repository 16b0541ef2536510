"""Each service's generated apps, wired to a handler that answers every rpc with a fixture."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from google.protobuf import message

from qmtl.runtime.auth import Principal
from qmtl.runtime.context import Context
from qmtl_codegen.httpmodel import snake_case
from tests.http.surface import VERIFIER, Op, http_module, response_fixture


@dataclass
class Call:
    rpc: str
    request: message.Message
    principal: Principal | None


@dataclass
class FixtureHandler:
    """Implements any service's handler Protocol: every rpc answers its response fixture.

    It records each call, raises what `failures` names for an rpc instead of answering, and
    answers with the status `statuses` names for an rpc (ctx.set_status, plus a Location).
    """

    ops: dict[str, Op]
    calls: list[Call] = field(default_factory=list)
    failures: dict[str, BaseException] = field(default_factory=dict)
    statuses: dict[str, int] = field(default_factory=dict)
    # Methods answering in place of the fixture; the routes bind methods when the app is
    # built, so these are given to build_apps, not set afterwards.
    answers: dict[str, Callable[..., Awaitable[message.Message]]] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Callable[..., Awaitable[message.Message]]:
        if name in self.answers:
            return self.answers[name]
        op = self.ops.get(name)
        if op is None:
            raise AttributeError(name)

        async def answer(request: message.Message, ctx: Context) -> Any:
            self.calls.append(Call(name, request, ctx.principal))
            if name in self.failures:
                raise self.failures[name]
            if name in self.statuses:
                ctx.set_status(self.statuses[name])
                ctx.set_header("Location", f"/somewhere/{name}")
            return response_fixture(op)

        return answer


@dataclass
class ServiceApps:
    handler: FixtureHandler
    public: FastAPI
    internal: FastAPI

    def app_for(self, op: Op) -> FastAPI:
        return self.public if op.public else self.internal


def build_apps(
    op: Op, answers: dict[str, Callable[..., Awaitable[message.Message]]] | None = None
) -> ServiceApps:
    from tests.http.surface import OPERATIONS

    ops = {o.python_name: o for o in OPERATIONS if o.service is op.service}
    handler = FixtureHandler(ops, answers=dict(answers or {}))
    module = http_module(op.service)
    prefix = snake_case(op.service.name)
    public = getattr(module, f"create_{prefix}_public_app")(handler, VERIFIER)
    internal = getattr(module, f"create_{prefix}_internal_app")(handler, VERIFIER)
    return ServiceApps(handler, public, internal)


@pytest.fixture
def apps(request: pytest.FixtureRequest) -> ServiceApps:
    """The apps of the service of the test's `op` parameter."""
    op: Op = request.getfixturevalue("op")
    return build_apps(op)


@pytest.fixture
async def client(apps: ServiceApps, op: Op) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client of the listener that serves `op`."""
    transport = httpx.ASGITransport(app=apps.app_for(op))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.fixture
async def public_client(apps: ServiceApps) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=apps.public)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.fixture
async def internal_client(apps: ServiceApps) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=apps.internal)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http
