"""What the Gateway's reads answer, built from a stored Strategy (and its node states)."""

from __future__ import annotations

from collections.abc import Sequence

from qmtl.common.v1 import paging_pb2
from qmtl.dag.v1 import node_status_pb2, strategy_pb2
from qmtl.gateway.v1 import strategy_messages_pb2
from qmtl.runtime.errors import QmtlError

from .settings import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE


def submit_response(
    strategy: strategy_pb2.Strategy,
) -> strategy_messages_pb2.SubmitStrategyResponse:
    response = strategy_messages_pb2.SubmitStrategyResponse(
        strategy_id=strategy.strategy_id,
        state=strategy.state,
        work_item_id=strategy.work_item_id,
        dag_hash=strategy.dag_hash,
        node_ids_crc32=strategy.node_ids_crc32,
    )
    if strategy.state == strategy_pb2.STRATEGY_STATE_COMPLETED:
        response.diff.CopyFrom(strategy.diff)
    return response


def status_response(
    strategy: strategy_pb2.Strategy, node_states: Sequence[node_status_pb2.NodeState]
) -> strategy_messages_pb2.GetStrategyStatusResponse:
    response = strategy_messages_pb2.GetStrategyStatusResponse(
        strategy_id=strategy.strategy_id,
        state=strategy.state,
        work_item_id=strategy.work_item_id,
        node_states=node_states,
    )
    response.updated_at.CopyFrom(strategy.updated_at)
    if strategy.state == strategy_pb2.STRATEGY_STATE_FAILED and strategy.HasField("error"):
        response.error.CopyFrom(strategy.error)
    if strategy.state == strategy_pb2.STRATEGY_STATE_COMPLETED:
        response.queue_map.CopyFrom(strategy.diff.queue_map)
    return response


def without_dag(strategy: strategy_pb2.Strategy) -> strategy_pb2.Strategy:
    strategy.ClearField("dag")
    return strategy


def page_size(page: paging_pb2.PageRequest) -> int:
    """The page size asked for: 0 is the default, above the cap is the cap (paging.proto)."""
    if page.page_size < 0:
        raise QmtlError.validation(
            f"page.page_size must not be negative, got {page.page_size}", field="page.page_size"
        )
    return min(page.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def page_info(next_cursor: str) -> paging_pb2.PageInfo:
    return paging_pb2.PageInfo(next_page_token=next_cursor, total_size=-1)
