"""`qmtl run MODULE:ATTRIBUTE`: a strategy submitted to a Gateway and run until SIGTERM/SIGINT.

The process the runner image starts (deploy/images/runner/Containerfile). It imports the
strategy (a `Strategy`, or a function returning one, called without arguments), submits it
with the SDK's `submit` (a strategy submitted before is the same strategy: its plan comes
back), runs the nodes of its plan with the SDK's `Runner` on the record bus (Kafka; `memory`
only to try a strategy in one process), follows its tag queries (`TagQueryFollower`) and
reports node states to the Gateway. A source (`StreamInput`) is never computed here: whatever
produces its bars writes them to its topic. docs/sdk.md ("Running a strategy with qmtl run").

`/health` (liveness: the process serves) and `/ready` (200 once the strategy runs, 503 before,
while stopping, and once a subscription failed) answer on `--health-port`. On SIGTERM/SIGINT:
/ready turns 503 and the runner stops consuming (the record in hand is finished and committed)
within `--grace`; then the Gateway client, the bus and the health listener close. Exit codes:
0 after a signal and a clean stop; 1 a Gateway that refuses or fails the submission, a bus
that cannot be reached, a failed subscription, a stop past the grace; 2 a setting it refuses
(a target that does not import or is not a strategy).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import inspect
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from qmtl.cli.registry import Command
from qmtl.cli.service_options import (
    Option,
    add_options,
    config_error,
    configure_logging,
    port,
    seconds,
)

if TYPE_CHECKING:
    from qmtl.runtime.health import HealthReporter
    from qmtl.runtime.recordbus import RecordBus
    from qmtl.runtime.serve import Listener
    from qmtl.services.sdk.runner import Runner
    from qmtl.services.sdk.strategy import Strategy

COMMAND_NAME = "run"
SERVICE = "qmtl-runner"
DEFAULT_HEALTH_PORT = 8070
# How often the process looks for a subscription that failed in the background (the Runner
# exposes it as a property, not as something to await).
WATCH_INTERVAL_S = 1.0
_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_log = logging.getLogger("qmtl.cli.run")


class TargetError(ValueError):
    """MODULE:ATTRIBUTE that does not name a strategy; the message says which part and why."""


def options() -> list[Option]:
    from qmtl.runtime.endpoints import ServiceEndpoints

    return [
        Option("--gateway-url", "QMTL_GATEWAY_URL", "http://127.0.0.1:8080",
               "the Gateway's public listener (strategy status, tag-query lookups)"),
        Option("--gateway-internal-url", "QMTL_GATEWAY_INTERNAL_URL", "http://127.0.0.1:8081",
               "the Gateway's internal listener (submission, node-status reports)"),
        Option("--token", "QMTL_RUNNER_TOKEN", "",
               "bearer token with the scopes strategies:submit, strategies:read, "
               "strategies:report and queues:read (docs/operations/auth.md)", secret=True),
        Option("--bus", "QMTL_RUNNER_BUS", "kafka",
               "record bus of the node topics: kafka; memory keeps them in this process (only "
               "to try a strategy: nothing else sees its records)", choices=("kafka", "memory")),
        Option("--kafka-bootstrap", "QMTL_KAFKA_BOOTSTRAP",
               ServiceEndpoints.from_env().kafka_bootstrap,
               "Kafka bootstrap servers (--bus kafka)"),
        Option("--group", "QMTL_RUNNER_GROUP", "",
               "consumer group of the node topics; default qmtl-run-<strategy id>, so a "
               "restarted process resumes from its committed offsets"),
        Option("--app-dir", "QMTL_RUNNER_APP_DIR", ".",
               "directory put first on the import path before MODULE is imported"),
        Option("--submit-wait", "QMTL_RUNNER_SUBMIT_WAIT_SECONDS", "30",
               "how long the submission may take before the process gives up", _positive),
        Option("--tag-query-interval", "QMTL_RUNNER_TAG_QUERY_INTERVAL_SECONDS", "5",
               "how often tag queries are looked up again for new queues", _positive),
        Option("--health-host", "QMTL_RUNNER_HEALTH_HOST", "127.0.0.1",
               "host of the /health and /ready listener"),
        Option("--health-port", "QMTL_RUNNER_HEALTH_PORT", str(DEFAULT_HEALTH_PORT),
               "port of the /health and /ready listener (0: any free port)", port),
        Option("--grace", "QMTL_SHUTDOWN_GRACE_SECONDS", "10",
               "seconds the runner gets to stop consuming after SIGTERM", seconds),
        Option("--log-level", "QMTL_LOG_LEVEL", "INFO", "logging level",
               choices=("DEBUG", "INFO", "WARNING", "ERROR")),
    ]  # fmt: skip


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"seconds > 0, got {text}")
    return value


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Run a strategy written with the SDK: import MODULE:ATTRIBUTE (a Strategy, or a "
        "function returning one), submit it to the Gateway, compute the nodes its plan gives "
        "this process on the record bus, and serve /health and /ready, until SIGTERM/SIGINT. "
        "Exit 0 after a clean stop, 1 a failure at run time, 2 a target or setting refused."
    )
    parser.add_argument(
        "target", metavar="MODULE:ATTRIBUTE",
        help="the strategy: e.g. my_strategy:strategy, or my_package.strategies:build for a "
        "function that returns one",
    )  # fmt: skip
    add_options(parser, options())


# -- the target ---------------------------------------------------------------------------


def _split(target: str) -> tuple[str, str]:
    module, sep, attribute = target.partition(":")
    if not sep or not module or not attribute:
        raise TargetError(f"{target!r} is not MODULE:ATTRIBUTE (e.g. my_strategy:strategy)")
    return module, attribute


def _import(module: str, app_dir: str) -> Any:
    path = os.path.abspath(app_dir)
    if path not in sys.path:
        sys.path.insert(0, path)
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        # The module itself (or a package above it) is missing: not a failure inside it.
        if exc.name is not None and (module == exc.name or module.startswith(exc.name + ".")):
            raise TargetError(f"cannot import module {module!r}: no module named {exc.name!r} "
                              f"(import path starts with {path})") from None  # fmt: skip
        raise TargetError(f"module {module!r} failed to import: {_one_line(exc)}") from None
    except Exception as exc:  # the quant's module raised while it was imported
        raise TargetError(f"module {module!r} failed to import: {_one_line(exc)}") from None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


async def load_strategy(target: str, app_dir: str = ".") -> Strategy:
    """The Strategy MODULE:ATTRIBUTE names (ATTRIBUTE may be dotted); a TargetError naming
    the part that is wrong otherwise. A function is called without arguments (awaited when it
    returns an awaitable) and must return a Strategy with at least one node."""
    from qmtl.services.sdk.errors import AuthoringError
    from qmtl.services.sdk.strategy import Strategy

    module_name, attribute = _split(target)
    found: Any = _import(module_name, app_dir)
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise TargetError(f"module {module_name!r} has no attribute {attribute!r}") from None
    if isinstance(found, Strategy):
        strategy = found
    elif not callable(found):
        raise TargetError(f"{target} is of type {type(found).__name__}, not a Strategy or a "
                          "function returning one")  # fmt: skip
    else:
        try:
            made = found()
            if inspect.isawaitable(made):
                made = await made
        except Exception as exc:  # the quant's factory
            raise TargetError(f"{target}() raised {_one_line(exc)}") from None
        if not isinstance(made, Strategy):
            raise TargetError(f"{target}() returned a {type(made).__name__}, not a Strategy")
        strategy = made
    try:
        strategy.to_dag()
    except AuthoringError as exc:
        raise TargetError(f"{target}: {exc}") from None
    return strategy


# -- health ---------------------------------------------------------------------------------


class _HealthListener:
    """/health and /ready (qmtl.runtime.serve.health_routes) on one small HTTP listener."""

    def __init__(self, reporter: HealthReporter, host: str, port: int) -> None:
        self._reporter, self._host, self._port = reporter, host, port
        self._server: Listener | None = None
        self._task: asyncio.Task[None] | None = None
        self.port = 0

    async def start(self) -> None:
        import uvicorn
        from starlette.applications import Starlette

        from qmtl.runtime.serve import Listener, ServeError, bind_listener, health_routes

        sock = bind_listener("health", self._host, self._port)
        self.port = sock.getsockname()[1]
        app = Starlette(routes=health_routes(self._reporter, public=True))
        config = uvicorn.Config(
            app, lifespan="off", log_config=None, access_log=False, server_header=False
        )
        self._server = server = Listener(config)
        self._task = task = asyncio.create_task(server.serve(sockets=[sock]))
        accepting = asyncio.ensure_future(server.accepting.wait())
        await asyncio.wait({accepting, task}, return_when=asyncio.FIRST_COMPLETED)
        if not accepting.done():
            accepting.cancel()
            raise ServeError(f"the health listener on {self._host}:{self.port} did not start")

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            with contextlib.suppress(Exception):
                await self._task


class _RunState:
    """What /ready reports on: the runner once it runs, and whether the process is stopping."""

    def __init__(self) -> None:
        self.runner: Runner | None = None
        self.stopping = False

    def failure(self) -> BaseException | None:
        return None if self.runner is None else self.runner.failure


def _reporter(state: _RunState) -> HealthReporter:
    from importlib import metadata

    from qmtl.runtime import contracts_version
    from qmtl.runtime.health import HealthReporter

    try:
        version = metadata.version("qmtl-sdk")
    except metadata.PackageNotFoundError:
        version = "0+unknown"
    reporter = HealthReporter(
        SERVICE, instance_id="", version=version, contract_version=contracts_version.SPOKEN
    )

    async def consuming() -> None:
        failure = state.failure()
        if failure is not None:
            raise RuntimeError(f"a subscription stopped: {_one_line(failure)}")
        if state.stopping:
            raise RuntimeError("stopping")

    reporter.add_check("runner", consuming, adapter="sdk")
    return reporter


# -- running --------------------------------------------------------------------------------


@contextlib.contextmanager
def _signals(stop: asyncio.Event) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    for sig in _SIGNALS:
        loop.add_signal_handler(sig, _on_signal, stop, sig)
    try:
        yield
    finally:
        for sig in _SIGNALS:
            loop.remove_signal_handler(sig)


def _on_signal(stop: asyncio.Event, sig: signal.Signals) -> None:
    _log.info("%s received: stopping gracefully", sig.name)
    stop.set()


async def _open_bus(kind: str, bootstrap: str) -> RecordBus:
    if kind == "memory":
        from qmtl.runtime.recordbus import InMemoryRecordBus

        return InMemoryRecordBus()
    from qmtl.runtime.recordbus.kafka import KafkaRecordBus

    return await KafkaRecordBus.connect(bootstrap, client_id="qmtl-run")


class RunFailed(Exception):
    """Something the run cannot go on after; the message is the one line printed."""


async def _start(
    args: argparse.Namespace,
    strategy: Strategy,
    stack: contextlib.AsyncExitStack,
    state: _RunState,
    started: float,
) -> None:
    from qmtl.gateway.v1.gateway_service_client import AsyncGatewayServiceClient
    from qmtl.runtime.errors import QmtlError
    from qmtl.runtime.port_errors import PortError
    from qmtl.services.sdk.client import submit
    from qmtl.services.sdk.reporting import node_status_reporter
    from qmtl.services.sdk.runner import Runner
    from qmtl.services.sdk.tagqueries import TagQueryFollower

    client = await stack.enter_async_context(
        AsyncGatewayServiceClient(
            args.gateway_url, internal=args.gateway_internal_url, token=args.token or None
        )
    )
    try:
        submitted = await submit(strategy, client, wait=args.submit_wait)
    except QmtlError as exc:
        raise RunFailed(
            f"submitting strategy {strategy.name!r} to {args.gateway_internal_url}: {exc}"
        ) from None
    reused = len(submitted.diff.reused_node_ids)
    print(f"qmtl {COMMAND_NAME}: submitted strategy {strategy.name!r} as "
          f"{submitted.strategy_id} duplicate={str(submitted.duplicate).lower()} "
          f"computed_here={len(submitted.plan.run)} reused={reused}", flush=True)  # fmt: skip
    try:
        bus = await _open_bus(args.bus, args.kafka_bootstrap)
    except (QmtlError, PortError) as exc:
        raise RunFailed(
            f"the record bus ({args.bus} at {args.kafka_bootstrap}) cannot be reached: "
            f"{_one_line(exc)}"
        ) from None
    stack.push_async_callback(bus.aclose)
    group = args.group or f"qmtl-run-{submitted.strategy_id}"
    runner = Runner(
        submitted.plan,
        bus,
        group=group,
        report=node_status_reporter(client, submitted.strategy_id),
    )
    state.runner = runner
    follower = TagQueryFollower(client, submitted.plan, runner, interval=args.tag_query_interval)
    try:
        await runner.start()
    except (QmtlError, PortError) as exc:
        # E.g. a node topic missing on Kafka: the Gateway's DAG Manager creates them, so it must
        # run on the same Kafka (a `--backend memory` Gateway creates none there).
        raise RunFailed(f"the runner did not start: {_one_line(exc)}") from None
    follower.start()
    stack.push_async_callback(follower.stop)
    print(f"qmtl {COMMAND_NAME}: ready in {round((time.perf_counter() - started) * 1000)} ms "
          f"strategy_id={submitted.strategy_id} group={group} bus={args.bus}",
          flush=True)  # fmt: skip


async def _until_stopped(stop: asyncio.Event, state: _RunState) -> None:
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(WATCH_INTERVAL_S):
                await stop.wait()
        failure = state.failure()
        if failure is not None:
            raise RunFailed(f"a subscription stopped: {_one_line(failure)}")


async def _stop_runner(state: _RunState, grace: float) -> None:
    state.stopping = True  # /ready answers 503 from now on
    if state.runner is None:
        return
    try:
        async with asyncio.timeout(grace):
            await state.runner.stop()
    except TimeoutError:
        raise RunFailed(f"the runner did not stop within the grace period ({grace:g}s)") from None


async def _run_async(args: argparse.Namespace, started: float) -> int:
    strategy = await load_strategy(args.target, args.app_dir)
    state = _RunState()
    reporter = _reporter(state)
    health = _HealthListener(reporter, args.health_host, args.health_port)
    await health.start()
    stop = asyncio.Event()
    try:
        print(f"qmtl {COMMAND_NAME}: listening health=http://{args.health_host}:{health.port}",
              flush=True)  # fmt: skip
        with _signals(stop):
            async with contextlib.AsyncExitStack() as stack:
                # Step one of the stop: no longer ready, the runner stops consuming; step two,
                # when the stack unwinds: the follower, the bus and the client close.
                starting = asyncio.create_task(_start(args, strategy, stack, state, started))
                stopping = asyncio.ensure_future(stop.wait())
                try:
                    await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    stopping.cancel()
                if not starting.done():  # a signal while submitting: nothing runs yet
                    starting.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await starting
                else:
                    starting.result()
                    reporter.mark_booted()
                    try:
                        await _until_stopped(stop, state)
                    finally:
                        await _stop_runner(state, args.grace)
    finally:
        await health.stop()
    print(f"qmtl {COMMAND_NAME}: stopped", flush=True)
    return 0


def _run(args: argparse.Namespace) -> int:
    from qmtl.runtime.serve import ServeError

    configure_logging(args.log_level)
    started = time.perf_counter()
    try:
        return asyncio.run(_run_async(args, started))
    except TargetError as exc:
        return config_error(COMMAND_NAME, exc)
    except (RunFailed, ServeError) as exc:
        print(f"qmtl {COMMAND_NAME}: error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # one line naming what failed, not a traceback
        _log.debug("qmtl run failed", exc_info=True)
        print(f"qmtl {COMMAND_NAME}: error: {_one_line(exc)}", file=sys.stderr)
        return 1


COMMAND = Command(
    name=COMMAND_NAME,
    help="run a strategy (MODULE:ATTRIBUTE) against a Gateway until SIGTERM; /health, /ready",
    configure=_configure,
    run=_run,
)
