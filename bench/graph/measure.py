"""Timing against any GraphStore (the bench uses the Neo4j adapter; the unit test runs the
same loops on the in-memory one). Each sample is one awaited call, wall clock."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from qmtl.common.v1 import match_mode_pb2
from qmtl.dagmanager.v1 import diff_messages_pb2
from qmtl.runtime.graphstore import GraphStore
from qmtl.runtime.nodeid import node_ids_crc32
from qmtl.services.dag_manager.diff import DiffService

from .stats import Summary, summarize
from .workload import Lookup, Vocabulary, layered_dag

T = TypeVar("T")


class BenchCheckError(Exception):
    """What the bench measured was not the work it claims (e.g. a resubmit created nodes)."""


async def timed(calls: Sequence[Callable[[], Awaitable[T]]]) -> tuple[list[float], list[T]]:
    """Runs each call in turn; its duration in seconds and its result."""
    samples: list[float] = []
    results: list[T] = []
    for call in calls:
        started = time.perf_counter()
        result = await call()
        samples.append(time.perf_counter() - started)
        results.append(result)
    return samples, results


async def store_lookups(
    store: GraphStore, lookups: Sequence[Lookup]
) -> tuple[list[float], list[list[str]]]:
    """`store.queues_by_tags` for each lookup: durations and the topics answered."""

    def call(lookup: Lookup) -> Callable[[], Awaitable[list[str]]]:
        async def run() -> list[str]:
            found = await store.queues_by_tags(lookup.tags, lookup.interval, lookup.match_mode)
            return [q.topic for q in found]

        return run

    return await timed([call(lookup) for lookup in lookups])


def by_mode(samples: Sequence[float], asked: Sequence[Lookup]) -> dict[str, Summary]:
    """The samples of the `any` and of the `all` lookups apart (samples[i] timed asked[i]):
    an `all(symbol, kind)` lookup walks every node of the broad kind tag too."""
    split: dict[str, list[float]] = {}
    for sample, lookup in zip(samples, asked, strict=False):
        mode = "all" if lookup.match_mode == match_mode_pb2.MATCH_MODE_ALL else "any"
        split.setdefault(mode, []).append(sample)
    return {mode: summarize(values) for mode, values in sorted(split.items())}


@dataclass(slots=True)
class DiffSamples:
    first: list[float]
    resubmit: list[float]
    # the same DAG from another strategy each time: every node reused, but no recorded
    # answer to replay, so the full diff (lookup, checks, one write of 1,000 nodes)
    peer: list[float] = field(default_factory=list)
    # seconds in each store method, summed over the first submits / the resubmits
    first_store: dict[str, float] = field(default_factory=dict)
    resubmit_store: dict[str, float] = field(default_factory=dict)


def _add(into: dict[str, float], spent: dict[str, float]) -> None:
    for name, seconds in spent.items():
        into[name] = into.get(name, 0.0) + seconds


def diff_request(
    strategy_id: str, variant: str, size: int, vocab: Vocabulary
) -> diff_messages_pb2.DiffRequest:
    dag = layered_dag(size, variant, vocab)
    return diff_messages_pb2.DiffRequest(
        strategy_id=strategy_id,
        dag=dag,
        node_ids_crc32=node_ids_crc32(n.node_id for n in dag.nodes),
    )


async def diff_rounds(
    service: DiffService,
    requests: Sequence[diff_messages_pb2.DiffRequest],
    resubmits: int,
    report: Callable[[str], None],
    store: TimingStore | None = None,
) -> DiffSamples:
    """Per request: one first submit (every node new), then `resubmits` of the same DAG (every
    node reused, same queues: answered from the recorded snapshot), then `resubmits` of it by
    other strategies (the full diff of known nodes). Checks each, so a figure is never of a
    diff that did less."""
    samples = DiffSamples([], [])
    for number, request in enumerate(requests, 1):
        size = len(request.dag.nodes)
        started = time.perf_counter()
        first = await service.diff(request)
        samples.first.append(time.perf_counter() - started)
        if store is not None:
            _add(samples.first_store, store.take())
        if len(first.new_node_ids) != size:
            raise BenchCheckError(f"first submit created {len(first.new_node_ids)}/{size}")
        for _ in range(resubmits):
            started = time.perf_counter()
            again = await service.diff(request)
            samples.resubmit.append(time.perf_counter() - started)
            if store is not None:
                _add(samples.resubmit_store, store.take())
            if len(again.reused_node_ids) != size or again.new_node_ids:
                raise BenchCheckError(
                    f"resubmit reused {len(again.reused_node_ids)}/{size}, "
                    f"created {len(again.new_node_ids)}"
                )
            if again.queue_map != first.queue_map:
                raise BenchCheckError("a resubmit got other queues than the first submit")
        for peer in range(resubmits):
            other = diff_messages_pb2.DiffRequest()
            other.CopyFrom(request)
            other.strategy_id = f"{request.strategy_id}-peer{peer}"
            started = time.perf_counter()
            shared = await service.diff(other)
            samples.peer.append(time.perf_counter() - started)
            if store is not None:
                store.take()
            if shared.new_node_ids or shared.queue_map.queues != first.queue_map.queues:
                raise BenchCheckError("another strategy's diff of the DAG did not reuse it")
        report(f"diff round {number}/{len(requests)}: first {samples.first[-1] * 1000:,.0f} ms")
    return samples


class TimingStore:
    """Wraps a GraphStore and adds up the seconds spent in each of its methods, so the diff's
    figure splits into store time (Neo4j round trips) and the rest (validation, planning)."""

    def __init__(self, store: GraphStore) -> None:
        self._store = store
        self.seconds: dict[str, float] = {}

    def __getattr__(self, name: str) -> Any:
        inner = getattr(self._store, name)

        async def timed_call(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await inner(*args, **kwargs)
            finally:
                spent = time.perf_counter() - started
                self.seconds[name] = self.seconds.get(name, 0.0) + spent

        return timed_call

    def take(self) -> dict[str, float]:
        """The totals so far, reset."""
        taken, self.seconds = self.seconds, {}
        return taken
