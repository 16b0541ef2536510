"""`qmtl run MODULE:ATTRIBUTE` run as the installed console script, as the runner image runs it.

A refused target is one line naming it and exit 2; a tiny strategy runs against a
`qmtl gateway --backend memory` process: it is submitted (COMPLETED at the Gateway, its node
reported RUNNING), /health and /ready answer 200, and SIGTERM stops it with exit 0. On Kafka
(the node topics made by the test, as the DAG Manager would) it computes the bars fed to its
source.
"""

from __future__ import annotations

import argparse
import importlib.util
import secrets
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from qmtl.cli import run as run_cli
from qmtl.cli.service_options import add_options
from qmtl.dag.v1 import node_status_pb2, strategy_pb2
from qmtl.data.v1 import record_pb2
from qmtl.gateway.v1.gateway_service_client import AsyncGatewayServiceClient
from qmtl.gateway.v1.strategy_messages_pb2 import GetStrategyStatusRequest
from qmtl.runtime.auth import issue_token
from qmtl.runtime.endpoints import ServiceEndpoints
from qmtl.runtime.recordbus.kafka import KafkaRecordBus
from qmtl.services.sdk import Strategy
from qmtl.services.sdk.client import submit
from qmtl.services.sdk.payloads import decode_payload
from qmtl.services.sdk.runner import source_record
from tests.eventbus_kafka import TopicPrefix, private_topics, read_all
from tests.polling import eventually
from tests.serve.service_process import STARTUP_S, ServiceProcess

QMTL = Path(sys.executable).with_name("qmtl")
SCOPES = ("strategies:submit", "strategies:read", "strategies:report", "queues:read")

# A price source and a moving average over it: the average is what the runner computes.
STRATEGY_MODULE = """
from qmtl.services.sdk import Node, Strategy, StreamInput


def mean(view):
    closes = view[view.node.inputs[0]]
    return sum(closes) / len(closes)


price = StreamInput(tags=("{asset}", "price"), interval="60s", period=3, name="price")
average = Node(input=price, compute_fn=mean, period=3, name="ma3", tags=("{asset}", "ma"))
strategy = Strategy("run-cli-test", [average])


def build():
    return Strategy("run-cli-test", [average])


not_a_strategy = 42
"""


def qmtl_run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(QMTL), "run", *args], capture_output=True, text=True, timeout=60, cwd=cwd
    )


@pytest.fixture
def strategy_dir(tmp_path: Path) -> Path:
    asset = f"runcli{uuid.uuid4().hex[:8]}"
    (tmp_path / "tiny_strategy.py").write_text(STRATEGY_MODULE.replace("{asset}", asset))
    (tmp_path / "asset").write_text(asset)
    (tmp_path / "broken_strategy.py").write_text("raise RuntimeError('no data source here')\n")
    return tmp_path


def test_help_names_the_target_and_every_option_with_its_environment_variable() -> None:
    done = qmtl_run("--help")
    assert done.returncode == 0, done.stderr
    assert "MODULE:ATTRIBUTE" in done.stdout
    for option in run_cli.options():
        assert option.flag in done.stdout
        assert option.env in " ".join(done.stdout.split()), option.env


def test_every_option_takes_its_default_from_its_environment_variable() -> None:
    options = run_cli.options()
    values = {o.env: ("1234" if o.type is not str else f"from-env-{o.dest}") for o in options}
    for option in options:
        if option.choices is not None:
            values[option.env] = option.choices[-1]
    parser = argparse.ArgumentParser()
    add_options(parser, options, env=values)
    parsed = vars(parser.parse_args([]))
    for option in options:
        assert parsed[option.dest] == option.type(values[option.env]), option.flag


@pytest.mark.parametrize(
    ("target", "says"),
    [
        ("no_such_module_here:strategy", "cannot import module 'no_such_module_here'"),
        ("broken_strategy:strategy", "module 'broken_strategy' failed to import: RuntimeError"),
        ("tiny_strategy:missing", "module 'tiny_strategy' has no attribute 'missing'"),
        (
            "tiny_strategy:not_a_strategy",
            "tiny_strategy:not_a_strategy is of type int, not a Strategy",
        ),
        ("tiny_strategy:mean", "tiny_strategy:mean() raised TypeError"),
        ("tiny_strategy", "is not MODULE:ATTRIBUTE"),
    ],
)
def test_a_target_that_is_not_a_strategy_is_one_line_naming_it_and_exit_2(
    strategy_dir: Path, target: str, says: str
) -> None:
    done = qmtl_run(target, "--app-dir", str(strategy_dir), "--health-port", "0")
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.startswith("qmtl run: error: "), done.stderr
    assert says in done.stderr
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_an_unreachable_gateway_is_one_line_and_exit_1(strategy_dir: Path) -> None:
    done = qmtl_run(
        "tiny_strategy:strategy", "--app-dir", str(strategy_dir), "--health-port", "0",
        "--gateway-url", "http://127.0.0.1:9", "--gateway-internal-url", "http://127.0.0.1:9",
    )  # fmt: skip
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "qmtl run: error: submitting strategy 'run-cli-test' to http://127.0.0.1:9" in (
        done.stderr
    )
    assert "Traceback" not in done.stderr


class RunProcess(ServiceProcess):
    """`qmtl run`, whose `listening` line names its health listener (`health=http://H:P`)."""

    def __init__(self, *args: str) -> None:
        super().__init__("run", *args)
        self.lines: dict[str, str] = {}

    async def _line(self, word: str, within: float = STARTUP_S) -> str:
        line = await super()._line(word, within)
        self.lines[word] = line
        return line

    async def line(self, word: str) -> str:
        """The next line starting `qmtl run: <word>`."""
        return await self._line(word)

    @property
    def health_url(self) -> str:
        return self.lines["listening"].split("health=", 1)[1].split()[0]


@pytest.fixture
async def gateway() -> AsyncIterator[tuple[ServiceProcess, bytes]]:
    secret = secrets.token_hex(32).encode()
    process = ServiceProcess(
        "gateway", "--backend", "memory", "--public-port", "0", "--internal-port", "0",
        env={"QMTL_TOKEN_SECRET": secret.decode(), "QMTL_LOG_LEVEL": "WARNING"},
    )  # fmt: skip
    try:
        await process.start()
        await process.wait_ready()
        yield process, secret
    finally:
        await process.close()


@pytest.mark.parametrize("attribute", ["strategy", "build"])
async def test_a_strategy_runs_until_sigterm_with_health_and_ready_answering(
    gateway: tuple[ServiceProcess, bytes], strategy_dir: Path, attribute: str
) -> None:
    process, secret = gateway
    token = issue_token(secret, "test:quant", SCOPES)
    run = RunProcess(
        f"tiny_strategy:{attribute}", "--app-dir", str(strategy_dir),
        "--gateway-url", process.url("public"), "--gateway-internal-url", process.url("internal"),
        "--token", token, "--bus", "memory", "--health-port", "0", "--log-level", "WARNING",
    )  # fmt: skip
    try:
        await run.start()
        ready = await run.wait_ready()
        strategy_id = ready.split("strategy_id=", 1)[1].split()[0]
        assert f"group=qmtl-run-{strategy_id}" in ready

        async with AsyncGatewayServiceClient(
            process.url("public"), internal=process.url("internal"), token=token
        ) as client:
            status = await client.get_strategy_status(
                GetStrategyStatusRequest(strategy_id=strategy_id)
            )
        assert status.state == strategy_pb2.STRATEGY_STATE_COMPLETED
        # The average, computed by this process, was reported running; the source is fed.
        assert [s.status for s in status.node_states] == [node_status_pb2.NODE_STATUS_RUNNING]

        async with httpx.AsyncClient() as http:
            health = await http.get(run.health_url + "/health")
            ready_answer = await http.get(run.health_url + "/ready")
        assert health.status_code == 200
        assert ready_answer.status_code == 200, ready_answer.text
        assert ready_answer.json()["ready"] is True

        assert await run.stop(signal.SIGTERM) == 0, run.logs()
        assert run.proc.stdout is not None
        assert b"qmtl run: stopped" in await run.proc.stdout.read()
    finally:
        await run.close()


def tiny_strategy(strategy_dir: Path) -> Strategy:
    """The module `qmtl run` imports, imported here under a name of its own."""
    name = f"tiny_strategy_{uuid.uuid4().hex}"
    spec = importlib.util.spec_from_file_location(name, strategy_dir / "tiny_strategy.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    strategy = module.strategy
    assert isinstance(strategy, Strategy)
    return strategy


async def test_on_kafka_the_resubmitted_strategy_computes_what_its_source_is_fed(
    gateway: tuple[ServiceProcess, bytes], strategy_dir: Path, endpoints: ServiceEndpoints
) -> None:
    process, secret = gateway
    token = issue_token(secret, "test:quant", SCOPES)
    strategy = tiny_strategy(strategy_dir)
    async with AsyncGatewayServiceClient(
        process.url("public"), internal=process.url("internal"), token=token
    ) as client:
        first = await submit(strategy, client)
    price, average = strategy.nodes
    asset = (strategy_dir / "asset").read_text()
    # A memory Gateway creates no Kafka topic: the test makes the two the DAG Manager would.
    names = [first.plan.topics[node.node_id].removeprefix(asset) for node in strategy.nodes]
    bootstrap = endpoints.kafka_bootstrap
    async with private_topics(bootstrap, names, prefix=TopicPrefix(asset), partitions=1):
        run = RunProcess(
            "tiny_strategy:strategy", "--app-dir", str(strategy_dir),
            "--gateway-url", process.url("public"),
            "--gateway-internal-url", process.url("internal"),
            "--token", token, "--bus", "kafka", "--kafka-bootstrap", bootstrap,
            "--health-port", "0", "--log-level", "WARNING",
        )  # fmt: skip
        try:
            await run.start()
            submitted = await run.line("submitted")
            ready = await run.wait_ready()
            # The same DAG again: the Gateway's first strategy, whose plan runs the average.
            assert f"as {first.strategy_id} duplicate=true computed_here=1" in submitted
            assert f"strategy_id={first.strategy_id}" in ready
            bars = [(1_704_067_200 + 60 * i, close) for i, close in enumerate([1.0, 2.0, 6.0])]
            bus = await KafkaRecordBus.connect(bootstrap, client_id="test-run-cli")
            try:
                topic = first.plan.topics[price.node_id]
                await bus.produce(topic, [source_record(price, ts, v) for ts, v in bars])
            finally:
                await bus.aclose()
            out_topic = first.plan.topics[average.node_id]

            async def averages() -> list[float]:
                found = []
                for raw in await read_all(bootstrap, out_topic):
                    record = record_pb2.Record.FromString(raw.value)
                    found.append(decode_payload(record.payload_type, record.payload))
                return found

            async def computed() -> bool:
                run.check_alive()
                return len(await averages()) == len(bars)

            await eventually(computed, what="an average per bar", within=60)
            assert await averages() == [1.0, 1.5, 3.0]
            assert await run.stop(signal.SIGTERM) == 0, run.logs()
        finally:
            await run.close()
