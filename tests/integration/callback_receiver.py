"""A real HTTP receiver for the callback tests: a Starlette app served by uvicorn on
127.0.0.1 (port 0, so tests never collide), verifying each request with the shipped helper."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Literal

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from qmtl.events.v1 import event_pb2
from qmtl.runtime.callbacks import SignatureError, verify
from tests.polling import eventually

Step = int | Literal["hang"]
"""What the receiver does with one verified request: answer that status, or never answer."""


@dataclass
class Received:
    status: int
    """The status answered; 401 for a refused signature, 0 for a request left hanging."""
    event_id: str = ""
    refusal: str = ""


@dataclass
class Receiver:
    keys: Mapping[str, bytes]
    plan: list[Step] = field(default_factory=list)
    """Steps for the first requests, in order; after them every request gets 200."""
    received: list[Received] = field(default_factory=list)
    accepted: list[event_pb2.Event] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    """Set at teardown to let hanging requests end."""

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        try:
            verify(request.headers, body, self.keys)
        except SignatureError as exc:
            self.received.append(Received(401, refusal=exc.reason))
            return Response(status_code=401)
        if request.headers.get("content-type") != "application/x-protobuf":
            self.received.append(Received(415))
            return Response(status_code=415)
        event = event_pb2.Event.FromString(body)
        step = self.plan[len(self.received)] if len(self.received) < len(self.plan) else 200
        if step == "hang":
            self.received.append(Received(0, event.id))
            await self.release.wait()
            return Response(status_code=200)
        self.received.append(Received(step, event.id))
        if 200 <= step < 300 and event.id not in {e.id for e in self.accepted}:
            self.accepted.append(event)
        return Response(status_code=step)

    def statuses(self) -> list[int]:
        return [r.status for r in self.received]


@asynccontextmanager
async def serving(receiver: Receiver) -> AsyncIterator[str]:
    """Serves `receiver` and yields its URL; stops the server (and frees hangers) on exit."""
    app = Starlette(routes=[Route("/hook", receiver.handle, methods=["POST"])])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))

    async def started() -> bool:
        if task.done():
            task.result()  # raises why the server died
        return server.started

    try:
        await eventually(started, what="the callback receiver to start")
        yield f"http://127.0.0.1:{port}/hook"
    finally:
        receiver.release.set()
        server.should_exit = True
        await task
        sock.close()
