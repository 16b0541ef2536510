"""The Gateway and the DAG Manager keep no state of their own (NG-7): with every process on the
real Redis, Neo4j and Kafka, killing any of them, or restarting Redis, loses no acknowledged
submission and changes no outcome.

- Two Gateways and two DAG Managers take 200 submissions (distinct DAGs sharing sub-graphs, so
  topics are reused) spread over both Gateways; one DAG Manager is SIGKILLed halfway and
  restarted. Every strategy reaches COMPLETED exactly once, with the queue map a single
  Gateway + DAG Manager gives the same submissions on a graph of its own, and Neo4j and Kafka
  hold one node and one topic per distinct node id.
- A Gateway SIGKILLed while its worker holds a lease: another Gateway finishes the work once
  the lease has expired.
- A private Redis (AOF, appendfsync always) killed with -9 mid-run and started again: every
  submission answered 202 is still there and reaches COMPLETED.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest

from qmtl.dag.v1 import strategy_pb2
from qmtl.gateway.v1 import strategy_messages_pb2
from qmtl.runtime import nodeid
from qmtl.work.v1 import work_item_pb2, work_state_pb2
from tests.contract.graphstore_neo4j import open_driver
from tests.dag_manager.dag_builders import DagBuilder
from tests.integration.services_support import (
    Cluster,
    GatewayClient,
    Namespace,
    all_completed,
    list_topics,
)
from tests.integration.workqueue_support import PrivateRedis
from tests.polling import eventually

COMPLETED = strategy_pb2.STRATEGY_STATE_COMPLETED
SUBMISSIONS = 200
SHARED_CHAINS = 10  # each strategy extends one of these: 20 strategies per shared sub-graph
CHAIN_LENGTH = 3
IN_FLIGHT = 10
# The Gateway's work lease in the lease test (`--lease-ttl`): short, so the test waits seconds.
LEASE_TTL_S = 3.0


def strategy_dag(namespace: Namespace, index: int) -> strategy_messages_pb2.SubmitStrategyRequest:
    """Strategy `index`: shared chain `index % SHARED_CHAINS` plus a leaf of its own."""
    tags = (namespace.asset,)
    builder = DagBuilder()
    group = index % SHARED_CHAINS
    last = builder.node("StreamInput", tags=tags, period=0, params={"chain": group})
    for step in range(1, CHAIN_LENGTH):
        last = builder.node("Indicator", tags=tags, params={"chain": group, "step": step},
                            deps=[last])  # fmt: skip
    builder.node("Signal", tags=tags, params={"strategy": index}, deps=[last])
    dag = builder.dag()
    request = strategy_messages_pb2.SubmitStrategyRequest(
        name=f"stateless {index}",
        node_ids_crc32=nodeid.node_ids_crc32(n.node_id for n in dag.nodes),
        idempotency_key=f"{namespace.unique}-{index}",  # a client's retry replays, not duplicates
    )
    request.dag.CopyFrom(dag)
    return request


def queue_maps(
    statuses: dict[str, strategy_messages_pb2.GetStrategyStatusResponse],
) -> dict[str, str]:
    """node id -> topic over every strategy; fails on a node given two topics."""
    topics: dict[str, str] = {}
    for status in statuses.values():
        for node_id, queue in status.queue_map.queues.items():
            assert topics.setdefault(node_id, queue.queue) == queue.queue, node_id
    return topics


async def submit_all(
    clients: Sequence[GatewayClient],
    requests: Sequence[strategy_messages_pb2.SubmitStrategyRequest],
    *,
    halfway: asyncio.Event | None = None,
    resume: asyncio.Event | None = None,
) -> dict[int, str]:
    """Submits each request to `clients[i % len(clients)]`, IN_FLIGHT at a time; at the halfway
    mark sets `halfway` and waits for `resume`. Returns index -> strategy id of every 2xx."""
    acknowledged: dict[int, str] = {}
    for start in range(0, len(requests), IN_FLIGHT):
        if halfway is not None and start == len(requests) // 2:
            halfway.set()
            if resume is not None:
                await resume.wait()
        indexes = range(start, min(start + IN_FLIGHT, len(requests)))
        answers = await asyncio.gather(
            *(clients[i % len(clients)].submit(requests[i]) for i in indexes)
        )
        for i, (code, reply) in zip(indexes, answers, strict=True):
            assert code in (200, 202), f"submission {i}: HTTP {code}"
            acknowledged[i] = reply.strategy_id
    return acknowledged


async def exactly_one_completed(client: GatewayClient, strategy_ids: Sequence[str]) -> None:
    async def count(strategy_id: str) -> tuple[str, int]:
        events = await client.state_changes(strategy_id)
        return strategy_id, sum(e.strategy_state_changed.to_state == COMPLETED for e in events)

    counts: list[tuple[str, int]] = []
    for start in range(0, len(strategy_ids), 20):
        counts += await asyncio.gather(*(count(s) for s in strategy_ids[start : start + 20]))
    wrong = {s: n for s, n in counts if n != 1}
    assert not wrong, f"strategies without exactly one COMPLETED StrategyStateChanged: {wrong}"


async def graph_node_ids(cluster: Cluster) -> list[str]:
    driver = await open_driver()
    try:
        label = cluster.graph.label("ComputeNode")
        records, _, _ = await driver.execute_query(f"MATCH (n:{label}) RETURN n.node_id AS id")
    finally:
        await driver.close()
    return [record["id"] for record in records]


@pytest.fixture
def namespace() -> Namespace:
    return Namespace()


async def test_two_gateways_and_two_dagmanagers_survive_a_dagmanager_sigkill(
    namespace: Namespace,
) -> None:
    requests = [strategy_dag(namespace, i) for i in range(SUBMISSIONS)]
    distinct = {n.node_id for r in requests for n in r.dag.nodes}
    assert len(distinct) == SHARED_CHAINS * CHAIN_LENGTH + SUBMISSIONS

    # The single-instance run: a Redis namespace and a graph of its own, the same topics.
    single = Cluster(Namespace(), graph=Namespace().graph)
    pair = Cluster(namespace)
    try:
        async with httpx.AsyncClient(timeout=60) as http:
            dm = await single.dagmanager("dm")
            gw = GatewayClient(http, await single.gateway("gw", [dm]))
            acknowledged = await submit_all([gw], requests)
            single_statuses = await all_completed(
                gw, list(acknowledged.values()), within=120, watch=single.processes
            )
            alone = queue_maps(single_statuses)
            await single.terminate(gw.process)
            await single.terminate(dm)

            dm1 = await pair.dagmanager("dm1")
            dm2 = await pair.dagmanager("dm2")
            gateways = [
                GatewayClient(http, await pair.gateway("gw1", [dm1, dm2])),
                GatewayClient(http, await pair.gateway("gw2", [dm2, dm1])),
            ]
            halfway, resume = asyncio.Event(), asyncio.Event()
            submitting = asyncio.create_task(
                submit_all(gateways, requests, halfway=halfway, resume=resume)
            )
            await halfway.wait()
            await pair.kill(dm1)
            resume.set()
            restarted = await pair.restart(dm1)
            assert restarted.crash_detected
            ids = list((await submitting).values())
            assert len(set(ids)) == SUBMISSIONS
            statuses = await all_completed(gateways[1], ids, within=120, watch=[
                g.process for g in gateways] + [dm2, restarted])  # fmt: skip
            await exactly_one_completed(gateways[0], ids)

            assert queue_maps(statuses) == alone
            assert sorted(queue_maps(statuses)) == sorted(distinct)
            nodes = await graph_node_ids(pair)
            assert sorted(nodes) == sorted(distinct), "a node missing or stored twice"
            topics = await list_topics(namespace.asset + "_")
            assert topics == sorted(set(alone.values()))
            assert len(topics) == len(distinct), "one topic per distinct node"
            print(f"{SUBMISSIONS} submissions over 2 Gateways, 2 DAG Managers (one SIGKILLed): "
                  f"{len(distinct)} nodes, {len(topics)} topics")  # fmt: skip
    except BaseException:
        print(single.logs(), pair.logs())
        raise
    finally:
        topics = await list_topics(namespace.asset + "_")
        await single.aclose()
        await pair.aclose(topics)


async def test_a_gateway_killed_holding_a_lease_is_finished_by_another_after_it_expires(
    namespace: Namespace,
) -> None:
    cluster = Cluster(namespace)
    request = strategy_dag(namespace, 0)
    try:
        async with httpx.AsyncClient(timeout=60) as http:
            dm = await cluster.dagmanager("dm")
            lease = ("--lease-ttl", str(LEASE_TTL_S))
            first = GatewayClient(http, await cluster.gateway("gw1", [dm], *lease))
            # A stopped DAG Manager holds the first Gateway's Diff call, so its worker keeps
            # the lease until the process dies.
            os.kill(dm.proc.pid, signal.SIGSTOP)
            try:
                code, reply = await first.submit(request)
                assert code == 202
                leased = await leased_by(first, reply.work_item_id)
                await cluster.kill(first.process)
            finally:
                os.kill(dm.proc.pid, signal.SIGCONT)
            second = GatewayClient(http, await cluster.gateway("gw2", [dm], *lease))
            statuses = await all_completed(second, [reply.strategy_id],
                                           within=LEASE_TTL_S + 40,
                                           watch=[dm, second.process])  # fmt: skip
            assert statuses[reply.strategy_id].queue_map.queues
            item = await second.work_item(reply.work_item_id)
            assert item.state == work_state_pb2.WORK_STATE_COMPLETED
            assert item.attempts == 2, "the killed Gateway's attempt, then the second's"
            assert item.lease_owner != leased.lease_owner
            assert (item.finished_at.ToNanoseconds() - leased.lease_deadline.ToNanoseconds()) >= 0
            changes = await second.state_changes(reply.strategy_id)
            done = [e for e in changes if e.strategy_state_changed.to_state == COMPLETED]
            assert len(done) == 1
            assert done[0].source.endswith("gw2"), done[0].source
    except BaseException:
        print(cluster.logs())
        raise
    finally:
        await cluster.aclose(await list_topics(namespace.asset + "_"))


async def leased_by(client: GatewayClient, work_item_id: str) -> work_item_pb2.WorkItem:
    found: list[work_item_pb2.WorkItem] = []

    async def leased() -> bool:
        item = await client.work_item(work_item_id)
        if item.state == work_state_pb2.WORK_STATE_LEASED:
            found.append(item)
        return bool(found)

    await eventually(leased, what=f"work item {work_item_id} LEASED", within=30,
                     watch=[client.process])  # fmt: skip
    return found[0]


async def test_a_redis_restart_mid_run_loses_no_acknowledged_submission(
    namespace: Namespace, tmp_path: Path
) -> None:
    server = PrivateRedis(tmp_path, appendfsync="always")
    server.start()
    cluster = Cluster(namespace, redis_url=server.url)
    requests = [strategy_dag(namespace, i) for i in range(60)]
    acknowledged: dict[int, str] = {}
    try:
        async with httpx.AsyncClient(timeout=60) as http:
            dm = await cluster.dagmanager("dm")
            gw = GatewayClient(http, await cluster.gateway("gw", [dm]))

            async def submit(index: int) -> None:
                code, reply = await gw.submit(requests[index])
                if code in (200, 202):
                    acknowledged[index] = reply.strategy_id
                else:  # refused while Redis was down: not acknowledged, the client retries
                    assert code == 503, code

            async def keep_submitting(first: int) -> None:
                for start in range(first, len(requests), 5):
                    await asyncio.gather(*(submit(i) for i in range(start, start + 5)))

            # A stopped DAG Manager keeps the first half's work pending (queued or leased)
            # in Redis while it is killed; the second half is in flight around the restart.
            os.kill(dm.proc.pid, signal.SIGSTOP)
            try:
                await asyncio.gather(*(submit(i) for i in range(len(requests) // 2)))
                assert len(acknowledged) == len(requests) // 2
                pending = [await gw.status(s) for s in acknowledged.values()]
                assert all(status.state != COMPLETED for status in pending)
                task = asyncio.create_task(keep_submitting(len(requests) // 2))
                await asyncio.to_thread(server.kill_hard)
                await asyncio.to_thread(server.start)
                await task
            finally:
                os.kill(dm.proc.pid, signal.SIGCONT)
            refused = len(requests) - len(acknowledged)

            async def retried() -> bool:
                for index in set(range(len(requests))) - set(acknowledged):
                    await submit(index)
                return len(acknowledged) == len(requests)

            await eventually(retried, what="every refused submission accepted on retry",
                             within=60, watch=[gw.process])  # fmt: skip
            print(f"{refused} of {len(requests)} submissions refused (503) around a Redis "
                  "kill -9, accepted on retry")  # fmt: skip
            await all_completed(gw, list(acknowledged.values()), within=90,
                                watch=[dm, gw.process])  # fmt: skip
            await exactly_one_completed(gw, list(acknowledged.values()))
    except BaseException:
        print(cluster.logs())
        raise
    finally:
        try:
            await cluster.aclose(await list_topics(namespace.asset + "_"))
        finally:
            server.stop()


async def _at_least(found: dict[int, str], count: int) -> bool:
    return len(found) >= count
