"""The pure parts of the submit bench: the submissions (distinct DAGs whose nodes are all known),
the open-loop arrival schedule, and the CPU and throughput arithmetic.

Every submission must be a distinct DAG: the Gateway refuses a second strategy with the same
`dag_hash` (E_DUPLICATE). A distinct DAG of new nodes would make the DAG Manager create 1,000
Kafka topics per submission, which measures the broker, not the services. So the bench stores
one DAG of `size + 2` nodes first (the warm-up), and each submission is that DAG without two
of its leaves: `size` nodes, every one already known, a `dag_hash` of its own. That is the
diff of known nodes by a new strategy (bench/graph's "peer submit") behind the Gateway.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from bench.graph.workload import Vocabulary, layered_dag
from qmtl.dag.v1 import dag_pb2
from qmtl.gateway.v1 import strategy_messages_pb2
from qmtl.runtime.nodeid import node_ids_crc32

EXTRA_NODES = 2  # the warm-up DAG's nodes beyond a submission's: the two leaves left out


class WorkloadError(Exception):
    """A workload that cannot be built as asked (too few distinct DAGs, a bad rate)."""


def warmup_dag(size: int, variant: str, vocab: Vocabulary) -> dag_pb2.Dag:
    """The DAG every submission is a part of: `size + EXTRA_NODES` nodes (bench/graph's layered
    DAG, so the figures sit beside its diff)."""
    return layered_dag(size + EXTRA_NODES, variant, vocab)


def leaves(dag: dag_pb2.Dag) -> list[str]:
    """Node ids no other node depends on, in DAG order: dropping any leaves the rest valid."""
    needed = {dep for node in dag.nodes for dep in node.spec.dependencies}
    return [node.node_id for node in dag.nodes if node.node_id not in needed]


def without(dag: dag_pb2.Dag, dropped: Sequence[str]) -> dag_pb2.Dag:
    """`dag` without the nodes `dropped` (leaves) and their edges."""
    gone = set(dropped)
    part = dag_pb2.Dag(schema_version=dag.schema_version, meta=dag.meta)
    part.nodes.extend(node for node in dag.nodes if node.node_id not in gone)
    part.edges.extend(edge for edge in dag.edges if edge.target not in gone)
    return part


def variants(dag: dag_pb2.Dag, count: int, *, skip: int = 0) -> Iterator[dag_pb2.Dag]:
    """`count` distinct parts of `dag`, each without EXTRA_NODES leaves; the first `skip` pairs
    are left for another phase (each phase of one run submits DAGs no other phase did)."""
    pairs = itertools.combinations(leaves(dag), EXTRA_NODES)
    available = len(leaves(dag))
    total = available * (available - 1) // 2
    if skip + count > total:
        raise WorkloadError(
            f"{skip + count} distinct submissions asked of a DAG with {available} leaves "
            f"({total} pairs)"
        )
    for pair in itertools.islice(pairs, skip, skip + count):
        yield without(dag, pair)


def submission(
    dag: dag_pb2.Dag, name: str, *, wait_s: int
) -> strategy_messages_pb2.SubmitStrategyRequest:
    """A SubmitStrategyRequest of `dag` that waits up to `wait_s` for the queue map."""
    request = strategy_messages_pb2.SubmitStrategyRequest(
        name=name, node_ids_crc32=node_ids_crc32(node.node_id for node in dag.nodes)
    )
    request.dag.CopyFrom(dag)
    request.wait_timeout.seconds = wait_s
    return request


def arrivals(rate: float, count: int) -> list[float]:
    """Open-loop send times (seconds from the start) at a fixed `rate` per second: each
    submission leaves on time whether or not the previous ones have been answered."""
    if rate <= 0 or count < 0:
        raise WorkloadError(f"rate must be > 0 and count >= 0, got {rate}, {count}")
    return [index / rate for index in range(count)]


def cpu_seconds(stat: str, ticks_per_second: int) -> float:
    """utime + stime of a `/proc/<pid>/stat` line, in seconds. The command name (field 2) is in
    parentheses and may hold spaces, so fields are counted after its closing parenthesis."""
    after = stat[stat.rindex(")") + 2 :].split()
    # After the name: state is field 3; utime and stime are fields 14 and 15 of the line.
    utime, stime = int(after[11]), int(after[12])
    return (utime + stime) / ticks_per_second


@dataclass(frozen=True, slots=True)
class Throughput:
    """Completed submissions over the wall time from the first send to the last answer."""

    completed: int
    span_s: float

    @property
    def per_second(self) -> float:
        return self.completed / self.span_s if self.span_s > 0 else 0.0


def per_submission(cpu_s: float, completed: int) -> float:
    if completed <= 0:
        raise WorkloadError("CPU per submission of no completed submission")
    return cpu_s / completed
