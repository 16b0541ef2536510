"""The callback delivery handler against an in-process HTTP transport (httpx.MockTransport)
and the in-memory event bus: what one attempt sends, how each outcome is classified for the
work queue, and when the AlertRaised goes out. The real receiver and Redis queue are in
tests/integration/test_callback_delivery.py."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import httpx
import pytest

from qmtl.events.v1 import event_pb2, strategy_events_pb2
from qmtl.runtime.callbacks import SigningKey, verify
from qmtl.runtime.callbacks.delivery import (
    ALERT_NAME,
    CONTENT_TYPE,
    HEADER_ATTEMPT,
    HEADER_EVENT_ID,
    HEADER_EVENT_TYPE,
    CallbackDeliverer,
    CallbackDeliveryError,
    callback_job,
    static_key,
)
from qmtl.runtime.eventbus import OPS_EVENTS, EventBusError, InMemoryEventBus, decode
from qmtl.work.v1 import work_item_pb2, work_type_pb2

KEY = SigningKey("k1", b"s" * 32)
NOW = 1_700_000_000.0
URL = "https://hooks.example.com/qmtl?token=receiver-secret"


def event() -> event_pb2.Event:
    found = event_pb2.Event(
        id="6f1c0a4e-0d5b-4c8e-9a57-3d1f0b2a9c01",
        type="qmtl.gateway.strategy_state_changed",
        source="qmtl/gateway/gw-1",
        subject="strategies/s-1",
        strategy_state_changed=strategy_events_pb2.StrategyStateChanged(strategy_id="s-1"),
    )
    found.time.FromSeconds(int(NOW))
    return found


def job(attempts: int = 1, max_attempts: int = 3, url: str = URL) -> work_item_pb2.WorkItem:
    item, _ = callback_job("s-1", url, event(), max_attempts=max_attempts)
    item.id = "job-1"
    item.attempts = attempts
    return item


Responder = Callable[[httpx.Request], httpx.Response]


class Fixture:
    def __init__(self, responder: Responder, bus: InMemoryEventBus | None = None) -> None:
        self.requests: list[httpx.Request] = []

        def handle(request: httpx.Request) -> httpx.Response:
            self.requests.append(request)
            return responder(request)

        self.client = httpx.AsyncClient(transport=httpx.MockTransport(handle))
        self.bus = bus or InMemoryEventBus()
        self.deliverer = CallbackDeliverer(
            self.client, static_key(KEY), self.bus, clock=lambda: NOW
        )

    def alerts(self) -> list[event_pb2.Event]:
        return [decode(r.value, r.headers) for r in self.bus.records(OPS_EVENTS)]


def status(code: int) -> Responder:
    return lambda _request: httpx.Response(code)


async def test_a_delivery_posts_the_signed_event() -> None:
    fixture = Fixture(status(204))
    assert await fixture.deliverer(job(attempts=2)) == b""
    [request] = fixture.requests
    assert request.method == "POST"
    assert str(request.url) == URL
    assert request.headers["content-type"] == CONTENT_TYPE
    assert request.headers[HEADER_EVENT_ID] == event().id
    assert request.headers[HEADER_EVENT_TYPE] == event().type
    assert request.headers[HEADER_ATTEMPT] == "2"
    assert event_pb2.Event.FromString(request.content) == event()
    verified = verify(request.headers, request.content, {"k1": KEY.secret}, now=NOW)
    assert (verified.timestamp, verified.key_id) == (int(NOW), "k1")
    assert fixture.alerts() == []


async def test_each_attempt_signs_with_the_key_current_then() -> None:
    keys = [SigningKey("old", b"o" * 32), SigningKey("new", b"n" * 32)]
    fixture = Fixture(status(200))
    fixture.deliverer.keys = lambda _strategy: keys[len(fixture.requests)]
    await fixture.deliverer(job())
    await fixture.deliverer(job())
    ids = [r.headers["QMTL-Signature"].split(",")[1] for r in fixture.requests]
    assert ids == ["k=old", "k=new"]


@pytest.mark.parametrize("code", [500, 502, 503, 504, 408, 429])
async def test_server_errors_throttling_and_timeouts_answers_are_retried(code: int) -> None:
    fixture = Fixture(status(code))
    with pytest.raises(CallbackDeliveryError) as caught:
        await fixture.deliverer(job())
    assert caught.value.retryable
    assert caught.value.status == code
    assert caught.value.code == "E_CALLBACK_DELIVERY"
    assert fixture.alerts() == []


@pytest.mark.parametrize("code", [400, 401, 403, 404, 410, 413, 422, 301, 302, 100])
async def test_other_answers_are_permanent_and_alert_at_once(code: int) -> None:
    fixture = Fixture(status(code))
    with pytest.raises(CallbackDeliveryError) as caught:
        await fixture.deliverer(job(attempts=1, max_attempts=5))
    assert not caught.value.retryable
    assert caught.value.details()["status"] == code
    [alert] = fixture.alerts()
    assert alert.alert_raised.name == ALERT_NAME


def raising(exc: Exception) -> Responder:
    def respond(_request: httpx.Request) -> httpx.Response:
        raise exc

    return respond


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectError("connection refused"),
        httpx.ConnectTimeout("connect timed out"),
        httpx.ReadTimeout("read timed out"),
        httpx.RemoteProtocolError("peer closed the connection"),
    ],
)
async def test_transport_failures_are_retried(exc: Exception) -> None:
    fixture = Fixture(raising(exc))
    with pytest.raises(CallbackDeliveryError) as caught:
        await fixture.deliverer(job())
    assert caught.value.retryable
    assert caught.value.status == 0


async def test_the_last_retryable_failure_raises_one_alert() -> None:
    fixture = Fixture(status(503))
    with pytest.raises(CallbackDeliveryError):
        await fixture.deliverer(job(attempts=2, max_attempts=3))
    assert fixture.alerts() == []
    with pytest.raises(CallbackDeliveryError):
        await fixture.deliverer(job(attempts=3, max_attempts=3))
    [alert] = fixture.alerts()
    assert alert.type == "qmtl.ops.alert_raised"
    assert alert.subject == "services/gateway"
    assert alert.correlation_id == "job-1"
    assert alert.idempotency_key == "callback_dead_lettered:job-1:3"
    raised = alert.alert_raised
    assert raised.target_id == "s-1"
    assert raised.attributes["event_id"] == event().id
    assert raised.attributes["attempts"] == "3"
    assert "HTTP 503" in raised.attributes["error"]
    # The query may hold the receiver's token: neither the alert nor the error repeats it.
    assert raised.attributes["target"] == "https://hooks.example.com/qmtl"
    assert "receiver-secret" not in alert.SerializeToString().decode(errors="replace")


async def test_a_url_that_breaks_the_rules_is_never_requested() -> None:
    fixture = Fixture(status(200))
    with pytest.raises(CallbackDeliveryError) as caught:
        await fixture.deliverer(job(url="https://user:pw@hooks.example.com/x"))
    assert not caught.value.retryable
    assert fixture.requests == []
    assert len(fixture.alerts()) == 1


async def test_the_allow_list_is_enforced_at_delivery_too() -> None:
    fixture = Fixture(status(200))
    fixture.deliverer.allowed_hosts = ["other.example.com"]
    with pytest.raises(CallbackDeliveryError) as caught:
        await fixture.deliverer(job())
    assert not caught.value.retryable
    assert fixture.requests == []


async def test_a_job_of_another_type_is_dead_lettered_with_an_alert() -> None:
    fixture = Fixture(status(200))
    item = job()
    item.type = work_type_pb2.WORK_TYPE_OTHER
    with pytest.raises(CallbackDeliveryError) as caught:
        await fixture.deliverer(item)
    assert not caught.value.retryable
    [alert] = fixture.alerts()
    assert alert.alert_raised.target_id == "s-1"


async def test_an_undecodable_payload_is_permanent() -> None:
    fixture = Fixture(status(200))
    item = job()
    item.payload = b"\xff\xff\xff"
    with pytest.raises(CallbackDeliveryError) as caught:
        await fixture.deliverer(item)
    assert not caught.value.retryable
    assert fixture.requests == []


async def test_a_crash_in_the_key_lookup_is_a_retryable_failure() -> None:
    fixture = Fixture(status(200))

    def broken(_strategy: str) -> SigningKey:
        raise LookupError("key store down")

    fixture.deliverer.keys = broken
    with pytest.raises(CallbackDeliveryError) as caught:
        await fixture.deliverer(job(attempts=3, max_attempts=3))
    assert caught.value.retryable
    assert "key store down" in caught.value.message
    assert len(fixture.alerts()) == 1


class RefusingBus(InMemoryEventBus):
    async def publish(self, topic: str, events: Sequence[event_pb2.Event]) -> None:
        raise EventBusError("broker down", operation="publish", topics=[topic])


async def test_a_bus_that_refuses_the_alert_does_not_hide_the_failure() -> None:
    fixture = Fixture(status(404), bus=RefusingBus())
    with pytest.raises(CallbackDeliveryError) as caught:
        await fixture.deliverer(job())
    assert caught.value.status == 404
