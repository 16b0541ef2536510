"""DagManagerHandler driven through the GENERATED HTTP routes, in process, on in-memory adapters.

Internal rpcs go to the internal app with a service token (dag:diff / dag:admin), reads to the
public app with dag:read, exactly as a deployed DAG Manager would be called.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from google.protobuf import json_format
from google.protobuf.message import Message

from qmtl.common.v1.error_pb2 import ErrorDetail
from qmtl.dagmanager.v1 import dag_manager_service_http as http
from qmtl.dagmanager.v1.diff_messages_pb2 import DiffRequest, DiffResponse
from qmtl.dagmanager.v1.gc_messages_pb2 import TriggerGcRequest, TriggerGcResponse
from qmtl.dagmanager.v1.node_messages_pb2 import GetNodeResponse
from qmtl.dagmanager.v1.queue_messages_pb2 import GetQueuesByTagResponse
from qmtl.dagmanager.v1.release_messages_pb2 import (
    ReleaseStrategyRequest,
    ReleaseStrategyResponse,
)
from qmtl.events.v1 import queue_events_pb2
from qmtl.runtime.auth import HmacTokenVerifier, issue_token
from qmtl.runtime.graphstore import (
    GraphStoreUnavailableError,
    InMemoryGraphStore,
    MatchMode,
    TaggedQueue,
)
from qmtl.runtime.topicadmin import InMemoryTopicAdmin
from qmtl.services.dag_manager.handler import DagManagerHandler
from tests.contract.graphstore_support import ManualClock
from tests.dag_manager.dag_builders import DagBuilder, make_node
from tests.dag_manager.outbox_support import RelayedEvents

SECRET = b"dag-manager-handler-test"
PROTOBUF, JSON = "application/x-protobuf", "application/json"
DAY = 24 * 60 * 60.0


def token(*scopes: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(SECRET, 'service:gateway', scopes)}"}


INTERNAL = token("dag:diff", "dag:admin")
READ = token("dag:read")


@dataclass
class DagManager:
    store: LookupFailingStore
    topics: InMemoryTopicAdmin
    events: RelayedEvents
    clock: ManualClock
    internal: httpx.AsyncClient
    public: httpx.AsyncClient
    handler: DagManagerHandler

    async def post(self, path: str, message: Message, *, accept: str = PROTOBUF) -> httpx.Response:
        return await self.internal.post(
            path,
            content=message.SerializeToString(),
            headers={**INTERNAL, "Content-Type": PROTOBUF, "Accept": accept},
        )

    async def diff(self, request: DiffRequest) -> DiffResponse:
        response = await self.post("/v1/dag-manager/internal/diff", request)
        assert response.status_code == 200, response.content
        return DiffResponse.FromString(response.content)

    async def by_tag(self, query: str) -> httpx.Response:
        return await self.public.get(
            f"/v1/dag-manager/queues/by-tag?{query}", headers={**READ, "Accept": JSON}
        )

    def updates(self) -> list[queue_events_pb2.QueueUpdated]:
        return [e.queue_updated for e in self.events.events if e.HasField("queue_updated")]


class LookupFailingStore(InMemoryGraphStore):
    """Tag lookups fail while `lookups_down` is set; everything else works."""

    lookups_down = False

    async def queues_by_tags(
        self, tags: Sequence[str], interval: int, match_mode: MatchMode
    ) -> list[TaggedQueue]:
        if self.lookups_down:
            raise GraphStoreUnavailableError("neo4j unreachable")
        return await super().queues_by_tags(tags, interval, match_mode)


@pytest.fixture
async def dm() -> AsyncIterator[DagManager]:
    clock = ManualClock()
    store = LookupFailingStore(clock=clock)
    topics, events = InMemoryTopicAdmin(), RelayedEvents(store)
    handler = DagManagerHandler(store, topics, events, clock=clock)
    verifier = HmacTokenVerifier(SECRET)
    internal_app = http.create_dag_manager_service_internal_app(handler, verifier)
    public_app = http.create_dag_manager_service_public_app(handler, verifier)
    async with (
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=internal_app), base_url="http://internal"
        ) as internal,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=public_app), base_url="http://public"
        ) as public,
    ):
        yield DagManager(store, topics, events, clock, internal, public, handler)


def error_of(response: httpx.Response) -> ErrorDetail:
    if response.headers["content-type"].startswith(JSON):
        return json_format.Parse(response.text, ErrorDetail())
    return ErrorDetail.FromString(response.content)


def field_of(detail: ErrorDetail) -> Any:
    return json_format.MessageToDict(detail.details)["field"]


def btc_dag() -> tuple[DagBuilder, list[str]]:
    builder = DagBuilder()
    source = builder.node("StreamInput", tags=["btc", "price"], period=0, params={"s": "BTC"})
    indicator = builder.node("Indicator", tags=["btc"], params={"n": 14}, deps=[source])
    return builder, [source, indicator]


# --- Diff ---------------------------------------------------------------------------------


async def test_diff_persists_and_announces_each_touched_tag_query_once(dm: DagManager) -> None:
    builder, ids = btc_dag()
    first = await dm.diff(builder.request("s1"))
    assert sorted(first.result.new_node_ids) == sorted(ids)
    assert set(await dm.store.get_nodes(ids)) == set(ids)
    announced = {(tuple(u.tags), u.interval, u.version) for u in dm.updates()}
    assert announced == {(("btc",), 60, 1), (("price",), 60, 1)}
    [btc] = [u for u in dm.updates() if list(u.tags) == ["btc"]]
    assert sorted(q.node_id for q in btc.queues) == sorted(ids)

    again = await dm.diff(builder.request("s1"))
    assert list(again.result.new_node_ids) == []
    assert again.result.queue_map == first.result.queue_map
    assert len(dm.updates()) == 2  # same answers: no new versions, no events


async def test_a_reused_node_tagged_anew_is_announced_under_its_new_tag(dm: DagManager) -> None:
    builder, _ = btc_dag()
    await dm.diff(builder.request("s1"))
    retagged = DagBuilder()
    retagged.node("StreamInput", tags=["btc", "price", "spot"], period=0, params={"s": "BTC"})
    result = await dm.diff(retagged.request("s2"))
    assert list(result.result.new_node_ids) == []
    new = {u.tags[0]: u for u in dm.updates()[2:]}
    assert {tag: (u.version, len(u.queues)) for tag, u in new.items()} == {
        "spot": (1, 1),
        # The queues' descriptors carry the node's tags, so these answers changed too.
        "btc": (2, 2),
        "price": (2, 1),
    }
    assert list(new["price"].queues[0].tags) == ["btc", "price", "spot"]


async def test_a_tag_query_in_a_diffed_dag_is_followed_by_later_diffs(dm: DagManager) -> None:
    consumer = DagBuilder()
    consumer.tag_query(["btc", "price"], match_mode=2)  # MATCH_MODE_ALL
    await dm.diff(consumer.request("consumer"))
    assert dm.updates() == []  # no queue yet: nothing changed an answer

    builder, ids = btc_dag()
    await dm.diff(builder.request("producer"))
    [both] = [u for u in dm.updates() if list(u.tags) == ["btc", "price"]]
    assert (both.match_mode, both.version, [q.node_id for q in both.queues]) == (2, 1, [ids[0]])
    assert both.etag == "q:btc.price:60:1"


async def test_a_dry_run_writes_and_announces_nothing(dm: DagManager) -> None:
    builder, ids = btc_dag()
    result = await dm.diff(builder.request("s1", dry_run=True))
    assert result.result.dry_run
    assert await dm.store.get_nodes(ids) == {}
    assert dm.events.events == []
    assert await dm.topics.list_topics() == {}


async def test_a_cycle_is_a_typed_4xx_with_the_field_path_and_nothing_is_written(
    dm: DagManager,
) -> None:
    a = make_node("Indicator", tags=["btc"], params={"n": 1})
    b = make_node("Indicator", tags=["btc"], params={"n": 2})
    a.spec.dependencies.append(b.node_id)
    b.spec.dependencies.append(a.node_id)
    builder = DagBuilder()
    builder.node("StreamInput", tags=["btc"], period=0)
    builder.add(a)
    builder.add(b)
    request = builder.request("s1")
    for accept in (PROTOBUF, JSON):
        response = await dm.post("/v1/dag-manager/internal/diff", request, accept=accept)
        assert response.status_code == 400, response.content
        assert response.headers["content-type"].startswith(accept)
        detail = error_of(response)
        assert detail.code == "E_DAG_CYCLE"
        assert field_of(detail) == "dag.nodes[1].spec.dependencies"
    ids = [n.node_id for n in builder.nodes]
    assert await dm.store.get_nodes(ids) == {}
    assert await dm.topics.list_topics() == {}
    assert dm.events.events == []


async def test_a_bad_tag_is_a_validation_error_naming_the_tag_and_nothing_is_written(
    dm: DagManager,
) -> None:
    builder = DagBuilder()
    good = builder.node("StreamInput", tags=["btc"], period=0)
    builder.node("Indicator", tags=["ok", "no spaces"], deps=[good])
    response = await dm.post("/v1/dag-manager/internal/diff", builder.request("s1"), accept=JSON)
    assert response.status_code == 422
    detail = error_of(response)
    assert detail.code == "E_VALIDATION"
    assert field_of(detail) == "dag.nodes[1].tags[1]"
    assert await dm.store.get_nodes([good]) == {}
    assert dm.events.events == []


async def test_a_diff_stored_while_answers_cannot_be_read_still_succeeds_and_catches_up(
    dm: DagManager,
) -> None:
    builder, ids = btc_dag()
    dm.store.lookups_down = True
    result = await dm.diff(builder.request("s1"))  # 200: the diff itself is stored
    assert sorted(result.result.new_node_ids) == sorted(ids)
    assert dm.updates() == []
    assert dm.handler.tag_queries.stale == 2

    dm.store.lookups_down = False
    unrelated = DagBuilder()
    unrelated.node("StreamInput", tags=["eth"], period=0)
    await dm.diff(unrelated.request("s2"))
    assert sorted(u.tags[0] for u in dm.updates()) == ["btc", "eth", "price"]
    assert dm.handler.tag_queries.stale == 0


# --- ReleaseStrategy ----------------------------------------------------------------------


async def test_release_orphans_only_what_no_other_strategy_uses(dm: DagManager) -> None:
    builder, ids = btc_dag()
    await dm.diff(builder.request("s1"))
    shared = DagBuilder()
    shared.add(builder.nodes[0])
    await dm.diff(shared.request("s2"))

    release = "/v1/dag-manager/internal/strategies/s1/release"
    response = await dm.post(release, ReleaseStrategyRequest())  # body fields come from the path
    assert response.status_code == 200, response.content
    answer = ReleaseStrategyResponse.FromString(response.content)
    assert (answer.strategy_id, list(answer.orphaned_node_ids)) == ("s1", [ids[1]])
    again = ReleaseStrategyResponse.FromString(
        (await dm.post(release, ReleaseStrategyRequest())).content
    )
    assert list(again.orphaned_node_ids) == []
    assert len(dm.updates()) == 2  # a release changes no answer: orphans still answer


# --- GetQueuesByTag -----------------------------------------------------------------------


async def test_by_tag_answers_any_and_all_sorted(dm: DagManager) -> None:
    builder, ids = btc_dag()
    result = await dm.diff(builder.request("s1"))
    queue_of = {nid: d.queue for nid, d in result.result.queue_map.queues.items()}

    response = await dm.by_tag("tags=price&tags=btc&interval=60")
    assert response.status_code == 200, response.text
    answer = json_format.Parse(response.text, GetQueuesByTagResponse())
    assert [q.queue for q in answer.queues] == sorted(queue_of.values())
    all_mode = await dm.by_tag("tags=price&tags=btc&interval=60&match_mode=MATCH_MODE_ALL")
    answer = json_format.Parse(all_mode.text, GetQueuesByTagResponse())
    assert [(q.queue, q.node_id) for q in answer.queues] == [(queue_of[ids[0]], ids[0])]
    other = json_format.Parse(
        (await dm.by_tag("tags=btc&interval=300")).text, GetQueuesByTagResponse()
    )
    assert list(other.queues) == []


async def test_by_tag_without_tags_matches_nothing(dm: DagManager) -> None:
    builder, _ = btc_dag()
    await dm.diff(builder.request("s1"))
    response = await dm.by_tag("interval=60")
    assert response.status_code == 200
    assert list(json_format.Parse(response.text, GetQueuesByTagResponse()).queues) == []


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("tags=btc", "interval"),
        ("tags=btc&interval=0", "interval"),
        ("tags=btc&interval=86401", "interval"),
        ("interval=-60", "interval"),
        ("tags=btc&tags=b%20d&interval=60", "tags[1]"),
    ],
)
async def test_by_tag_refuses_a_malformed_query_with_the_field(
    dm: DagManager, query: str, field: str
) -> None:
    response = await dm.by_tag(query)
    assert response.status_code == 422, response.text
    detail = error_of(response)
    assert (detail.code, field_of(detail)) == ("E_VALIDATION", field)


async def test_by_tag_reads_do_not_version_or_announce(dm: DagManager) -> None:
    builder, _ = btc_dag()
    await dm.diff(builder.request("s1"))
    before = len(dm.events.events)
    for _ in range(2):
        assert (await dm.by_tag("tags=btc&tags=eth&interval=60")).status_code == 200
    assert len(dm.events.events) == before


# --- GetNode ------------------------------------------------------------------------------


async def test_get_node_answers_the_stored_node_with_its_queue(dm: DagManager) -> None:
    builder, ids = btc_dag()
    result = await dm.diff(builder.request("s1"))
    response = await dm.public.get(
        f"/v1/dag-manager/nodes/{ids[1]}", headers={**READ, "Accept": JSON}
    )
    assert response.status_code == 200, response.text
    node = json_format.Parse(response.text, GetNodeResponse()).node
    assert node.node.node_id == ids[1]
    assert node.queue == result.result.queue_map.queues[ids[1]].queue
    assert list(node.node.spec.dependencies) == [ids[0]]
    assert list(node.node.tags) == ["btc"]
    assert node.strategy_count == 1
    assert node.created_at.seconds == int(dm.clock.now)


async def test_get_node_of_an_unknown_id_is_not_found(dm: DagManager) -> None:
    response = await dm.public.get(
        "/v1/dag-manager/nodes/blake3%3A" + "0" * 64, headers={**READ, "Accept": JSON}
    )
    assert response.status_code == 404
    detail = error_of(response)
    assert detail.code == "E_NOT_FOUND"
    assert field_of(detail) == "node_id"


# --- TriggerGc and the rest ---------------------------------------------------------------


async def test_gc_drops_an_expired_orphan_and_announces_the_smaller_answers(
    dm: DagManager,
) -> None:
    builder, ids = btc_dag()
    result = await dm.diff(builder.request("s1"))
    await dm.post("/v1/dag-manager/internal/strategies/s1/release", ReleaseStrategyRequest())
    dm.clock.advance(40 * DAY)  # past every drop policy's TTL + grace

    response = await dm.post("/v1/dag-manager/internal/gc", TriggerGcRequest())
    assert response.status_code == 200, response.content
    report = TriggerGcResponse.FromString(response.content).report
    dropped = {p.queue for p in report.processed}
    assert dropped == {d.queue for d in result.result.queue_map.queues.values()}
    assert await dm.store.get_nodes(ids) == {}
    latest = {tuple(u.tags): u for u in dm.updates()}
    assert {tags: (u.version, len(u.queues)) for tags, u in latest.items()} == {
        ("btc",): (2, 0),
        ("price",): (2, 0),
    }


async def test_rpcs_the_core_does_not_serve_yet_answer_unimplemented(dm: DagManager) -> None:
    response = await dm.public.get("/v1/dag-manager/nodes", headers={**READ, "Accept": JSON})
    assert response.status_code == 501
    assert error_of(response).code == "E_UNIMPLEMENTED"


async def test_a_diff_without_the_diff_scope_never_reaches_the_core(dm: DagManager) -> None:
    builder, ids = btc_dag()
    response = await dm.internal.post(
        "/v1/dag-manager/internal/diff",
        content=builder.request("s1").SerializeToString(),
        headers={**token("dag:read"), "Content-Type": PROTOBUF},
    )
    assert response.status_code == 403
    assert await dm.store.get_nodes(ids) == {}
