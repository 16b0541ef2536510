"""KafkaTopicAdmin: the TopicAdmin port on aiokafka's admin client (docs/operations/topics.md).

`ensure_topics` follows domain.md §2.6's CREATE_TOPICS -> VERIFY -> WAIT -> BACKOFF:
CreateTopics with the broker settings only (the `qmtl.*` keys stay out; Kafka rejects unknown
configs), replication clamped to the brokers DescribeCluster reports; "already exists" is
verified against the spec (TopicConfigMismatchError if it differs); created topics are
waited for until the broker's metadata shows them, so a producer can use them at once.
A retriable broker answer (no controller yet, a timeout, a topic still being deleted) is
retried with exponential backoff, then reported as a retryable TopicAdminError.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import (
    ConfigResource,
    ConfigResourceType,
)
from aiokafka.errors import (
    KafkaError,
    KafkaTimeoutError,
    for_code,
)
from aiokafka.protocol.metadata import MetadataRequest

from .errors import InvalidTopicError, Operation, TopicAdminError, TopicConfigMismatchError
from .spec import TopicSpec
from .verify import (
    DESCRIBED_KEYS,
    RETENTION_KEY,
    broker_config,
    check_matches,
    check_names,
    clamped_replication,
    wanted_specs,
)

log = logging.getLogger(__name__)

_T = TypeVar("_T")

# Kafka protocol error codes the adapter treats specially (org.apache.kafka.common.protocol.Errors).
_NONE: Final = 0
_UNKNOWN_TOPIC: Final = 3
_TOPIC_EXISTS: Final = 36
_INVALID_CONFIG: Final = 40
# Per-topic codes that describe the request, not the broker's state: the caller's input.
_INPUT_ERRORS: Final = frozenset({37, 38, 39, _INVALID_CONFIG, 42})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently one call retries a retriable broker answer. The defaults
    are domain.md §2.6's: 5 attempts, 0.5 s first wait, doubling, at most 4 s."""

    attempts: int = 5
    initial_backoff: float = 0.5
    max_backoff: float = 4.0
    multiplier: float = 2.0
    # How long a created (deleted) topic may take to appear in (vanish from) the metadata.
    settle_timeout: float = 10.0

    def backoff(self, attempt: int) -> float:
        """The wait after the `attempt`-th (1-based) failed try."""
        return float(min(self.max_backoff, self.initial_backoff * self.multiplier ** (attempt - 1)))


class _Retry(Exception):
    """One attempt saw a retriable answer; the message says which."""


class KafkaTopicAdmin:
    def __init__(self, client: Any, *, retry: RetryPolicy, request_timeout_ms: int) -> None:
        self._client = client
        self._retry = retry
        self._timeout_ms = request_timeout_ms
        self._closed = False

    @classmethod
    async def connect(
        cls,
        bootstrap: str,
        *,
        client_id: str = "qmtl-topicadmin",
        retry: RetryPolicy | None = None,
        request_timeout_ms: int = 10_000,
    ) -> KafkaTopicAdmin:
        """Connects to the cluster at `bootstrap` ("host:port[,host:port]"); an unreachable
        cluster is a retryable TopicAdminError (operation "connect") after the retries."""
        policy = retry or RetryPolicy()
        client = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap,
            client_id=client_id,
            request_timeout_ms=request_timeout_ms,
        )
        admin = cls(client, retry=policy, request_timeout_ms=request_timeout_ms)
        try:
            await admin._retrying("connect", (), client.start)
        except TopicAdminError:
            await client.close()
            raise
        return admin

    # --- the port -------------------------------------------------------------------------

    async def ensure_topics(self, specs: Sequence[TopicSpec]) -> list[str]:
        self._check_open("create")
        wanted = wanted_specs(specs)
        if not wanted:
            return []
        # Where each name first appears in `specs`, for the field of a refused spec.
        positions = {spec.name: index for index, spec in reversed(list(enumerate(specs)))}
        brokers = await self._retrying("create", list(wanted), self._broker_count)
        created: set[str] = set()
        pending = dict(wanted)
        mismatch: list[TopicConfigMismatchError] = []

        async def attempt() -> None:
            existing = await self._create(pending, positions, brokers, created)
            for name in existing:
                try:
                    await self._verify(wanted[name], brokers)
                except TopicConfigMismatchError as exc:
                    mismatch.append(exc)
                del pending[name]
            fresh = [name for name in created if name in pending]
            await self._settle(fresh, present=True)
            for name in fresh:
                del pending[name]

        await self._retrying("create", list(wanted), attempt)
        if mismatch:
            raise mismatch[0]
        return [name for name in wanted if name in created]

    async def delete_topics(self, names: Sequence[str]) -> list[str]:
        self._check_open("delete")
        check_names(names, "delete")
        unique = list(dict.fromkeys(names))
        if not unique:
            return []
        deleted: set[str] = set()
        pending = list(unique)

        async def attempt() -> None:
            if pending:  # empty once only the WAIT for earlier deletes timed out
                response = await self._client.delete_topics(pending, timeout_ms=self._timeout_ms)
                retry: list[str] = []
                for topic, code in _delete_results(response):
                    if code == _NONE:
                        deleted.add(topic)
                    elif code != _UNKNOWN_TOPIC:
                        self._classify(code, topic, "delete", retry)
                pending[:] = retry
                if retry:
                    raise _Retry(f"delete of {retry} answered a retriable error")
            await self._settle(sorted(deleted), present=False)

        await self._retrying("delete", unique, attempt)
        return [name for name in unique if name in deleted]

    async def list_topics(self) -> dict[str, TopicSpec]:
        self._check_open("list")

        async def attempt() -> dict[str, TopicSpec]:
            names = [
                str(n) for n in await self._client.list_topics() if not str(n).startswith("__")
            ]
            return await self._describe(names)

        return await self._retrying("list", (), attempt)

    async def describe_topics(self, names: Sequence[str]) -> dict[str, TopicSpec]:
        self._check_open("describe")
        check_names(names, "describe")
        unique = list(dict.fromkeys(names))
        if not unique:
            return {}
        return await self._retrying("describe", unique, lambda: self._describe(unique))

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._client.close()

    # --- steps ----------------------------------------------------------------------------

    async def _broker_count(self) -> int:
        cluster = await self._client.describe_cluster()
        brokers = len(cluster.get("brokers") or ())
        if brokers < 1:
            raise _Retry("the cluster reports no brokers yet")
        return brokers

    async def _create(
        self,
        pending: dict[str, TopicSpec],
        positions: dict[str, int],
        brokers: int,
        created: set[str],
    ) -> list[str]:
        """Sends CreateTopics for the pending specs not yet created; adds what the broker
        created to `created` and returns the names that already existed."""
        to_send = [spec for name, spec in pending.items() if name not in created]
        if not to_send:
            return []
        request = [
            NewTopic(
                spec.name,
                spec.partitions,
                clamped_replication(spec.replication_factor, brokers),
                topic_configs=broker_config(spec),
            )
            for spec in to_send
        ]
        response = await self._client.create_topics(request, timeout_ms=self._timeout_ms)
        existing: list[str] = []
        retry: list[str] = []
        for topic, code, message in _create_results(response):
            if code == _NONE:
                created.add(topic)
            elif code == _TOPIC_EXISTS:
                existing.append(topic)
            elif code in _INPUT_ERRORS:
                index = positions[topic]
                field = f"specs[{index}].config" if code == _INVALID_CONFIG else f"specs[{index}]"
                raise InvalidTopicError(
                    f"the broker refused {topic!r}: {message}", field=field, topic=topic
                )
            else:
                self._classify(code, topic, "create", retry, message)
        if retry:
            # Created ones stay in `created`, so the next attempt only resends the rest.
            raise _Retry(f"create of {retry} answered a retriable error")
        return existing

    async def _verify(self, wanted: TopicSpec, brokers: int) -> None:
        described = await self._describe_full([wanted.name])
        if wanted.name not in described:
            # "Already exists" but not in the metadata: it is being deleted; create it again.
            raise _Retry(f"topic {wanted.name!r} exists but is not described yet (being deleted?)")
        actual, config = described[wanted.name]
        check_matches(wanted, actual, config, brokers=brokers)

    async def _settle(self, names: Sequence[str], *, present: bool) -> None:
        """Waits until every name is (present) or is no longer (not present) in the metadata
        with a leader for each partition, polling with the retry backoff; a timeout is retried
        like any retriable answer."""
        if not names:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._retry.settle_timeout
        poll = 1
        while True:
            shown = await self._metadata(names)
            if all((name in shown) == present for name in names):
                return
            if loop.time() > deadline:
                state = "appear in" if present else "vanish from"
                raise _Retry(f"topics {list(names)} did not {state} the metadata in time")
            await asyncio.sleep(min(0.05 * poll, self._retry.max_backoff))
            poll += 1

    async def _metadata(self, names: Sequence[str]) -> dict[str, int]:
        """The partitions count of each name the metadata shows with every partition led."""
        shown: dict[str, int] = {}
        for topic in await self._topic_metadata(names):
            code = int(topic.get("error_code", 0))
            partitions = topic.get("partitions") or []
            led = partitions and all(int(p.get("leader", -1)) >= 0 for p in partitions)
            if code == _NONE and led:
                shown[str(topic["topic"])] = len(partitions)
            elif code not in (_NONE, _UNKNOWN_TOPIC) and not _retriable(code):
                raise _broker_error(code, str(topic["topic"]), "describe")
        return shown

    async def _topic_metadata(self, names: Sequence[str]) -> list[dict[str, Any]]:
        """The Metadata answer for `names`, asked with auto-creation OFF: aiokafka's own
        describe_topics allows it, and a broker with auto-create on would then create every
        topic we merely look at (and recreate the ones GC just deleted)."""
        request = MetadataRequest(list(names), allow_auto_topic_creation=False)
        response = await self._client._send_request(request)
        topics: list[dict[str, Any]] = response.to_object()["topics"]
        return topics

    async def _describe(self, names: Sequence[str]) -> dict[str, TopicSpec]:
        return {name: spec for name, (spec, _) in (await self._describe_full(names)).items()}

    async def _describe_full(
        self, names: Sequence[str]
    ) -> dict[str, tuple[TopicSpec, dict[str, str]]]:
        """Each existing topic's spec (broker settings only) and every config it reports."""
        if not names:
            return {}
        layout: dict[str, tuple[int, int]] = {}
        for topic in await self._topic_metadata(names):
            code = int(topic.get("error_code", 0))
            name = str(topic["topic"])
            if code == _UNKNOWN_TOPIC:
                continue
            if code != _NONE:
                if _retriable(code):
                    raise _Retry(f"describing {name!r} answered {for_code(code).__name__}")
                raise _broker_error(code, name, "describe")
            partitions = topic.get("partitions") or []
            replicas = len(partitions[0].get("replicas") or ()) if partitions else 0
            layout[name] = (len(partitions), replicas)
        if not layout:
            return {}
        resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in layout]
        configs: dict[str, dict[str, str]] = {}
        for response in await self._client.describe_configs(resources):
            for resource in response.to_object()["resources"]:
                name, code = str(resource["resource_name"]), int(resource["error_code"])
                if code == _UNKNOWN_TOPIC:
                    layout.pop(name, None)  # deleted between the two requests
                    continue
                if code != _NONE:
                    if _retriable(code):
                        raise _Retry(f"configs of {name!r} answered {for_code(code).__name__}")
                    raise _broker_error(code, name, "describe")
                configs[name] = {
                    str(entry["config_names"]): str(entry["config_value"])
                    for entry in resource["config_entries"]
                    if entry["config_value"] is not None
                }
        described: dict[str, tuple[TopicSpec, dict[str, str]]] = {}
        for name, (partitions, replicas) in layout.items():
            config = configs.get(name)
            if config is None or partitions == 0:
                raise _Retry(f"topic {name!r} is not fully described yet")
            shown: dict[str, str] = {k: config[k] for k in DESCRIBED_KEYS if k in config}
            retention = int(config.get(RETENTION_KEY, "-1"))
            described[name] = (TopicSpec(name, partitions, replicas, retention, shown), config)
        return described

    # --- retries and errors ---------------------------------------------------------------

    async def _retrying(
        self, operation: Operation, topics: Sequence[str], step: Callable[[], Awaitable[_T]]
    ) -> _T:
        """Runs `step` until it returns, retrying retriable failures with backoff; the last
        one becomes a retryable TopicAdminError once the attempts are used up."""
        attempts = max(1, self._retry.attempts)
        for attempt in range(1, attempts + 1):
            try:
                return await step()
            except TopicAdminError:
                raise
            except (TimeoutError, _Retry, KafkaError, OSError) as exc:
                # aiokafka marks its own client-side timeout not retriable; for us it is
                # the same as the broker's RequestTimedOut: try again.
                if (
                    isinstance(exc, KafkaError)
                    and not exc.retriable
                    and not isinstance(exc, KafkaTimeoutError)
                ):
                    raise TopicAdminError(
                        f"the broker failed {operation}: {exc!r}",
                        operation=operation,
                        topics=topics,
                        retryable=False,
                        attempts=attempt,
                    ) from exc
                if attempt == attempts:
                    raise TopicAdminError(
                        f"the broker failed {operation} {attempts} times, last: {exc!r}",
                        operation=operation,
                        topics=topics,
                        retryable=True,
                        attempts=attempt,
                    ) from exc
                wait = self._retry.backoff(attempt)
                log.info(
                    "topicadmin: %s failed (%r); retry %d in %.2fs", operation, exc, attempt, wait
                )
                await asyncio.sleep(wait)
        raise AssertionError("unreachable: the loop returns or raises")

    def _classify(
        self, code: int, topic: str, operation: Operation, retry: list[str], message: str = ""
    ) -> None:
        if _retriable(code):
            retry.append(topic)
            return
        raise _broker_error(code, topic, operation, message)

    def _check_open(self, operation: Operation) -> None:
        if self._closed:
            raise TopicAdminError("the topic admin is closed", operation=operation, retryable=False)


def _retriable(code: int) -> bool:
    return bool(getattr(for_code(code), "retriable", False))


def _broker_error(
    code: int, topic: str, operation: Operation, message: str = ""
) -> TopicAdminError:
    name = for_code(code).__name__
    return TopicAdminError(
        f"the broker refused {operation} of {topic!r}: {name} {message or ''}".rstrip(),
        operation=operation,
        topics=(topic,),
        retryable=False,
    )


def _create_results(response: Any) -> list[tuple[str, int, str]]:
    return [
        (str(t["topic"]), int(t["error_code"]), str(t.get("error_message") or ""))
        for t in response.to_object()["topic_errors"]
    ]


def _delete_results(response: Any) -> list[tuple[str, int]]:
    return [
        (str(t["topic"]), int(t["error_code"])) for t in response.to_object()["topic_error_codes"]
    ]
