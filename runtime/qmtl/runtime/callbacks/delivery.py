"""Delivering strategy callbacks through the durable work queue.

`enqueue_callback` turns one event for one strategy into a WORK_TYPE_CALLBACK_DELIVERY job;
`CallbackDeliverer` is the queue worker's handler for such jobs: it POSTs the serialized
`qmtl.events.v1.Event` as `application/x-protobuf`, signed (signing.py), and tells the queue
whether a failure may be retried. The queue supplies the retries (its BackoffPolicy) and the
dead letter; when a failure is the job's last, the deliverer first publishes an `AlertRaised`
on the event bus. docs/operations/callbacks.md describes all of it.

httpx is the runtime's optional `client` extra, so this module is imported on demand
(`qmtl.runtime.callbacks.delivery`), not by the package.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from google.protobuf.message import DecodeError

from qmtl.events.v1 import alert_events_pb2, event_pb2
from qmtl.runtime import contracts_version
from qmtl.runtime.alerts.model import CALLBACK_DEAD_LETTERED, runbook_anchor
from qmtl.runtime.eventbus import EventBus, EventBusError, topic_for_event_type
from qmtl.runtime.workqueue import EnqueueResult, JobFailedError, WorkQueue
from qmtl.work.v1 import callback_delivery_pb2, work_item_pb2, work_type_pb2

from .errors import InvalidCallbackUrlError
from .signing import SigningKey, sign
from .urls import validate_callback_url

log = logging.getLogger(__name__)

CONTENT_TYPE = "application/x-protobuf"
MESSAGE_TYPE = "qmtl.events.v1.Event"
PAYLOAD_TYPE = "qmtl.work.v1.CallbackDelivery"
HEADER_MESSAGE_TYPE = "QMTL-Message-Type"
HEADER_EVENT_ID = "QMTL-Event-Id"
HEADER_EVENT_TYPE = "QMTL-Event-Type"
HEADER_ATTEMPT = "QMTL-Delivery-Attempt"
USER_AGENT = "qmtl-callbacks/1"

DEFAULT_MAX_ATTEMPTS = 8
"""Tries per callback before the dead letter; with the queue's default backoff (1 s doubling,
capped at 300 s) the last one comes about two minutes after the first."""
DEFAULT_TIMEOUT = 10.0
"""Seconds each step of one attempt may take: sending the body, waiting for the answer's next
bytes (httpx read/write/pool timeouts); connecting has DEFAULT_CONNECT_TIMEOUT."""
DEFAULT_CONNECT_TIMEOUT = 5.0

ALERT_NAME = CALLBACK_DEAD_LETTERED
ALERT_TYPE = "qmtl.ops.alert_raised"

# Statuses that say "not now" rather than "never": the request may succeed unchanged later.
_RETRYABLE_STATUSES = frozenset({408, 429})


class CallbackDeliveryError(JobFailedError):
    """One delivery attempt failed; `retryable` decides between a retry and the dead letter.

    The code is `E_CALLBACK_DELIVERY`; `status` is the receiver's HTTP status (0 when none came
    back: timeout, refused connection) and is kept in the job's error message.
    """

    default_code = "E_CALLBACK_DELIVERY"

    def __init__(self, message: str, *, retryable: bool, status: int = 0) -> None:
        super().__init__(message, retryable=retryable)
        self.status = status

    def details(self) -> dict[str, Any]:
        details = super().details()
        if self.status:
            details["status"] = self.status
        return details


KeyResolver = Callable[[str], SigningKey]
"""The signing key current for a strategy id; called at every attempt, so a rotated key is
used from the next attempt on."""


def static_key(key: SigningKey) -> KeyResolver:
    """One key for every strategy."""
    return lambda _strategy_id: key


def idempotency_key(strategy_id: str, event_id: str) -> str:
    return f"callback:{strategy_id}:{event_id}"


def callback_job(
    strategy_id: str,
    url: str,
    event: event_pb2.Event,
    *,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> tuple[work_item_pb2.WorkItem, str]:
    """The work item delivering `event` to `url`, and its idempotency key (one job per
    strategy and event id, so publishing the same event twice delivers it once)."""
    payload = callback_delivery_pb2.CallbackDelivery(strategy_id=strategy_id, url=url)
    payload.event.CopyFrom(event)
    item = work_item_pb2.WorkItem(
        type=work_type_pb2.WORK_TYPE_CALLBACK_DELIVERY,
        payload_type=PAYLOAD_TYPE,
        payload=payload.SerializeToString(deterministic=True),
        max_attempts=max_attempts,
        strategy_id=strategy_id,
    )
    return item, idempotency_key(strategy_id, event.id)


async def enqueue_callback(
    queue: WorkQueue,
    strategy_id: str,
    url: str,
    event: event_pb2.Event,
    *,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
) -> EnqueueResult:
    item, key = callback_job(strategy_id, url, event, max_attempts=max_attempts)
    return await queue.enqueue(item, key)


def make_client(
    timeout: float = DEFAULT_TIMEOUT, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
) -> httpx.AsyncClient:
    """The HTTP client deliveries go through: bounded timeouts, no redirects (a redirect could
    send the signed body somewhere the registration did not name), no proxy from the
    environment."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout, connect=connect_timeout),
        follow_redirects=False,
        trust_env=False,
        headers={"User-Agent": USER_AGENT},
    )


@dataclass(frozen=True, slots=True)
class _Job:
    item: work_item_pb2.WorkItem
    delivery: callback_delivery_pb2.CallbackDelivery


class CallbackDeliverer:
    """The work-queue handler of WORK_TYPE_CALLBACK_DELIVERY jobs (`run_worker(queue,
    deliverer, ...)`); give callbacks their own queue name so a slow receiver never delays
    other work."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        keys: KeyResolver,
        bus: EventBus,
        *,
        allowed_hosts: Collection[str] | None = None,
        source: str = "qmtl/gateway",
        service: str = "gateway",
        instance_id: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.keys = keys
        self.bus = bus
        self.allowed_hosts = allowed_hosts
        self.source = source
        self.service = service
        self.instance_id = instance_id
        self.clock = clock

    async def __call__(self, item: work_item_pb2.WorkItem) -> bytes:
        try:
            job = _Job(item, _decode(item))
            await self._post(job)
        except CallbackDeliveryError as error:
            await self._give_up_if_last(item, error)
            raise
        except Exception as exc:  # a resolver or client bug: retried, and alerted when last
            crashed = CallbackDeliveryError(
                f"delivery crashed: {type(exc).__name__}: {exc}", retryable=True
            )
            await self._give_up_if_last(item, crashed)
            raise crashed from exc
        return b""

    async def _post(self, job: _Job) -> None:
        delivery = job.delivery
        try:
            validate_callback_url(delivery.url, field="url", allowed_hosts=self.allowed_hosts)
        except InvalidCallbackUrlError as exc:
            raise CallbackDeliveryError(exc.message, retryable=False) from exc
        body = delivery.event.SerializeToString(deterministic=True)
        headers = sign(self.keys(delivery.strategy_id), body, now=self.clock())
        headers.update(
            {
                "Content-Type": CONTENT_TYPE,
                HEADER_MESSAGE_TYPE: MESSAGE_TYPE,
                HEADER_EVENT_ID: delivery.event.id,
                HEADER_EVENT_TYPE: delivery.event.type,
                HEADER_ATTEMPT: str(job.item.attempts),
                # Lets the receiver tell an Event of contracts it cannot read (another major).
                contracts_version.HEADER: contracts_version.SPOKEN,
            }
        )
        target = _describe(delivery.url)
        try:
            # stream(): the receiver's answer body is never read, so its size cannot matter.
            async with self.client.stream(
                "POST", delivery.url, content=body, headers=headers
            ) as response:
                status = response.status_code
        except httpx.TimeoutException as exc:
            raise CallbackDeliveryError(
                f"{target}: timed out ({type(exc).__name__})", retryable=True
            ) from exc
        except httpx.UnsupportedProtocol as exc:
            raise CallbackDeliveryError(f"{target}: {exc}", retryable=False) from exc
        except httpx.TransportError as exc:
            raise CallbackDeliveryError(
                f"{target}: connection failed ({type(exc).__name__}: {exc})", retryable=True
            ) from exc
        except httpx.InvalidURL as exc:
            raise CallbackDeliveryError(f"{target}: {exc}", retryable=False) from exc
        if 200 <= status < 300:
            return
        retryable = status >= 500 or status in _RETRYABLE_STATUSES
        raise CallbackDeliveryError(
            f"{target} answered HTTP {status}", retryable=retryable, status=status
        )

    async def _give_up_if_last(
        self, item: work_item_pb2.WorkItem, error: CallbackDeliveryError
    ) -> None:
        """Publishes the AlertRaised of a job this failure dead-letters. The dead letter is the
        durable record; a bus that refuses the alert is logged and does not keep the job."""
        if error.retryable and item.attempts < item.max_attempts:
            return
        alert = self.alert_for(item, error)
        try:
            await self.bus.publish(topic_for_event_type(ALERT_TYPE), [alert])
        except EventBusError as exc:
            log.error("could not publish the alert for dead callback job %s: %s", item.id, exc)

    def alert_for(
        self, item: work_item_pb2.WorkItem, error: CallbackDeliveryError
    ) -> event_pb2.Event:
        strategy_id, url, event_id, event_type = item.strategy_id, "", "", ""
        try:
            delivery = _decode(item)
            strategy_id = delivery.strategy_id or strategy_id
            url, event_id, event_type = delivery.url, delivery.event.id, delivery.event.type
        except CallbackDeliveryError:
            pass  # the alert still names the job; its error says the payload was bad
        attributes = {
            "job_id": item.id,
            "attempts": str(item.attempts),
            "error_code": error.code,
            "error": error.message,
        }
        if url:
            attributes["target"] = _describe(url)
        if event_id:
            attributes["event_id"] = event_id
            attributes["event_type"] = event_type
        alert = alert_events_pb2.AlertRaised(
            level=alert_events_pb2.ALERT_LEVEL_ERROR,
            name=ALERT_NAME,
            target_id=strategy_id,
            message=(
                f"callback of strategy {strategy_id or '(none)'} dead-lettered after "
                f"{item.attempts} attempt(s): {error.message}"
            ),
            attributes=attributes,
            # One-off: each dead job is its own condition, never resolved.
            state=alert_events_pb2.ALERT_STATE_FIRING,
            dedupe_key=f"{ALERT_NAME}:{item.id}",
            service=self.service,
            instance_id=self.instance_id,
            runbook=runbook_anchor(ALERT_NAME),
        )
        event = event_pb2.Event(
            id=str(uuid.uuid4()),
            type=ALERT_TYPE,
            source=self.source,
            subject=f"services/{self.service}",
            # One alert per dead-lettering attempt: a handler re-run for the same lease (the
            # settle call lost) publishes the same key, and consumers drop the duplicate.
            idempotency_key=f"callback_dead_lettered:{item.id}:{item.attempts}",
            correlation_id=item.id,
            alert_raised=alert,
        )
        event.time.FromNanoseconds(int(self.clock() * 1e9))
        return event


def _decode(item: work_item_pb2.WorkItem) -> callback_delivery_pb2.CallbackDelivery:
    if item.type != work_type_pb2.WORK_TYPE_CALLBACK_DELIVERY or item.payload_type != PAYLOAD_TYPE:
        raise CallbackDeliveryError(
            f"not a callback job (type {item.type}, payload {item.payload_type!r})",
            retryable=False,
        )
    try:
        return callback_delivery_pb2.CallbackDelivery.FromString(item.payload)
    except DecodeError as exc:
        raise CallbackDeliveryError(
            f"the job's CallbackDelivery payload does not decode: {exc}", retryable=False
        ) from exc


def _describe(url: str) -> str:
    """The URL without its query: a query may carry a receiver's token, and this text lands
    in logs, the job's error and the alert."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(unparsable URL)"
    return f"{parts.scheme}://{parts.netloc}{parts.path}"
