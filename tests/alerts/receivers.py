"""Real local receivers for the notifiers: an HTTP server standing in for a Slack incoming
webhook and an aiosmtpd SMTP server, both on 127.0.0.1 on free ports, recording what arrives."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

WEBHOOK_PATH = "/services/T000TEST/B000TEST/webhook-secret-token-123"


@dataclass
class SlackReceiver:
    """POSTs as Slack would take them; `statuses` are answered first, then 200."""

    port: int = 0
    posts: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{WEBHOOK_PATH}"

    def received(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.posts)


@contextmanager
def slack_receiver() -> Iterator[SlackReceiver]:
    receiver = SlackReceiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            with receiver.lock:
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                if status == 200:
                    assert self.headers.get("content-type", "").startswith("application/json")
                    receiver.posts.append(json.loads(body))
                    receiver.paths.append(self.path)
            self.send_response(status)
            self.send_header("content-type", "text/plain")
            self.end_headers()
            self.wfile.write(b"ok" if status == 200 else b"no")

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@dataclass
class Mailbox:
    host: str = "127.0.0.1"
    port: int = 0
    messages: list[Message] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def received(self) -> list[Message]:
        with self.lock:
            return list(self.messages)


class _Handler:
    def __init__(self, box: Mailbox) -> None:
        self.box = box

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        with self.box.lock:
            self.box.messages.append(message_from_bytes(content))
            self.box.envelopes.append((str(envelope.mail_from), list(envelope.rcpt_tos)))
        return "250 OK"


def _authenticator(user: str, password: str) -> Any:
    def check(
        server: Any, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == user
            and (data.password.decode() == password)
        )
        return AuthResult(success=ok, handled=False)

    return check


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def smtp_server(*, user: str = "", password: str = "") -> Iterator[Mailbox]:
    """aiosmtpd on a free port; with `user`, it offers AUTH (over plain text: a test server)."""
    box = Mailbox()
    kwargs: dict[str, Any] = {}
    if user:
        kwargs = {"authenticator": _authenticator(user, password), "auth_require_tls": False}
    box.port = free_port()
    controller = Controller(_Handler(box), hostname="127.0.0.1", port=box.port, **kwargs)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()
