"""Following tag queries: a TagQueryNode picks up a matching queue that appears after it started.

`TagQueryFollower(client, plan, runner)` asks the Gateway's `GetQueuesByTag` for each
TagQueryNode of the plan (its query tags, interval and match mode) every `interval` seconds
(default 5) and calls `runner.update_tag_inputs(node_id, topics)` when the set of topics
changed, so the node consumes a new queue without a restart. The resolved set is filtered as
`plan_from_diff` does (no global queue, not the node's own queue nor its consumers').

Why polling `GetQueuesByTag` rather than reading `QueueUpdated` events from `ListEvents`: the
lookup answers the whole current set, so a missed poll, a Gateway restart or an event that
aged out of the recent-events list costs at most one interval of delay and never a queue; it
needs only the `queues:read` scope and no cursor state; and its cost is one indexed lookup per
TagQueryNode per interval. Events would bring a new queue sooner; a smaller `interval` buys
the same when it matters.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from typing import Protocol

from qmtl.common.v1 import match_mode_pb2
from qmtl.gateway.v1 import queue_messages_pb2
from qmtl.runtime.errors import QmtlError

from .authoring import TagQueryNode
from .plan import resolved_topics, tag_query_exclusions
from .runner.model import RunPlan

DEFAULT_INTERVAL_S = 5.0
LOOKUP_TIMEOUT_S = 10.0
_MATCH_MODES = {"any": match_mode_pb2.MATCH_MODE_ANY, "all": match_mode_pb2.MATCH_MODE_ALL}

_log = logging.getLogger("qmtl.services.sdk.tagqueries")


class QueueLookup(Protocol):
    """The rpc the follower uses; `AsyncGatewayServiceClient` is one."""

    async def get_queues_by_tag(
        self,
        request: queue_messages_pb2.GetQueuesByTagRequest,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - the generated client's API
    ) -> queue_messages_pb2.GetQueuesByTagResponse: ...


class TagInputs(Protocol):
    """Where a changed resolution goes; the Runner is one."""

    def update_tag_inputs(self, node_id: str, topics: Sequence[str]) -> None: ...


def lookup_request(node: TagQueryNode) -> queue_messages_pb2.GetQueuesByTagRequest:
    """The GetQueuesByTag request of a TagQueryNode: its query tags, interval and match mode."""
    return queue_messages_pb2.GetQueuesByTagRequest(
        tags=list(node.query_tags),
        interval=node.interval,
        match_mode=_MATCH_MODES[node.match_mode],
    )


class TagQueryFollower:
    """Keeps the runner's tag-query inputs equal to what the Gateway resolves now."""

    def __init__(
        self,
        client: QueueLookup,
        plan: RunPlan,
        runner: TagInputs,
        *,
        interval: float = DEFAULT_INTERVAL_S,
    ) -> None:
        if not interval > 0:
            raise ValueError(f"interval must be positive, got {interval}")
        self._client, self._runner, self._interval = client, runner, interval
        nodes = [n for n in plan.strategy.nodes if isinstance(n, TagQueryNode)]
        self._requests = {n.node_id: lookup_request(n) for n in nodes}
        self._exclusions = tag_query_exclusions(plan.strategy)
        self._current: dict[str, tuple[str, ...]] = {
            node_id: tuple(plan.tag_inputs.get(node_id, ())) for node_id in self._requests
        }
        self._task: asyncio.Task[None] | None = None

    @property
    def current(self) -> Mapping[str, tuple[str, ...]]:
        """TagQueryNode id -> the topics last handed to the runner."""
        return dict(self._current)

    async def refresh(self) -> dict[str, tuple[str, ...]]:
        """Looks every tag query up once; updates the runner for those that changed and
        returns them (node id -> new topics). A failed lookup keeps the last set (logged)."""
        changed: dict[str, tuple[str, ...]] = {}
        for node_id, request in self._requests.items():
            try:
                answer = await self._client.get_queues_by_tag(request, timeout=LOOKUP_TIMEOUT_S)
            except QmtlError as exc:
                _log.warning("tag query of %s not refreshed: %s", node_id, exc)
                continue
            topics = resolved_topics(answer.queues, exclude_nodes=self._exclusions[node_id])
            if topics != self._current[node_id]:
                self._current[node_id] = topics
                self._runner.update_tag_inputs(node_id, topics)
                changed[node_id] = topics
        return changed

    async def _follow(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.refresh()

    def start(self) -> None:
        """Follows in the background until `stop()`; nothing to follow without tag queries."""
        if self._task is None and self._requests:
            self._task = asyncio.create_task(self._follow(), name="qmtl-sdk-tagqueries")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
