"""`qmtl dagmanager` and `qmtl gateway` processes on the real servers, in a namespace of a test's
own, for the stateless tests (test_services_stateless.py) and bench/submit.

A `Namespace` names everything a run writes: the Gateway's Redis key prefix and work queue, the
DAG Manager's Neo4j label prefix (migrated with `qmtl migrate --label-prefix`) and the tag whose
lower-cased form starts every node topic name (domain.md §2.6: `{asset}_{node_type}_...`), so
`Cluster.aclose()` deletes exactly what the run made. The event topics (`qmtl.events.*`) are
shared by design; readers filter them by strategy id.

Processes are `ServiceProcess`es (tests/serve/service_process.py): started on port 0, their
bound ports read from the startup line, readiness awaited on the `ready` line and `/ready`.
A restarted process gets the ports of its previous run, so the Gateways pointed at a DAG
Manager find it again; their logs stay readable after a SIGKILL and are shown on failure.
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import httpx
import redis.asyncio as redis

from qmtl.dag.v1 import strategy_pb2
from qmtl.events.v1 import event_pb2
from qmtl.gateway.v1 import event_messages_pb2, strategy_messages_pb2, work_messages_pb2
from qmtl.runtime import codec
from qmtl.runtime.auth import issue_token
from qmtl.runtime.endpoints import ServiceEndpoints
from qmtl.runtime.graph_migrations import GraphNames
from qmtl.work.v1 import work_item_pb2
from tests.contract.graphstore_neo4j import drop_graph, open_driver
from tests.dag_manager.test_dagmanager_process import migrate
from tests.integration.workqueue_support import delete_prefixed
from tests.polling import eventually
from tests.serve.service_process import ServiceProcess

SECRET = "services-stateless-test-secret"
COMPLETED = strategy_pb2.STRATEGY_STATE_COMPLETED
STATE_CHANGED = "qmtl.gateway.strategy_state_changed"
SUBMIT_PATH = "/v1/gateway/internal/strategies"
LISTENER_FLAGS = {"public": "--public-port", "internal": "--internal-port", "grpc": "--grpc-port"}


def bearer(*scopes: str) -> dict[str, str]:
    return {"authorization": f"Bearer {issue_token(SECRET.encode(), 'test:services', scopes)}"}


@dataclass(frozen=True)
class Namespace:
    """The names of one run's state on the shared servers."""

    unique: str = field(default_factory=lambda: uuid.uuid4().hex[:10])

    @property
    def redis_prefix(self) -> str:
        return f"test:svc:{self.unique}:"

    @property
    def queue_name(self) -> str:
        return f"testsvc{self.unique}"

    @property
    def graph(self) -> GraphNames:
        return GraphNames(f"T{self.unique}")

    @property
    def asset(self) -> str:
        """A tag to put first on every node: node topics are named `<asset>_...`."""
        return f"t{self.unique}"

    @property
    def redis_patterns(self) -> tuple[str, ...]:
        # The work queue keeps its keys under `qmtl:wq:{<queue name>}:` (hash-tagged).
        return (self.redis_prefix, f"qmtl:wq:{{{self.queue_name}}}:")


class Cluster:
    """The DAG Managers and Gateways of one test, on one Namespace (or a graph of its own:
    `graph` overrides the namespace's, for a second, independent run beside the first)."""

    def __init__(
        self,
        namespace: Namespace,
        *,
        redis_url: str | None = None,
        graph: GraphNames | None = None,
        gateway_args: Sequence[str] = (),
        backend: str = "real",
    ) -> None:
        self.namespace = namespace
        self.redis_url = redis_url or ServiceEndpoints.from_env().redis_url
        self.graph = graph or namespace.graph
        self.gateway_args = tuple(gateway_args)
        self.backend = backend
        self.processes: list[ServiceProcess] = []
        self._migrated = False

    # -- starting ------------------------------------------------------------------------

    async def dagmanager(self, instance: str, *extra: str) -> ServiceProcess:
        if self.backend == "real" and not self._migrated:
            await migrate(self.graph.prefix)
            self._migrated = True
        args = ["--backend", self.backend, "--instance-id", self._instance(instance), *extra]
        if self.backend == "real":
            args += ["--graph-prefix", self.graph.prefix]
        return await self._start("dagmanager", args, ports=("public", "internal", "grpc"))

    async def gateway(
        self, instance: str, dag_managers: Iterable[ServiceProcess], *extra: str
    ) -> ServiceProcess:
        """A Gateway calling `dag_managers` (several: a gRPC `ipv4:` target list, tried in
        order, so a Gateway moves to the next one while the first is down)."""
        targets = ",".join(dm.grpc_target for dm in dag_managers)
        args = ["--backend", self.backend, "--instance-id", self._instance(instance)]
        if self.backend == "real":
            args += [
                "--redis-url", self.redis_url,
                "--redis-prefix", self.namespace.redis_prefix,
                "--queue-name", self.namespace.queue_name,
                "--dag-manager", f"ipv4:{targets}" if "," in targets else targets,
            ]  # fmt: skip
        args += [*self.gateway_args, *extra]
        return await self._start("gateway", args, ports=("public", "internal"))

    async def restart(self, process: ServiceProcess) -> ServiceProcess:
        """The same command on the same ports, after `process` has exited."""
        assert process.proc.returncode is not None, "stop or kill it first"
        argv = process.argv[2:]
        for listener, port in process.ports.items():
            flag = LISTENER_FLAGS[listener]
            argv[argv.index(flag) + 1] = str(port)
        return await self._start(process.command, argv, ports=())

    async def _start(
        self, command: str, args: Sequence[str], *, ports: Sequence[str]
    ) -> ServiceProcess:
        free = [arg for listener in ports for arg in (LISTENER_FLAGS[listener], "0")]
        process = ServiceProcess(command, *free, *args, env={"QMTL_TOKEN_SECRET": SECRET})
        self.processes.append(process)
        await process.start()
        await process.wait_ready()
        await wait_ready(process)
        return process

    def _instance(self, name: str) -> str:
        return f"test-{self.namespace.unique}-{name}"

    # -- stopping ------------------------------------------------------------------------

    @staticmethod
    async def kill(process: ServiceProcess) -> None:
        assert await process.stop(signal.SIGKILL) == -signal.SIGKILL, process.logs()

    @staticmethod
    async def terminate(process: ServiceProcess) -> None:
        assert await process.stop(signal.SIGTERM) == 0, process.logs()

    def logs(self) -> str:
        return "\n".join(
            f"---- qmtl {p.command} {' '.join(p.argv[2:])}\n{p.logs()[-6000:]}"
            for p in self.processes
        )

    async def aclose(self, topics: Iterable[str] = ()) -> None:
        """Kills what still runs, removes the log files, and deletes the namespace's Redis
        keys, Neo4j labels and `topics`."""
        for process in self.processes:
            await process.close()
        await delete_namespace(self.namespace, self.redis_url, graphs=[self.graph], topics=topics)


async def delete_namespace(
    namespace: Namespace, redis_url: str, *, graphs: Iterable[GraphNames], topics: Iterable[str]
) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        await delete_prefixed(client, namespace.redis_patterns)
    finally:
        await client.aclose()
    driver = await open_driver()
    try:
        for names in graphs:
            await drop_graph(driver, names)
    finally:
        await driver.close()
    await delete_topics(list(topics))


async def list_topics(prefix: str) -> list[str]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=ServiceEndpoints.from_env().kafka_bootstrap)
    await admin.start()
    try:
        return sorted(t for t in await admin.list_topics() if t.startswith(prefix))
    finally:
        await admin.close()


async def delete_topics(topics: list[str]) -> None:
    if not topics:
        return
    from qmtl.runtime.topicadmin.kafka import KafkaTopicAdmin

    admin = await KafkaTopicAdmin.connect(ServiceEndpoints.from_env().kafka_bootstrap)
    try:
        await admin.delete_topics(topics)
    finally:
        await admin.aclose()


async def wait_ready(process: ServiceProcess, within: float = 30.0) -> None:
    async with httpx.AsyncClient() as http:

        async def ready() -> bool:
            return (await http.get(process.url("internal", "/ready"))).status_code == 200

        await eventually(ready, what=f"qmtl {process.command} /ready", within=within,
                         watch=[process])  # fmt: skip


# -- the Gateway's API, as a client calls it ---------------------------------------------------


class GatewayClient:
    """Protobuf calls to one Gateway's listeners."""

    def __init__(self, http: httpx.AsyncClient, process: ServiceProcess) -> None:
        self.http, self.process = http, process

    async def submit(
        self, request: strategy_messages_pb2.SubmitStrategyRequest
    ) -> tuple[int, strategy_messages_pb2.SubmitStrategyResponse]:
        answer = await self.http.post(
            self.process.url("internal", SUBMIT_PATH),
            content=request.SerializeToString(),
            headers={**bearer("strategies:submit"), "content-type": codec.PROTOBUF,
                     "accept": codec.PROTOBUF},
        )  # fmt: skip
        if answer.status_code not in (200, 202):
            return answer.status_code, strategy_messages_pb2.SubmitStrategyResponse()
        reply = strategy_messages_pb2.SubmitStrategyResponse.FromString(answer.content)
        return answer.status_code, reply

    async def _get(self, path: str, params: dict[str, str | list[str]] | None = None) -> bytes:
        answer = await self.http.get(
            self.process.url("public", path),
            params=params,
            headers={**bearer("strategies:read", "events:read", "work:read"),
                     "accept": codec.PROTOBUF},
        )  # fmt: skip
        assert answer.status_code == 200, f"GET {path}: {answer.status_code} {answer.text}"
        return answer.content

    async def status(self, strategy_id: str) -> strategy_messages_pb2.GetStrategyStatusResponse:
        body = await self._get(f"/v1/gateway/strategies/{strategy_id}/status")
        return strategy_messages_pb2.GetStrategyStatusResponse.FromString(body)

    async def work_item(self, work_item_id: str) -> work_item_pb2.WorkItem:
        body = await self._get(f"/v1/gateway/work/{work_item_id}")
        return work_messages_pb2.GetWorkItemResponse.FromString(body).work_item

    async def state_changes(self, strategy_id: str) -> list[event_pb2.Event]:
        """Every StrategyStateChanged of `strategy_id`, all pages."""
        found: list[event_pb2.Event] = []
        token = ""
        while True:
            params: dict[str, str | list[str]] = {
                "strategy_id": strategy_id,
                "types": [STATE_CHANGED],
                "page.page_size": "100",
            }
            if token:
                params["page.page_token"] = token
            body = await self._get("/v1/gateway/events", params)
            page = event_messages_pb2.ListEventsResponse.FromString(body)
            found.extend(page.events)
            token = page.page_info.next_page_token
            if not token or not page.events:
                return found


async def all_completed(
    client: GatewayClient,
    strategy_ids: Sequence[str],
    *,
    within: float,
    watch: Sequence[ServiceProcess] = (),
) -> dict[str, strategy_messages_pb2.GetStrategyStatusResponse]:
    """Waits until every strategy is COMPLETED; returns their statuses."""
    done: dict[str, strategy_messages_pb2.GetStrategyStatusResponse] = {}

    async def check(strategy_id: str) -> None:
        status = await client.status(strategy_id)
        if status.state == COMPLETED:
            done[strategy_id] = status

    async def every_one() -> bool:
        pending = [s for s in strategy_ids if s not in done]
        for start in range(0, len(pending), 20):
            await asyncio.gather(*(check(s) for s in pending[start : start + 20]))
        return len(done) == len(strategy_ids)

    await eventually(every_one, what=f"{len(strategy_ids)} strategies COMPLETED", within=within,
                     watch=watch)  # fmt: skip
    return done
