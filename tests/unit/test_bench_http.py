"""bench/http's load generator: slices that take turns over connections opened once, every
answer counted, a non-200 answer stopping the bench. No timing is asserted."""

from __future__ import annotations

import argparse
import asyncio
import os
from types import SimpleNamespace

import pytest

from bench.http import run


class Server:
    """Answers every request with `status`, logging which server answered."""

    def __init__(self, status: bytes, log: list[str], name: str) -> None:
        self.status, self.log, self.name = status, log, name
        self.finished: list[asyncio.Future[None]] = []

    async def start(self) -> asyncio.Server:
        return await asyncio.start_server(self.answer, "127.0.0.1", 0)

    async def answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        finished = asyncio.get_running_loop().create_future()
        self.finished.append(finished)
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                self.log.append(self.name)
                writer.write(b"HTTP/1.1 " + self.status + b"\r\nContent-Length: 2\r\n\r\nok")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
        finally:
            finished.set_result(None)


async def _stop(servers: dict[str, asyncio.Server], handlers: list[Server]) -> None:
    """Once the bench closed its connections, every handler ends on its own."""
    await asyncio.gather(*(f for h in handlers for f in h.finished))
    for server in servers.values():
        server.close()


def _targets(servers: dict[str, asyncio.Server]) -> dict[str, tuple[int, object]]:
    # The bench reads the server processes' CPU time; here both "servers" are this process.
    this = SimpleNamespace(pid=os.getpid())
    return {name: (s.sockets[0].getsockname()[1], this) for name, s in servers.items()}


def _args(**overrides: object) -> argparse.Namespace:
    settings = {"requests": 40, "connections": 4, "rounds": 2, "slices": 4, "seconds": 10.0}
    return argparse.Namespace(warmup=8, **{**settings, **overrides})


async def test_every_round_sends_each_target_its_requests_in_alternating_slices() -> None:
    log: list[str] = []
    handlers = [Server(b"200 OK", log, name) for name in ("bare", "generated")]
    servers = {h.name: await h.start() for h in handlers}
    try:
        results, cpu = await run._rounds(_targets(servers), _args())
    finally:
        await _stop(servers, handlers)
    assert {name: len(rates) for name, rates in results.items()} == {"bare": 2, "generated": 2}
    assert all(rate > 0 for rates in results.values() for rate in rates)
    assert all(seconds >= 0 for values in cpu.values() for seconds in values)
    # 8 warm-up requests, then 2 rounds of 40 per target.
    assert log.count("bare") == log.count("generated") == 8 + 2 * 40
    # After the warm-ups, the targets take turns: 2 rounds x 4 slices x 2 targets.
    measured = log[16:]
    turns = [name for i, name in enumerate(measured) if i == 0 or measured[i - 1] != name]
    assert len(turns) >= 8
    assert turns[:2] == ["bare", "generated"]


async def test_a_target_answering_anything_but_200_stops_the_bench() -> None:
    log: list[str] = []
    handlers = [
        Server(b"200 OK", log, "bare"),
        Server(b"503 Service Unavailable", log, "generated"),
    ]
    servers = {h.name: await h.start() for h in handlers}
    try:
        with pytest.raises(SystemExit, match="not 200 from generated"):
            await run._rounds(_targets(servers), _args(rounds=1))
    finally:
        await _stop(servers, handlers)
