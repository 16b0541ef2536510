"""Requests/s of a generated GET route against a bare Starlette route returning the same bytes.

    .venv/bin/python -m bench.http.run [--requests 5000] [--connections 16] [--rounds 5] [--quick]

Each app runs in its own uvicorn process on 127.0.0.1; this process is the load generator: a
raw asyncio HTTP/1.1 client holding keep-alive connections (opened once per target), sending
one request at a time per connection. The targets are measured in rounds (5 unless --rounds
says otherwise); within a round they take turns in --slices short slices (ABC, CBA, ABC, ...),
so that a burst of load from elsewhere on the machine (this VM's neighbours move a target's
speed by 30% from one second to the next) hits every target alike instead of one of them.
Every round's ratios are printed, the median round of each target is reported, and the figure
of merit is the median of the per-round ratios.

- bare:      a Starlette route returning the golden GetQueuesByTagResponse bytes
- generated: Gateway's generated GetQueuesByTag route (bearer token verified, scopes checked,
             tags/interval query parsed, Accept negotiated, a Context built, the handler
             called through the pipeline, the fixture message encoded)
- fastapi:   for reference, a plain FastAPI path operation returning the same raw bytes

The ratio generated/bare is the figure of merit (goal: >= 0.85). It is printed twice: from
requests/s, and from the server processes' CPU time per request (read from /proc), which other
processes on a busy machine disturb much less.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import socket
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench.results import RESULTS, Figure, merge_report, print_figures

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "golden" / "fixtures"
RESPONSE = "qmtl.gateway.v1.GetQueuesByTagResponse"
PATH = "/v1/gateway/queues/by-tag"
QUERY = "?tags=BTC&tags=price&interval=60"
SECRET = b"bench-secret"


def payload() -> bytes:
    return sorted((FIXTURES / RESPONSE).glob("full-*.binpb"))[0].read_bytes()


# -- the apps (built inside the server process) -----------------------------------------------


def bare_app() -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    body = payload()

    async def endpoint(request: Request) -> Response:
        return Response(body, media_type="application/x-protobuf")

    return Starlette(routes=[Route(PATH, endpoint, methods=["GET"])])


def generated_app() -> Any:
    from qmtl.gateway.v1 import gateway_service_http
    from qmtl.gateway.v1.gateway_service_handler import GatewayServiceBase
    from qmtl.gateway.v1.queue_messages_pb2 import (
        GetQueuesByTagRequest,
        GetQueuesByTagResponse,
    )
    from qmtl.runtime.auth import HmacTokenVerifier
    from qmtl.runtime.context import Context

    reply = GetQueuesByTagResponse.FromString(payload())

    class Handler(GatewayServiceBase):
        async def get_queues_by_tag(
            self, request: GetQueuesByTagRequest, ctx: Context
        ) -> GetQueuesByTagResponse:
            return reply

    return gateway_service_http.create_gateway_service_public_app(
        Handler(),
        HmacTokenVerifier(SECRET),
    )


def fastapi_app() -> Any:
    from fastapi import FastAPI
    from starlette.responses import Response

    body = payload()
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)

    @app.get(PATH)
    async def endpoint() -> Response:
        return Response(body, media_type="application/x-protobuf")

    return app


APPS: dict[str, Callable[[], Any]] = {
    "bare": bare_app,
    "generated": generated_app,
    "fastapi": fastapi_app,
}


def _pin(cpu: int) -> None:
    # Servers on one core, the load generator on another, so neither steals the other's time
    # slices and the scheduler does not move them mid-run.
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {cpu % (os.cpu_count() or 1)})


def serve(name: str, sock: socket.socket, ready: Connection) -> None:
    import uvicorn

    _pin(0)

    config = uvicorn.Config(
        APPS[name](),
        log_level="warning",
        access_log=False,
        lifespan="off",
        loop="asyncio",
        http="h11",
    )
    server = uvicorn.Server(config)
    ready.send(True)
    server.run(sockets=[sock])


# -- the load generator -----------------------------------------------------------------------


@dataclass
class Tally:
    """Requests answered in a round's slices of one target, and the time they took."""

    done: int = 0
    failed: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0


Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def open_connections(port: int, count: int) -> list[Stream]:
    return [await asyncio.open_connection("127.0.0.1", port) for _ in range(count)]


async def _exchange(
    connection: Stream, request: bytes, budget: list[int], deadline: float, tally: Tally
) -> None:
    reader, writer = connection
    while budget[0] > 0 and time.perf_counter() < deadline:
        budget[0] -= 1
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        if length:
            await reader.readexactly(length)
        if head[9:12] == b"200":
            tally.done += 1
        else:
            tally.failed += 1


async def measure(
    connections: list[Stream], request: bytes, count: int, seconds: float, tally: Tally
) -> None:
    """`count` requests over the connections (at most `seconds`), added to `tally`."""
    budget = [count]
    start = time.perf_counter()
    await asyncio.gather(
        *(_exchange(c, request, budget, start + seconds, tally) for c in connections)
    )
    tally.seconds += time.perf_counter() - start


def close(connections: list[Stream]) -> None:
    for _, writer in connections:
        writer.close()


def cpu_seconds(pid: int) -> float:
    """CPU time a process has used, from /proc (Linux).

    Nanoseconds on the CPU summed over its threads (schedstat) where the kernel keeps them;
    else user + system time from stat, counted in clock ticks (10 ms: a few microseconds per
    request over a round, as coarse as the differences measured).
    """
    nanoseconds, read = 0, False
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            nanoseconds += int(task.joinpath("schedstat").read_text().split()[0])
            read = True
        except FileNotFoundError:
            continue  # a thread that ended meanwhile, or a kernel without schedstat
    if read:
        return nanoseconds / 1e9
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # Fields 14 and 15 of stat(5), counted from the state field (3) after the command name.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def request_bytes() -> bytes:
    """The same request for every target, so the server's HTTP parsing costs them alike."""
    from qmtl.runtime.auth import issue_token

    token = issue_token(SECRET, "bench", ["queues:read"])
    headers = [
        f"GET {PATH}{QUERY} HTTP/1.1",
        "Host: 127.0.0.1",
        "Accept: application/x-protobuf",
        f"Authorization: Bearer {token}",
    ]
    return ("\r\n".join(headers) + "\r\n\r\n").encode()


def _ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.3f}" if denominator else "-"


def print_round(number: int, results: dict[str, list[float]], cpu: dict[str, list[float]]) -> None:
    """One round's figures as measured, with its ratios to bare (req/s and server CPU)."""
    rates = ", ".join(
        f"{name} {values[-1]:,.0f} req/s {cpu[name][-1] * 1e6:.1f} us"
        for name, values in results.items()
    )
    ratios = ", ".join(
        f"{name}/bare {values[-1] / results['bare'][-1]:.3f} "
        f"(CPU {_ratio(cpu['bare'][-1], cpu[name][-1])})"
        for name, values in results.items()
        if name != "bare"
    )
    print(f"  round {number}: {rates}; {ratios}", flush=True)


async def _rounds(
    servers: dict[str, tuple[int, Any]], args: argparse.Namespace
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Requests/s and server CPU seconds per request of every target, per round."""
    request = request_bytes()
    pools = {
        name: await open_connections(port, args.connections) for name, (port, _) in servers.items()
    }
    results: dict[str, list[float]] = {name: [] for name in servers}
    cpu: dict[str, list[float]] = {name: [] for name in servers}
    try:
        for pool in pools.values():
            await measure(pool, request, args.warmup, 30, Tally())
        slices = max(1, args.slices)
        for number in range(1, args.rounds + 1):
            tallies = {name: Tally() for name in servers}
            for turn in range(slices):
                # Each slice: every target in turn, the order rotated every slice, so each
                # target runs first, in the middle and last equally often.
                names = list(servers)
                order = names[turn % len(names) :] + names[: turn % len(names)]
                for name in order:
                    pid = servers[name][1].pid
                    before = cpu_seconds(pid)
                    count = args.requests // slices + (turn < args.requests % slices)
                    tally = tallies[name]
                    await measure(pools[name], request, count, args.seconds / slices, tally)
                    tally.cpu_seconds += cpu_seconds(pid) - before
            for name, tally in tallies.items():
                if tally.failed:
                    raise SystemExit(f"{tally.failed} responses were not 200 from {name}")
                results[name].append(tally.done / tally.seconds)
                cpu[name].append(tally.cpu_seconds / tally.done)
            print_round(number, results, cpu)
    finally:
        for pool in pools.values():
            close(pool)
    return results, cpu


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000, help="per target and round")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median)")
    parser.add_argument(
        "--slices", type=int, default=10, help="turns per target within a round (alternating)"
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="cap per target and round")
    parser.add_argument("--warmup", type=int, default=2000)
    parser.add_argument(
        "--quick", action="store_true", help="500 requests x 3 rounds, 200 warm-up (development)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.requests, args.rounds, args.warmup = 500, 3, 200

    context = multiprocessing.get_context("fork")
    servers: dict[str, tuple[int, Any]] = {}
    try:
        for name in APPS:
            # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto
            # says TCP, and without it uvicorn's separate header and body writes meet the
            # client's delayed ACK (40 ms per response).
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", 0))
            sock.listen(1024)
            parent, child = context.Pipe()
            process = context.Process(target=serve, args=(name, sock, child), daemon=True)
            process.start()
            if not parent.poll(30) or not parent.recv():
                raise SystemExit(f"{name} server did not start")
            servers[name] = (sock.getsockname()[1], process)
            sock.close()

        _pin(1)
        results, cpu = asyncio.run(_rounds(servers, args))
    finally:
        for _, process in servers.values():
            process.terminate()
            process.join(10)

    median = {name: statistics.median(rates) for name, rates in results.items()}
    # Within a round the targets take turns slice by slice, so its ratio compares them under
    # the same machine load; the median over rounds discards rounds another process disturbed.
    ratios = {
        name: statistics.median(
            rate / bare for rate, bare in zip(results[name], results["bare"], strict=True)
        )
        for name in APPS
    }
    print(
        f"HTTP GET {PATH} -> {len(payload())} protobuf bytes; {args.requests} requests x "
        f"{args.rounds} rounds, {args.connections} keep-alive connections, uvicorn (h11, asyncio)"
    )
    # Server CPU time per request does not depend on what else the machine runs, so its ratio
    # (bare over target: the throughput a CPU-bound server would reach) is the steadier figure.
    cpu_us = {name: statistics.median(values) * 1e6 for name, values in cpu.items()}
    for name, rates in results.items():
        rounds = ", ".join(f"{rate:,.0f}" for rate in rates)
        print(
            f"  {name:<10} {median[name]:>9,.0f} req/s  {cpu_us[name]:6.1f} server CPU us/req"
            f"   (rounds: {rounds})"
        )
    for name, note in (("generated", "goal >= 0.85"), ("fastapi", "reference")):
        print(
            f"  ratio {name}/bare = {ratios[name]:.2f} by req/s (median of rounds), "
            f"{cpu_us['bare'] / cpu_us[name]:.2f} by server CPU per request ({note})"
        )
    figures = {
        "rounds": args.rounds,
        "requests_per_round": args.requests,
        "req_per_s": {name: round(median[name], 1) for name in APPS},
        "server_cpu_us_per_req": {name: round(cpu_us[name], 2) for name in APPS},
        "ratio_by_req_per_s": {name: round(ratios[name], 3) for name in APPS if name != "bare"},
        "ratio_by_cpu": {
            name: round(cpu_us["bare"] / cpu_us[name], 3) for name in APPS if name != "bare"
        },
        "round_ratios_by_req_per_s": {
            name: [
                round(rate / bare, 3)
                for rate, bare in zip(results[name], results["bare"], strict=True)
            ]
            for name in APPS
            if name != "bare"
        },
        "goal_generated_ratio": 0.85,
    }
    data = [
        Figure(
            f"GET {name} vs bare Starlette",
            median[name],
            median["bare"],
            "req/s",
            goal,
            ratio=ratios[name],
        )
        for name, goal in (("generated", 0.85), ("fastapi", None))
    ]
    # Reported beside the figure of merit: a time, so its ratio is bare / generated (the
    # throughput a CPU-bound server would reach, on the same scale as the req/s ratio).
    data.append(
        Figure(
            "GET generated vs bare Starlette, server CPU per request",
            cpu_us["generated"],
            cpu_us["bare"],
            "us/req",
            None,
            ratio=cpu_us["bare"] / cpu_us["generated"],
        )
    )
    # A quick run must not replace the figures of a full one.
    section = "http-quick" if args.quick else "http"
    print_figures(section, data)
    merge_report(RESULTS, section, figures, data)
    print(f"figures merged into {RESULTS} under {section!r}")


if __name__ == "__main__":
    main()
