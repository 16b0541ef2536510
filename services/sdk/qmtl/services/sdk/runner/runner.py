"""The runner: a strategy's new nodes on the data plane (docs/operations/data-plane.md).

For each node in `plan.run` with a compute function, the runner consumes its inputs' topics
(an input node's topic; for a tag query, the queues it resolved to), keeps its windows
(windows.py) and, once every input has bucket t, calls the compute function once with a
`ComputeView`. A non-None result is encoded (payloads.encode_payload) into a Record (node_id,
interval, bucket_ts = t, input_window_hash = hash of the window it saw, payload) and produced
to the node's topic; the handler returns only after that, so the input offset is committed
after the output was acknowledged. Nodes not in `plan.run` are never computed: their topics
are only read. Sources (StreamInput) compute nothing; their records come from `feed`.

Recovery (at `start`, and for a topic `update_tag_inputs` adds): the runner reads what its
nodes' topics already hold (their dedupe keys: those outputs are not produced again) and
replays what its input topics retain into the windows, in the strategy's order, producing
what is missing; then it subscribes its group, which resumes from the committed offsets and
whose redeliveries are repeats the windows ignore. So after a kill the outputs downstream are
complete, and unique by dedupe key.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf import timestamp_pb2

from qmtl.dag.v1 import node_status_pb2
from qmtl.data.v1 import record_pb2
from qmtl.runtime.errors import ErrorCode, QmtlError
from qmtl.runtime.eventbus.port import Subscription
from qmtl.runtime.recordbus import RecordBus, RecordDelivery
from qmtl.runtime.records import DedupeKey, bucket_seconds, dedupe_key

from ..authoring import NodeLike, StreamInput, TagQueryNode
from ..payloads import PayloadError, decode_payload, encode_payload
from .errors import RunnerError
from .model import RunPlan
from .status import NodeCounts, StatusBoard
from .view import ComputeView
from .windows import Bar, NodeWindows

log = logging.getLogger(__name__)

Reporter = Callable[[Sequence[node_status_pb2.NodeState]], Awaitable[None]]


def source_record(source: NodeLike, bucket_ts: int, value: Any) -> record_pb2.Record:
    """The Record of a source's bar: its window hash is the hash of its payload, so feeding
    the same bar again is a repeat (same dedupe key) and a corrected bar is a new version."""
    payload_type, payload = encode_payload(value)
    return record_pb2.Record(
        node_id=source.node_id,
        interval=source.interval,
        bucket_ts=timestamp_pb2.Timestamp(seconds=bucket_ts),
        input_window_hash=hashlib.sha256(payload).hexdigest(),
        payload_type=payload_type,
        payload=payload,
    )


@dataclass
class _Computed:
    """A node this process computes."""

    node: NodeLike
    topic: str
    windows: NodeWindows
    # Upstream node id seen on an input -> that input's key, so `view[upstream]` also works
    # for a tag query, whose inputs are keyed by topic.
    aliases: dict[str, str]


class Runner:
    def __init__(
        self,
        plan: RunPlan,
        bus: RecordBus,
        *,
        group: str,
        report: Reporter | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.plan = plan
        self.bus = bus
        self.group = group
        self._report = report
        self._status = StatusBoard(clock)
        self._computed: dict[str, _Computed] = {}
        # topic -> (node id, input key) pairs it feeds.
        self._consumers: dict[str, list[tuple[str, str]]] = defaultdict(list)
        # Dedupe keys of the outputs on our nodes' topics: read at start, added as produced.
        self._produced: set[DedupeKey] = set()
        self._subscriptions: list[Subscription] = []
        self._subscribed: set[str] = set()
        self._attaching: set[asyncio.Task[None]] = set()
        self._lock = asyncio.Lock()
        self._started = False
        self._failure: BaseException | None = None
        for node_id in sorted(plan.run):
            try:
                node = plan.strategy.by_id(node_id)
            except KeyError:
                raise RunnerError(
                    f"plan.run names {node_id}, which is not a node of strategy "
                    f"{plan.strategy.name!r}",
                    node_id=node_id,
                ) from None
            self._plan_node(node)

    # --- the interface ------------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            raise RunnerError(
                "the runner is already started", code=ErrorCode.ERROR_CODE_INVALID_STATE
            )
        self._started = True
        for node_id in self._computed:
            self._status.running(node_id)
        await self._publish_states()
        for computed in self._computed.values():
            for delivery in await self.bus.read(computed.topic):
                self._produced.add(dedupe_key(delivery.record))
        await self._attach(self._topics_in_order())

    async def stop(self) -> None:
        for task in list(self._attaching):
            task.cancel()
        await asyncio.gather(*self._attaching, return_exceptions=True)
        for subscription in self._subscriptions:
            await subscription.stop()
        self._subscriptions.clear()

    def update_tag_inputs(self, node_id: str, topics: Sequence[str]) -> None:
        """A QueueUpdated for tag query `node_id`: its inputs become `topics` (new ones are
        replayed and subscribed in the background, without a restart; removed ones stay)."""
        computed = self._computed.get(node_id)
        if computed is None or not isinstance(computed.node, TagQueryNode):
            return
        new = [t for t in topics if t not in computed.windows.inputs]
        for topic in new:
            computed.windows.add_input(topic)
            self._consumers[topic].append((node_id, topic))
        if not new or not self._started:
            return
        task = asyncio.get_running_loop().create_task(self._attach(new, only=node_id))
        self._attaching.add(task)
        task.add_done_callback(self._attached)

    async def feed(self, source: StreamInput, records: Sequence[tuple[int, Any]]) -> None:
        """Produces a source's bars, (bucket_ts, value) oldest first, to its topic."""
        topic = self._topic(source.node_id)
        await self.bus.produce(topic, [source_record(source, ts, v) for ts, v in records])

    # --- inspection ------------------------------------------------------------------------

    @property
    def failure(self) -> BaseException | None:
        """What stopped a subscription or an attach in the background, if anything did."""
        if self._failure is not None:
            return self._failure
        return next((s.failure for s in self._subscriptions if s.failure is not None), None)

    def counts(self) -> dict[str, NodeCounts]:
        return self._status.all_counts()

    def states(self) -> list[node_status_pb2.NodeState]:
        return self._status.states()

    # --- planning --------------------------------------------------------------------------

    def _topic(self, node_id: str) -> str:
        try:
            return self.plan.topics[node_id]
        except KeyError:
            raise RunnerError(
                f"the plan has no topic for node {node_id}", node_id=node_id
            ) from None

    def _plan_node(self, node: NodeLike) -> None:
        if isinstance(node, StreamInput) or node.compute_fn is None:
            return  # a source, or a tag query that only gathers: nothing to compute
        if isinstance(node, TagQueryNode):
            keys = tuple(self.plan.tag_inputs.get(node.node_id, ()))
            pairs = [(topic, topic) for topic in keys]
        else:
            keys = tuple(upstream.node_id for upstream in node.inputs)
            pairs = [(self._topic(key), key) for key in keys]
        self._computed[node.node_id] = _Computed(
            node, self._topic(node.node_id), NodeWindows(keys, node.period), {}
        )
        for topic, key in pairs:
            self._consumers[topic].append((node.node_id, key))

    def _topics_in_order(self) -> list[str]:
        """Input topics in the strategy's topological order (an upstream's topic is replayed
        after what it computes from), tag-query queues after them."""
        order = [
            self.plan.topics[n.node_id]
            for n in self.plan.strategy.nodes
            if n.node_id in self.plan.topics
        ]
        known = [t for t in order if t in self._consumers]
        return known + sorted(t for t in self._consumers if t not in known)

    # --- replay and subscribe ----------------------------------------------------------------

    async def _attach(self, topics: Sequence[str], *, only: str | None = None) -> None:
        for topic in topics:
            for delivery in await self.bus.read(topic):
                await self._handle(delivery, only=only)
        fresh = [t for t in topics if t not in self._subscribed]
        if fresh:
            self._subscribed.update(fresh)
            self._subscriptions.append(await self.bus.subscribe(fresh, self.group, self._handle))

    def _attached(self, task: asyncio.Task[None]) -> None:
        self._attaching.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._failure = task.exception()
            log.error("runner: attaching new tag inputs failed: %r", self._failure)

    # --- handling ------------------------------------------------------------------------------

    async def _handle(self, delivery: RecordDelivery, *, only: str | None = None) -> None:
        # One record at a time across subscriptions: windows and the produced set are shared.
        async with self._lock:
            record = delivery.record
            bucket = bucket_seconds(record)
            ident = hashlib.sha256(record.SerializeToString(deterministic=True)).hexdigest()
            value: Any = None
            decoded = False
            for node_id, key in self._consumers.get(delivery.topic, ()):
                if only is not None and node_id != only:
                    continue
                computed = self._computed[node_id]
                if self._status.is_failed(node_id):
                    continue
                if not decoded:
                    value, decoded = decode_payload(record.payload_type, record.payload), True
                computed.aliases.setdefault(record.node_id, key)
                ready = computed.windows.add(key, Bar(bucket, value, ident))
                if ready is not None:
                    await self._compute(computed, ready)

    async def _compute(self, computed: _Computed, bucket: int) -> None:
        node, windows = computed.node, computed.windows
        counts = self._status.counts(node.node_id)
        view = ComputeView(
            node,
            bucket,
            {key: [bar.value for bar in windows.window(key, bucket)] for key in windows.inputs},
            dict(computed.aliases),
        )
        window_hash = windows.window_hash(bucket)
        if DedupeKey(node.node_id, bucket, window_hash, "") in self._produced:
            # Its topic has this output already (a replay after a restart): not called again.
            windows.mark_computed(bucket)
            counts.duplicates += 1
            return
        try:
            result = node.compute_fn(view) if node.compute_fn is not None else None
            if inspect.isawaitable(result):
                result = await result
            encoded = None if result is None else encode_payload(result)
        except Exception as exc:  # the quant's code: the node fails, the runner goes on
            await self._fail(node, bucket, exc)
            return
        windows.mark_computed(bucket)
        counts.computed += 1
        if encoded is None:
            counts.empty += 1
            return
        payload_type, payload = encoded
        record = record_pb2.Record(
            node_id=node.node_id,
            interval=node.interval,
            bucket_ts=timestamp_pb2.Timestamp(seconds=bucket),
            input_window_hash=window_hash,
            payload_type=payload_type,
            payload=payload,
        )
        key = dedupe_key(record)
        if key in self._produced:
            counts.duplicates += 1
            return
        await self.bus.produce(computed.topic, [record])
        self._produced.add(key)
        counts.produced += 1

    async def _fail(self, node: NodeLike, bucket: int, exc: Exception) -> None:
        what = "returned what cannot be a payload" if isinstance(exc, PayloadError) else "raised"
        error = (
            exc
            if isinstance(exc, QmtlError)
            else RunnerError(
                f"node {node.name!r} {what} at bucket {bucket}: {exc!r}",
                node_id=node.node_id,
                code=ErrorCode.ERROR_CODE_INTERNAL,
            )
        )
        log.error("runner: %s", error.message)
        self._status.failed(node.node_id, error)
        await self._publish_states()

    async def _publish_states(self) -> None:
        if self._report is None or not self._computed:
            return
        try:
            await self._report(self._status.states())
        except Exception as exc:  # reporting is best effort: the data plane goes on
            log.warning("runner: reporting node states failed: %r", exc)
