"""Which Redis replies the work queue (and the outbox, which shares its call helpers) treats as
"not now" (retryable) and which as a refusal."""

from __future__ import annotations

import pytest
from redis.exceptions import (
    ConnectionError,
    MasterDownError,
    OutOfMemoryError,
    RedisError,
    ResponseError,
    TryAgainError,
)

from qmtl.runtime.workqueue.errors import QueueUnavailableError, WorkQueueError
from qmtl.runtime.workqueue.redis_calls import raise_for_redis_error


@pytest.mark.parametrize(
    "exc",
    [
        # redis-py strips the reply code from these three: the class is all that is left.
        OutOfMemoryError("command not allowed when used memory > 'maxmemory'."),
        TryAgainError("Multiple keys request during rehashing of slot"),
        MasterDownError("Link with MASTER is down and replica-serve-stale-data is set to 'no'."),
        ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused."),
        ResponseError("LOADING Redis is loading the dataset in memory"),
    ],
)
def test_a_transient_refusal_is_unavailable_and_retryable(exc: RedisError) -> None:
    with pytest.raises(QueueUnavailableError) as raised:
        raise_for_redis_error(exc)
    assert raised.value.retryable


def test_a_script_error_is_a_plain_refusal() -> None:
    with pytest.raises(WorkQueueError) as raised:
        raise_for_redis_error(ResponseError("WRONGTYPE Operation against a key"))
    assert not isinstance(raised.value, QueueUnavailableError)
