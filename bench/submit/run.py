"""Submit of a 1,000-node DAG through Gateway -> DAG Manager: latency and throughput at a fixed
offered rate on the real servers and with `--backend memory`, beside the bare in-process diff
(the service overhead), and two Gateways + two DAG Managers against one of each (throughput and
service CPU-seconds per submission). bench/submit/README.md explains method and figures.

    .venv/bin/python -m bench.submit.run [--quick] [--nodes N] [--rate R] [--submissions N]
                                         [--sequential K] [--results PATH]

Progress goes to stderr, the table to stdout, the figures into bench/results/latest.json under
"submit" ("submit-quick" for --quick). Exit 1 only when what was measured is not the work
claimed (a submission not COMPLETED, or with fewer queues than nodes) or a service would not
start; a missed goal is printed, not failed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.graph.graphdb import bench_graph, connect
from bench.graph.stats import Summary, format_table, ratio, summarize
from bench.graph.workload import vocabulary
from bench.results import RESULTS, Figure, merge_report, print_figures
from qmtl.dag.v1 import dag_pb2, strategy_pb2
from qmtl.dagmanager.v1 import diff_messages_pb2
from qmtl.gateway.v1 import strategy_messages_pb2
from qmtl.runtime import codec
from qmtl.runtime.auth import issue_token
from qmtl.runtime.endpoints import ServiceEndpoints
from qmtl.runtime.graphstore.neo4j import Neo4jGraphStore
from qmtl.runtime.nodeid import node_ids_crc32
from qmtl.runtime.topicadmin import InMemoryTopicAdmin
from qmtl.services.dag_manager.diff import DiffService
from tests.serve.service_process import ServiceProcess

from .services import (
    MAX_WAIT_S,
    SECRET,
    BenchSetupError,
    Namespace,
    Topology,
    migrate,
    remove_namespace,
)
from .workload import (
    Throughput,
    WorkloadError,
    arrivals,
    per_submission,
    submission,
    variants,
    warmup_dag,
)

SECTION = "submit"
FULL = {"nodes": 1000, "submissions": 100, "sequential": 20}
QUICK = {"nodes": 100, "submissions": 20, "sequential": 5}
GOAL_CPU_RATIO = 1.1
COMPLETED = strategy_pb2.STRATEGY_STATE_COMPLETED
SUBMIT = "/v1/gateway/internal/strategies"
POLL_S = 0.05
WARMUP_TIMEOUT_S = 600.0  # the first diff of the warm-up DAG creates its topics in Kafka


class BenchCheckError(Exception):
    """What was measured is not the work claimed."""


def progress(message: str) -> None:
    print(f"[bench/submit {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke test: 100-node DAGs, 20 sent")
    parser.add_argument("--nodes", type=int, help="nodes per submitted DAG (1,000)")
    parser.add_argument("--rate", type=float, default=50.0, help="offered submissions/s (50)")
    parser.add_argument("--submissions", type=int, help="submissions per offered-rate run (100)")
    parser.add_argument("--sequential", type=int, help="submissions one at a time (20)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="JSON file to merge into")
    args = parser.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    for name in ("nodes", "submissions", "sequential"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1")
    if args.rate <= 0:
        parser.error("--rate must be > 0")
    return args


HEADERS = {
    "authorization": "Bearer "
    + issue_token(SECRET.encode(), "bench:submit", ("strategies:submit", "strategies:read")),
    "content-type": codec.PROTOBUF,
    "accept": codec.PROTOBUF,
}


async def submit_until_completed(
    http: httpx.AsyncClient, gateway: ServiceProcess, body: bytes, nodes: int
) -> tuple[float, str]:
    """Seconds from sending `body` to seeing its strategy COMPLETED with a queue per node (the
    200 of the submission's own wait, or past the wait the status once it says so), and the
    strategy id."""
    started = time.perf_counter()
    answer = await http.post(gateway.url("internal", SUBMIT), content=body, headers=HEADERS)
    if answer.status_code not in (200, 202):
        raise BenchCheckError(f"submission answered {answer.status_code}: {answer.text[:300]}")
    reply = strategy_messages_pb2.SubmitStrategyResponse.FromString(answer.content)
    queues = len(reply.diff.queue_map.queues)
    while reply.state != COMPLETED:
        if time.perf_counter() - started > 4 * MAX_WAIT_S:
            raise BenchCheckError(f"strategy {reply.strategy_id} not COMPLETED")
        await asyncio.sleep(POLL_S)  # polling the status, as a client past its wait does
        status = await http.get(
            gateway.url("public", f"/v1/gateway/strategies/{reply.strategy_id}/status"),
            headers=HEADERS,
        )
        got = strategy_messages_pb2.GetStrategyStatusResponse.FromString(status.content)
        reply.state, queues = got.state, len(got.queue_map.queues)
        if got.state == strategy_pb2.STRATEGY_STATE_FAILED:
            raise BenchCheckError(f"strategy {reply.strategy_id} FAILED: {got.error.message}")
    elapsed = time.perf_counter() - started
    if queues != nodes:
        raise BenchCheckError(f"COMPLETED with {queues} queues for {nodes} nodes")
    return elapsed, reply.strategy_id


@dataclass(frozen=True, slots=True)
class Run:
    latency: Summary
    throughput: Throughput
    cpu_s: float

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.latency.as_dict(),
            "throughput_per_s": round(self.throughput.per_second, 2),
            "service_cpu_s_per_submission": round(
                per_submission(self.cpu_s, self.throughput.completed), 4
            ),
        }


async def offered(
    http: httpx.AsyncClient, topology: Topology, bodies: Sequence[bytes], nodes: int, rate: float
) -> Run:
    """`bodies` sent at `rate` per second, round robin over the Gateways, open loop."""
    gateways = topology.gateways
    schedule = arrivals(rate, len(bodies))
    cpu_before = topology.cpu_seconds()
    start = time.perf_counter()

    async def send(index: int) -> float:
        await asyncio.sleep(max(0.0, start + schedule[index] - time.perf_counter()))
        gateway = gateways[index % len(gateways)]
        elapsed, _ = await submit_until_completed(http, gateway, bodies[index], nodes)
        return elapsed

    samples = await asyncio.gather(*(send(i) for i in range(len(bodies))))
    span = time.perf_counter() - start
    cpu = topology.cpu_seconds() - cpu_before
    return Run(summarize(samples), Throughput(len(bodies), span), cpu)


async def one_at_a_time(
    http: httpx.AsyncClient, topology: Topology, bodies: Sequence[bytes], nodes: int
) -> Run:
    cpu_before = topology.cpu_seconds()
    start = time.perf_counter()
    samples = []
    for body in bodies:
        elapsed, _ = await submit_until_completed(http, topology.gateways[0], body, nodes)
        samples.append(elapsed)
    span = time.perf_counter() - start
    return Run(
        summarize(samples), Throughput(len(bodies), span), topology.cpu_seconds() - cpu_before
    )


def bodies_of(dags: Sequence[dag_pb2.Dag], tag: str) -> list[bytes]:
    return [
        submission(dag, f"bench {tag} {i}", wait_s=MAX_WAIT_S).SerializeToString()
        for i, dag in enumerate(dags)
    ]


async def warm_up(http: httpx.AsyncClient, topology: Topology, dag: dag_pb2.Dag) -> list[str]:
    """Submits the whole DAG once (every node new, its topics created); returns its topics, to
    be deleted afterwards."""
    body = submission(dag, "bench warm-up", wait_s=MAX_WAIT_S).SerializeToString()
    gateway = topology.gateways[0]
    took, strategy_id = await asyncio.wait_for(
        submit_until_completed(http, gateway, body, len(dag.nodes)), WARMUP_TIMEOUT_S
    )
    progress(f"warm-up: {len(dag.nodes):,} new nodes in {took:.1f} s")
    answer = await http.get(
        gateway.url("public", f"/v1/gateway/strategies/{strategy_id}/status"), headers=HEADERS
    )
    status = strategy_messages_pb2.GetStrategyStatusResponse.FromString(answer.content)
    return sorted({queue.queue for queue in status.queue_map.queues.values()})


async def bare_diffs(dag: dag_pb2.Dag, parts: Sequence[dag_pb2.Dag]) -> Summary:
    """The DAG Manager's DiffService in this process over Neo4j (topics in memory), as
    bench/graph measures it: the warm-up DAG once, then each part by a strategy of its own."""
    names = Namespace().graph
    driver = connect(ServiceEndpoints.from_env())
    try:
        async with bench_graph(driver, names):
            service = DiffService(Neo4jGraphStore(driver, names=names), InMemoryTopicAdmin())
            await service.diff(_diff_request("bare-warmup", dag))
            samples = []
            for index, part in enumerate(parts):
                started = time.perf_counter()
                result = await service.diff(_diff_request(f"bare-{index}", part))
                samples.append(time.perf_counter() - started)
                if result.new_node_ids or len(result.queue_map.queues) != len(part.nodes):
                    raise BenchCheckError("a bare diff of known nodes did not reuse them all")
    finally:
        await driver.close()
    return summarize(samples)


def _diff_request(strategy_id: str, dag: dag_pb2.Dag) -> diff_messages_pb2.DiffRequest:
    return diff_messages_pb2.DiffRequest(
        strategy_id=strategy_id,
        dag=dag,
        node_ids_crc32=node_ids_crc32(node.node_id for node in dag.nodes),
    )


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    load = os.getloadavg()[0]
    run_id = uuid.uuid4().hex[:8]
    dag = warmup_dag(args.nodes, f"submit-{run_id}", vocabulary(100))
    k, n = args.sequential, args.submissions
    parts = list(variants(dag, k + 2 * n))
    sequential = bodies_of(parts[:k], "seq")
    single = bodies_of(parts[k : k + n], "one")
    paired = bodies_of(parts[k + n :], "two")
    namespace = Namespace()
    figures: dict[str, Any] = {}
    topics: list[str] = []
    limits = httpx.Limits(max_connections=4 * n, max_keepalive_connections=4 * n)
    async with httpx.AsyncClient(timeout=4 * MAX_WAIT_S, limits=limits) as http:
        try:
            await migrate(namespace.graph)
            for pairs, bodies in ((1, single), (2, paired)):
                topology = Topology(namespace)
                try:
                    progress(f"real backend: {pairs} Gateway(s) + {pairs} DAG Manager(s)")
                    await topology.start_real(pairs)
                    if pairs == 1:
                        topics = await warm_up(http, topology, dag)
                        figures["real_one_at_a_time"] = await one_at_a_time(
                            http, topology, sequential, args.nodes)  # fmt: skip
                    progress(f"{n} submissions offered at {args.rate:g}/s")
                    run = await offered(http, topology, bodies, args.nodes, args.rate)
                    figures[f"real_offered_{pairs}x{pairs}"] = run
                    await topology.stop()
                finally:
                    await topology.close()

            memory = Topology(Namespace())
            try:
                progress("memory backend: one Gateway with the DAG Manager embedded")
                await memory.start_memory()
                await warm_up(http, memory, dag)
                figures["memory_one_at_a_time"] = await one_at_a_time(
                    http, memory, sequential, args.nodes)  # fmt: skip
                progress(f"{n} submissions offered at {args.rate:g}/s")
                figures["memory_offered"] = await offered(http, memory, single, args.nodes,
                                                          args.rate)  # fmt: skip
                await memory.stop()
            finally:
                await memory.close()
        finally:
            progress(f"removing the bench namespace ({len(topics)} topics)")
            await remove_namespace(namespace, [namespace.graph], topics)
    progress(f"bare diff: {k} diffs in process")
    bare = await bare_diffs(dag, parts[:k])
    return report(args, figures, bare, load)


def report(
    args: argparse.Namespace, runs: dict[str, Any], bare: Summary, load: float
) -> dict[str, Any]:
    one, two = runs["real_offered_1x1"], runs["real_offered_2x2"]
    cpu_one = per_submission(one.cpu_s, one.throughput.completed)
    cpu_two = per_submission(two.cpu_s, two.throughput.completed)
    cpu_ratio = ratio(cpu_two, cpu_one)
    return {
        "run_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "quick": args.quick,
        "machine": f"{platform.machine()} x{os.cpu_count()}, load average {load:.1f} at start, "
        f"{platform.python_implementation()} {platform.python_version()}",
        "dag_nodes": args.nodes,
        "offered_rate_per_s": args.rate,
        "submissions_offered": args.submissions,
        "submissions_one_at_a_time": args.sequential,
        "runs": {name: run.as_dict() for name, run in runs.items()},
        "bare_diff": bare.as_dict(),
        "overhead_p50_real": ratio(runs["real_one_at_a_time"].latency.p50_ms, bare.p50_ms),
        "overhead_p50_memory": ratio(runs["memory_one_at_a_time"].latency.p50_ms, bare.p50_ms),
        "scaling": {
            "throughput_per_s_1x1": round(one.throughput.per_second, 2),
            "throughput_per_s_2x2": round(two.throughput.per_second, 2),
            "cpu_s_per_submission_1x1": round(cpu_one, 4),
            "cpu_s_per_submission_2x2": round(cpu_two, 4),
            "cpu_ratio_2x2_over_1x1": None if cpu_ratio is None else round(cpu_ratio, 3),
            "goal_cpu_ratio": GOAL_CPU_RATIO,
            "met": cpu_ratio is not None and cpu_ratio <= GOAL_CPU_RATIO,
        },
    }


def as_figures(figures: dict[str, Any]) -> list[Figure]:
    """The submit bench's figures as data (bench/results.py)."""
    scaling, runs, bare = figures["scaling"], figures["runs"], figures["bare_diff"]
    return [
        Figure(
            "CPU per submission, 2+2 over 1+1",
            scaling["cpu_s_per_submission_2x2"],
            scaling["cpu_s_per_submission_1x1"],
            "s",
            GOAL_CPU_RATIO,
            lower_is_better=True,
        ),
        Figure(
            "submit p50 through the services vs bare diff (real)",
            runs["real_one_at_a_time"]["p50_ms"],
            bare["p50_ms"],
            "ms",
            None,
            lower_is_better=True,
        ),
    ]


LABELS = {
    "real_one_at_a_time": "real, one at a time",
    "real_offered_1x1": "real 1+1, offered rate",
    "real_offered_2x2": "real 2+2, offered rate",
    "memory_one_at_a_time": "memory, one at a time",
    "memory_offered": "memory, offered rate",
}


def render(figures: dict[str, Any]) -> str:
    def ms(value: float) -> str:
        return f"{value:,.1f}"

    rows = [
        [LABELS[name], str(r["n"]), ms(r["p50_ms"]), ms(r["p95_ms"]), ms(r["mean_ms"]),
         f"{r['throughput_per_s']:,.1f}", f"{r['service_cpu_s_per_submission']:.3f}"]
        for name, r in figures["runs"].items()
    ]  # fmt: skip
    bare = figures["bare_diff"]
    rows.append(["bare diff, in process", str(bare["n"]), ms(bare["p50_ms"]),
                 ms(bare["p95_ms"]), ms(bare["mean_ms"]), "", ""])  # fmt: skip
    title = f"submit of a {figures['dag_nodes']:,}-node DAG (ms)"
    table = format_table([title, "n", "p50", "p95", "mean", "done/s", "CPU s/sub"], rows)
    scaling = figures["scaling"]
    cpu_ratio = scaling["cpu_ratio_2x2_over_1x1"]
    verdict = "met" if scaling["met"] else "NOT met"
    return "\n".join([
        table,
        "",
        f"offered rate {figures['offered_rate_per_s']:g}/s, "
        f"{figures['submissions_offered']} submissions per offered run",
        f"service overhead at p50 (one at a time / bare diff): real "
        f"{_times(figures['overhead_p50_real'])}, memory {_times(figures['overhead_p50_memory'])}",
        f"2 Gateways + 2 DAG Managers vs 1 + 1: throughput {scaling['throughput_per_s_2x2']:,.1f}"
        f" vs {scaling['throughput_per_s_1x1']:,.1f}/s; service CPU per submission "
        f"{scaling['cpu_s_per_submission_2x2']:.3f} vs {scaling['cpu_s_per_submission_1x1']:.3f}"
        f" s, ratio {_times(cpu_ratio)} (goal <= {GOAL_CPU_RATIO}x: {verdict})",
    ])  # fmt: skip


def _times(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    try:
        figures = asyncio.run(bench(args))
    except (BenchCheckError, BenchSetupError, WorkloadError) as exc:
        print(f"bench/submit: {exc}", file=sys.stderr)
        return 1
    print(render(figures))
    section = f"{SECTION}-quick" if args.quick else SECTION
    data = as_figures(figures)
    print_figures(section, data)
    merge_report(args.results, section, figures, data)
    progress(f"figures merged into {args.results} under {section!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
