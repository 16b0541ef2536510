"""GatewayHandler: the Gateway's rpcs (docs/operations/gateway.md).

SubmitStrategy validates with the DAG Manager's own rule (qmtl.runtime.dag_validation), stores
the strategy QUEUED with its StrategyStateChanged in one atomic write, enqueues the durable
diff job and, when asked, waits for the outcome; SubmitWorker (worker.py) does the rest. The
reads answer from the strategy store, the work queue or (GetQueuesByTag) the DAG Manager.
Errors are the catalogue's: a port's typed error answers with its code (E_NOT_FOUND,
E_INVALID_STATE, E_UNAVAILABLE, ...). ListCallbacks stays E_UNIMPLEMENTED: a callback's
delivery state is not recorded anywhere cheap to list yet.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from typing import cast

from qmtl.dag.v1 import strategy_pb2
from qmtl.dagmanager.v1 import diff_messages_pb2
from qmtl.dagmanager.v1 import queue_messages_pb2 as dm_queue_messages_pb2
from qmtl.dagmanager.v1.dag_manager_service_handler import DAG_MANAGER_SERVICE
from qmtl.gateway.v1 import (
    event_messages_pb2,
    health_messages_pb2,
    node_status_messages_pb2,
    overview_messages_pb2,
    queue_messages_pb2,
    strategy_messages_pb2,
    work_messages_pb2,
)
from qmtl.gateway.v1.gateway_service_handler import GatewayServiceBase
from qmtl.runtime import nodeid
from qmtl.runtime.callbacks import validate_callback_url
from qmtl.runtime.dag_validation import ErrorCode, validate_dag, validation
from qmtl.runtime.errors import QmtlError
from qmtl.runtime.gen import Context
from qmtl.runtime.health import HealthReporter
from qmtl.runtime.port_errors import PortError
from qmtl.runtime.rpc_caller import RpcCaller
from qmtl.runtime.spec import RpcSpec
from qmtl.runtime.workqueue import WorkQueue

from . import events, submit, views
from .settings import MAX_NODE_STATES_PER_REPORT, GatewaySettings
from .store.errors import InvalidStateError
from .store.port import StrategyStore
from .waiting import Completions, wait_until_finished

_log = logging.getLogger(__name__)

QUEUED = strategy_pb2.STRATEGY_STATE_QUEUED
COMPLETED = strategy_pb2.STRATEGY_STATE_COMPLETED
FAILED = strategy_pb2.STRATEGY_STATE_FAILED

DIFF = cast(
    RpcSpec[diff_messages_pb2.DiffRequest, diff_messages_pb2.DiffResponse],
    DAG_MANAGER_SERVICE.rpc("Diff"),
)
QUEUES_BY_TAG = cast(
    RpcSpec[
        dm_queue_messages_pb2.GetQueuesByTagRequest, dm_queue_messages_pb2.GetQueuesByTagResponse
    ],
    DAG_MANAGER_SERVICE.rpc("GetQueuesByTag"),
)


@contextlib.contextmanager
def _port_errors() -> Iterator[None]:
    """A port's typed error (store, queue) answers with its catalogue code and message."""
    try:
        yield
    except PortError as exc:
        raise exc.to_qmtl_error() from None


def _not_found(strategy_id: str) -> QmtlError:
    return QmtlError.not_found(f"no strategy {strategy_id!r}", strategy_id=strategy_id)


class GatewayHandler(GatewayServiceBase):
    """The Gateway's rpcs over a StrategyStore, a WorkQueue and the DAG Manager.

    `notify` is called after each store write that put events in the outbox (the relay's
    `notify`); `completions` is shared with this process's SubmitWorker so a waiting
    submission wakes the moment the worker finishes it.
    """

    def __init__(
        self,
        store: StrategyStore,
        queue: WorkQueue,
        dag_manager: RpcCaller,
        *,
        settings: GatewaySettings | None = None,
        clock: Callable[[], float] = time.time,
        health: HealthReporter | None = None,
        notify: Callable[[], None] | None = None,
        completions: Completions | None = None,
    ) -> None:
        self.store = store
        self.queue = queue
        self.dag_manager = dag_manager
        self.settings = settings if settings is not None else GatewaySettings()
        self.clock = clock
        self.health = health
        self._notify = notify
        self.completions = completions if completions is not None else Completions()

    # -- writes (internal listener) ------------------------------------------------------

    async def submit_strategy(
        self, request: strategy_messages_pb2.SubmitStrategyRequest, ctx: Context
    ) -> strategy_messages_pb2.SubmitStrategyResponse:
        checked = validate_dag(
            request.dag if request.HasField("dag") else None,
            request.node_ids_crc32,
            self.settings.limits,
        )
        if request.callback_url:
            validate_callback_url(
                request.callback_url, allowed_hosts=self.settings.callback_allowed_hosts
            )
        wait = self._wait_seconds(request)
        strategy = strategy_pb2.Strategy(
            strategy_id=str(uuid.uuid4()),
            name=request.name,
            dag=request.dag,
            dag_hash=nodeid.dag_hash(p.node_id for p in checked.nodes),
            node_ids_crc32=checked.crc32,
            state=QUEUED,
            callback_url=request.callback_url,
        )
        if request.HasField("meta"):
            strategy.meta.CopyFrom(request.meta)
        announcement = events.state_changed(
            strategy.strategy_id,
            strategy_pb2.STRATEGY_STATE_UNSPECIFIED,
            QUEUED,
            work_item_id="",
            source=self.settings.source,
            clock=self.clock,
        )
        with _port_errors():
            created = await self.store.create(
                strategy,
                idempotency_key=request.idempotency_key,
                fingerprint=submit.fingerprint(request),
                events=[announcement],
            )
        if created.outcome == "duplicate":
            first = created.strategy
            raise QmtlError(
                ErrorCode.ERROR_CODE_DUPLICATE,
                f"this DAG was already submitted as strategy {first.strategy_id}",
                details={"strategy_id": first.strategy_id, "dag_hash": first.dag_hash},
            )
        if created.outcome == "created":
            self._announced()
        current = await self._ensure_queued(created.strategy)
        if wait > 0 and current.state not in (COMPLETED, FAILED):
            with _port_errors():
                current = await wait_until_finished(
                    self.store,
                    self.completions,
                    current,
                    wait,
                    poll_initial=self.settings.wait_poll_initial,
                    poll_max=self.settings.wait_poll_max,
                )
        ctx.set_status(200 if current.state == COMPLETED else 202)
        return views.submit_response(current)

    def _wait_seconds(self, request: strategy_messages_pb2.SubmitStrategyRequest) -> float:
        if not request.HasField("wait_timeout"):
            return 0.0
        seconds = request.wait_timeout.ToNanoseconds() / 1e9
        if seconds < 0:
            raise validation("wait_timeout", f"must not be negative, got {seconds}s")
        return min(seconds, self.settings.max_wait)

    async def _ensure_queued(self, strategy: strategy_pb2.Strategy) -> strategy_pb2.Strategy:
        """Enqueues the first diff job of a QUEUED strategy that has none yet (the first
        submission, or its replay after a crash between the two writes). The strategy is
        stored either way: a queue outage here is logged and healed by requeue_stranded."""
        if strategy.state != QUEUED or strategy.work_item_id:
            return strategy
        try:
            return await submit.enqueue_diff(
                self.store, self.queue, strategy, max_attempts=self.settings.diff_max_attempts
            )
        except PortError as exc:
            _log.warning(
                "strategy %s stored but not yet queued (%s); the stranded sweep will queue it",
                strategy.strategy_id,
                exc,
            )
            return strategy

    async def dry_run_strategy(
        self, request: strategy_messages_pb2.DryRunStrategyRequest, ctx: Context
    ) -> strategy_messages_pb2.DryRunStrategyResponse:
        checked = validate_dag(
            request.dag if request.HasField("dag") else None,
            request.node_ids_crc32,
            self.settings.limits,
        )
        diff = diff_messages_pb2.DiffRequest(
            # The DAG Manager wants a strategy id; a dry run creates none and records nothing.
            strategy_id=f"dry-run-{uuid.uuid4()}",
            node_ids_crc32=checked.crc32,
            dry_run=True,
        )
        diff.dag.CopyFrom(request.dag)
        response = await self.dag_manager.call(DIFF, diff, timeout=self.settings.diff_timeout)
        return strategy_messages_pb2.DryRunStrategyResponse(diff=response.result)

    async def retry_strategy(
        self, request: strategy_messages_pb2.RetryStrategyRequest, ctx: Context
    ) -> strategy_messages_pb2.RetryStrategyResponse:
        with _port_errors():
            strategy = await self.store.get(request.strategy_id)
            if strategy is None:
                raise _not_found(request.strategy_id)
            failed_item = strategy.work_item_id
            try:
                queued = await self.store.transition(
                    strategy.strategy_id,
                    expect=(FAILED,),
                    to=QUEUED,
                    error=strategy.error if strategy.HasField("error") else None,
                    events=[
                        events.state_changed(
                            strategy.strategy_id,
                            FAILED,
                            QUEUED,
                            work_item_id=failed_item,
                            source=self.settings.source,
                            clock=self.clock,
                        )
                    ],
                )
            except InvalidStateError as exc:
                raise QmtlError(
                    ErrorCode.ERROR_CODE_INVALID_STATE,
                    f"strategy {strategy.strategy_id} is "
                    f"{strategy_pb2.StrategyState.Name(exc.current)}; only a FAILED one "  # type: ignore[arg-type]
                    "can be retried",
                    details=exc.details(),
                ) from None
        self._announced()
        try:
            queued = await submit.enqueue_diff(
                self.store,
                self.queue,
                queued,
                max_attempts=self.settings.diff_max_attempts,
                previous_work_item_id=failed_item,
            )
        except PortError as exc:
            _log.warning(
                "strategy %s re-queued but its job not yet enqueued (%s); the stranded sweep "
                "will enqueue it",
                strategy.strategy_id,
                exc,
            )
        return strategy_messages_pb2.RetryStrategyResponse(
            strategy_id=queued.strategy_id,
            state=queued.state,
            work_item_id=queued.work_item_id if queued.work_item_id != failed_item else "",
        )

    async def report_node_status(
        self, request: node_status_messages_pb2.ReportNodeStatusRequest, ctx: Context
    ) -> node_status_messages_pb2.ReportNodeStatusResponse:
        states = request.node_states
        if not 1 <= len(states) <= MAX_NODE_STATES_PER_REPORT:
            raise validation(
                "node_states",
                f"{len(states)} states; a report carries 1..{MAX_NODE_STATES_PER_REPORT}",
            )
        with _port_errors():
            strategy = await self.store.get(request.strategy_id)
            if strategy is None:
                raise _not_found(request.strategy_id)
            known = {node.node_id for node in strategy.dag.nodes}
            seen: set[str] = set()
            for index, state in enumerate(states):
                field = f"node_states[{index}].node_id"
                if state.node_id not in known:
                    raise validation(
                        field, f"{state.node_id!r} is not a node of strategy {request.strategy_id}"
                    )
                if state.node_id in seen:
                    raise validation(field, f"{state.node_id} is reported twice")
                seen.add(state.node_id)
            await self.store.report_node_states(request.strategy_id, list(states))
        return node_status_messages_pb2.ReportNodeStatusResponse(
            strategy_id=request.strategy_id, accepted=len(states)
        )

    # -- reads (public listener) ---------------------------------------------------------

    async def get_strategy(
        self, request: strategy_messages_pb2.GetStrategyRequest, ctx: Context
    ) -> strategy_messages_pb2.GetStrategyResponse:
        with _port_errors():
            strategy = await self.store.get(request.strategy_id)
        if strategy is None:
            raise _not_found(request.strategy_id)
        return strategy_messages_pb2.GetStrategyResponse(strategy=strategy)

    async def list_strategies(
        self, request: strategy_messages_pb2.ListStrategiesRequest, ctx: Context
    ) -> strategy_messages_pb2.ListStrategiesResponse:
        limit = views.page_size(request.page)
        with _port_errors():
            page, cursor = await self.store.list(
                state=request.state, limit=limit, cursor=request.page.page_token
            )
        if not request.include_dag:
            page = [views.without_dag(strategy) for strategy in page]
        return strategy_messages_pb2.ListStrategiesResponse(
            strategies=page, page_info=views.page_info(cursor)
        )

    async def get_strategy_status(
        self, request: strategy_messages_pb2.GetStrategyStatusRequest, ctx: Context
    ) -> strategy_messages_pb2.GetStrategyStatusResponse:
        with _port_errors():
            strategy = await self.store.get(request.strategy_id)
            if strategy is None:
                raise _not_found(request.strategy_id)
            node_states = await self.store.node_states(request.strategy_id)
        return views.status_response(strategy, node_states)

    async def get_queues_by_tag(
        self, request: queue_messages_pb2.GetQueuesByTagRequest, ctx: Context
    ) -> queue_messages_pb2.GetQueuesByTagResponse:
        asked = dm_queue_messages_pb2.GetQueuesByTagRequest(
            tags=request.tags, interval=request.interval, match_mode=request.match_mode
        )
        answer = await self.dag_manager.call(QUEUES_BY_TAG, asked)
        return queue_messages_pb2.GetQueuesByTagResponse(queues=answer.queues)

    async def get_work_item(
        self, request: work_messages_pb2.GetWorkItemRequest, ctx: Context
    ) -> work_messages_pb2.GetWorkItemResponse:
        with _port_errors():
            item = await self.queue.get(request.work_item_id)
        if item is None:
            raise QmtlError.not_found(
                f"no work item {request.work_item_id!r}", work_item_id=request.work_item_id
            )
        return work_messages_pb2.GetWorkItemResponse(work_item=item)

    async def list_events(
        self, request: event_messages_pb2.ListEventsRequest, ctx: Context
    ) -> event_messages_pb2.ListEventsResponse:
        limit = views.page_size(request.page)
        since = request.since.ToNanoseconds() / 1e9 if request.HasField("since") else None
        with _port_errors():
            page, cursor = await self.store.events(
                strategy_id=request.strategy_id,
                types=list(request.types),
                since=since,
                limit=limit,
                cursor=request.page.page_token,
            )
        return event_messages_pb2.ListEventsResponse(events=page, page_info=views.page_info(cursor))

    async def get_health(
        self, request: health_messages_pb2.GetHealthRequest, ctx: Context
    ) -> health_messages_pb2.GetHealthResponse:
        if self.health is None:
            return await super().get_health(request, ctx)
        return health_messages_pb2.GetHealthResponse(health=await self.health.snapshot())

    async def get_health_detail(
        self, request: health_messages_pb2.GetHealthDetailRequest, ctx: Context
    ) -> health_messages_pb2.GetHealthDetailResponse:
        if self.health is None:
            return await super().get_health_detail(request, ctx)
        return health_messages_pb2.GetHealthDetailResponse(health=await self.health.snapshot())

    async def get_overview(
        self, request: overview_messages_pb2.GetOverviewRequest, ctx: Context
    ) -> overview_messages_pb2.GetOverviewResponse:
        with _port_errors():
            stats = await self.queue.stats()
        answer = overview_messages_pb2.GetOverviewResponse(
            work_queue=overview_messages_pb2.WorkQueueCounts(
                ready=stats.ready, leased=stats.leased, delayed=stats.delayed, dead=stats.dead
            )
        )
        if self.health is not None:
            health = await self.health.snapshot()
            answer.state, answer.ready = health.state, health.ready
            # Name, adapter and state only: a backend's detail may carry its address.
            answer.backends.extend(
                overview_messages_pb2.BackendState(name=c.name, adapter=c.adapter, state=c.state)
                for c in health.components
            )
        return answer

    def _announced(self) -> None:
        if self._notify is not None:
            self._notify()
