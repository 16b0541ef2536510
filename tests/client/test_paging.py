"""`iter_<rpc>` yields the items of every page of a list rpc, following next_page_token."""

from __future__ import annotations

import pytest

from qmtl.common.v1.paging_pb2 import PageRequest
from qmtl.dagmanager.v1.node_messages_pb2 import ListNodesRequest
from qmtl.runtime.client import QmtlError
from tests.client.support import Apps, ServedApps, asgi_client, node, sync_client

SEVEN = [node(i) for i in range(7)]


def first_page(size: int) -> ListNodesRequest:
    return ListNodesRequest(page=PageRequest(page_size=size), node_type="T")


def tokens_asked(apps: Apps) -> list[str]:
    return [request.page.page_token for rpc, request in apps.handler.calls if rpc == "list_nodes"]


async def test_async_iterator_walks_three_pages(apps: Apps) -> None:
    apps.handler.nodes = SEVEN
    request = first_page(3)
    client = asgi_client(apps)

    found = [item async for item in client.iter_list_nodes(request)]

    assert found == SEVEN
    assert tokens_asked(apps) == ["", "3", "6"]
    # Every page keeps the caller's filters and page size; the caller's request is untouched.
    assert {(r.page.page_size, r.node_type) for _, r in apps.handler.calls} == {(3, "T")}
    assert request == first_page(3)


def test_sync_iterator_walks_three_pages_over_uvicorn(served: ServedApps) -> None:
    served.apps.handler.nodes = SEVEN

    with sync_client(served) as client:
        found = list(client.iter_list_nodes(first_page(3)))

    assert found == SEVEN
    assert tokens_asked(served.apps) == ["", "3", "6"]


async def test_an_empty_list_is_one_call(apps: Apps) -> None:
    found = [item async for item in asgi_client(apps).iter_list_nodes(first_page(3))]

    assert found == []
    assert tokens_asked(apps) == [""]


async def test_a_repeated_page_token_ends_the_iteration_with_an_error(apps: Apps) -> None:
    apps.handler.nodes = SEVEN
    apps.handler.repeat_token = "3"

    with pytest.raises(QmtlError) as raised:
        _ = [item async for item in asgi_client(apps).iter_list_nodes(first_page(3))]

    assert raised.value.wire_code == "E_INVALID_PAGE_TOKEN"
    assert tokens_asked(apps) == ["", "3"]
