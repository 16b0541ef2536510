"""A Redis that accepts connections but does not answer: every call fails fast, typed, and the
worker and reaper come back on their own once it answers again (issue 8, item 2).

Two kinds of silence: a TCP listener that accepts and never replies (a half-open connection,
a wedged proxy), and a real, private redis-server frozen by `DEBUG SLEEP`. The shared server on
6379 is never touched: DEBUG is disabled there (and in scripts/services/redis.sh's config, where
`enable-debug-command` cannot be changed at runtime), so the sleeping server is our own.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import redis.asyncio as redis

from qmtl.common.v1 import error_pb2
from qmtl.runtime.workqueue import (
    ALL_DEAD,
    Completion,
    QueueProfile,
    QueueSettings,
    QueueUnavailableError,
    RedisWorkQueue,
    Shutdown,
    WorkerSettings,
    open_work_queue,
    run_worker,
)
from qmtl.work.v1 import work_item_pb2, work_state_pb2, work_type_pb2
from tests.polling import eventually

from .workqueue_support import free_port

CALL_TIMEOUT = 0.2
# Generous: a call must fail well within this, but how fast exactly is not asserted.
BOUND = 10 * CALL_TIMEOUT

COMPLETED = work_state_pb2.WORK_STATE_COMPLETED


def item() -> work_item_pb2.WorkItem:
    return work_item_pb2.WorkItem(
        type=work_type_pb2.WORK_TYPE_OTHER, payload_type="qmtl.test.Payload", payload=b"p"
    )


@pytest.fixture
async def silent_url() -> AsyncIterator[str]:
    """A listener that accepts every connection and never writes a byte back."""
    held: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        while await reader.read(65536):
            pass

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


QueueCall = Callable[[RedisWorkQueue], Awaitable[object]]
_ERROR = error_pb2.ErrorDetail(code="E_TEST", message="boom")

# Every method of the WorkQueue port (aclose needs no answer from the server).
PORT_CALLS: dict[str, QueueCall] = {
    "enqueue": lambda q: q.enqueue(item(), "k1"),
    "enqueue_many": lambda q: q.enqueue_many([(item(), "k1"), (item(), "k2")]),
    "lease": lambda q: q.lease("w", 5.0),
    "lease_many": lambda q: q.lease_many("w", 5.0, 3),
    "extend": lambda q: q.extend("job", "w:t.1", 5.0),
    "complete": lambda q: q.complete("job", "w:t.1", b"r"),
    "complete_many": lambda q: q.complete_many([Completion("job", "w:t.1", b"r")]),
    "fail": lambda q: q.fail("job", "w:t.1", _ERROR, True),
    "release": lambda q: q.release("job", "w:t.1"),
    "reap_expired": lambda q: q.reap_expired(),
    "stats": lambda q: q.stats(),
    "get": lambda q: q.get("job"),
    "redrive_ids": lambda q: q.redrive(["job"]),
    "redrive_all": lambda q: q.redrive(ALL_DEAD),
    "purge_dead": lambda q: q.purge_dead(0.0),
}


def _queue(url: str, built_by: str) -> RedisWorkQueue:
    settings = QueueSettings(call_timeout=CALL_TIMEOUT)
    if built_by == "from_url":
        return RedisWorkQueue.from_url(url, "silent", settings)
    # A caller's own client with no socket timeouts at all: the queue's deadline still holds.
    client = redis.Redis.from_url(url, socket_timeout=None, socket_connect_timeout=None)
    return RedisWorkQueue(client, "silent", settings, owns_client=True)


@pytest.mark.parametrize("built_by", ["from_url", "own_client"])
@pytest.mark.parametrize("call", sorted(PORT_CALLS))
async def test_every_port_call_to_a_silent_server_fails_unavailable_within_the_timeout(
    silent_url: str, built_by: str, call: str
) -> None:
    queue = _queue(silent_url, built_by)
    try:
        with pytest.raises(QueueUnavailableError) as raised:
            await asyncio.wait_for(PORT_CALLS[call](queue), BOUND)
        assert raised.value.retryable
    finally:
        await asyncio.wait_for(queue.aclose(), BOUND)


@pytest.mark.parametrize("profile", [QueueProfile.DEVELOPMENT, QueueProfile.PRODUCTION])
async def test_the_start_up_check_of_a_silent_server_fails_unavailable(
    silent_url: str, profile: QueueProfile
) -> None:
    settings = QueueSettings(call_timeout=CALL_TIMEOUT)
    with pytest.raises(QueueUnavailableError):
        await asyncio.wait_for(
            open_work_queue(profile, name="silent", redis_url=silent_url, settings=settings),
            BOUND,
        )


# -- a real server frozen by DEBUG SLEEP -------------------------------------------------------


class SleepyRedis:
    """A throwaway redis-server of our own (no persistence) that allows DEBUG from localhost."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        binary = shutil.which("redis-server")
        assert binary, "redis-server not found: run `make setup`"
        self.proc = subprocess.Popen(
            [
                binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--dir",
                str(workdir),
                "--save",
                "",
                "--appendonly",
                "no",
                "--enable-debug-command",
                "local",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )

    async def wait_ready(self) -> None:
        client = redis.Redis.from_url(self.url, socket_timeout=1, socket_connect_timeout=1)

        async def answers() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"redis-server exited with {self.proc.returncode}")
            try:
                return bool(await client.ping())
            except redis.ConnectionError:
                return False

        try:
            await eventually(answers, what="the private redis-server to answer")
        finally:
            await client.aclose()

    async def sleep(self, seconds: float) -> asyncio.subprocess.Process:
        """Starts `redis-cli DEBUG SLEEP`; the server stops answering until it returns."""
        return await asyncio.create_subprocess_exec(
            "redis-cli",
            "-p",
            str(self.port),
            "DEBUG",
            "SLEEP",
            str(seconds),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def sleepy_redis(tmp_path: Path) -> Iterator[SleepyRedis]:
    server = SleepyRedis(tmp_path)
    try:
        yield server
    finally:
        server.stop()


# Attempts to spare: each lease call cut short by the sleep may cost the orphan one.
SLEEP_SETTINGS = QueueSettings(call_timeout=0.5, default_max_attempts=10)
SLEEP_WORKER = WorkerSettings(
    lease_ttl=2.0,
    poll_interval=0.01,
    reap_interval=0.05,
    max_backoff=0.2,
    reap_max_backoff=0.2,
)


async def _fails_unavailable(call: Awaitable[object]) -> bool:
    try:
        await asyncio.wait_for(call, 10 * SLEEP_SETTINGS.call_timeout)
    except QueueUnavailableError:
        return True
    return False


async def test_worker_and_reaper_back_off_through_a_debug_sleep_and_then_work_again(
    sleepy_redis: SleepyRedis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="qmtl.runtime.workqueue")
    await sleepy_redis.wait_ready()
    queue = RedisWorkQueue.from_url(sleepy_redis.url, "sleepy", SLEEP_SETTINGS)

    async def handler(job: work_item_pb2.WorkItem) -> bytes:
        return b"done:" + job.payload

    async def state_of(job_id: str) -> int | None:
        job = await queue.get(job_id)
        return None if job is None else job.state

    # A crashed worker's lease, due to expire while the server sleeps: only the reaper can
    # give it back, so its completion proves the reaper recovered.
    orphan = (await queue.enqueue(item(), "orphan")).job_id
    assert (await queue.lease("crashed-worker", SLEEP_WORKER.lease_ttl)) is not None

    shutdown = Shutdown()
    worker = asyncio.create_task(
        run_worker(
            queue,
            handler,
            worker_id="survivor",
            settings=SLEEP_WORKER,
            shutdown=shutdown,
            handle_signals=False,
        )
    )
    try:
        before = (await queue.enqueue(item(), "before")).job_id
        await eventually(lambda: _is(state_of(before), COMPLETED), what="a job before the sleep")

        sleeper = await sleepy_redis.sleep(3)
        await eventually(
            lambda: _fails_unavailable(queue.stats()), what="calls to fail during the sleep"
        )
        assert await _fails_unavailable(queue.enqueue(item(), "during"))
        output, _ = await sleeper.communicate()
        assert sleeper.returncode == 0, output
        assert b"OK" in output, output

        after = (await queue.enqueue(item(), "after")).job_id
        await eventually(lambda: _is(state_of(after), COMPLETED), what="a job after the sleep")
        await eventually(lambda: _is(state_of(orphan), COMPLETED), what="the reaped orphan")
        orphan_job = await queue.get(orphan)
        # At least the crashed lease and the survivor's. A lease call cut short by the sleep
        # still runs when the server wakes and may take the job once more, unseen: that lease
        # expires and is reaped like a crashed worker's (docs/operations/redis.md, "Timeouts").
        assert orphan_job is not None
        assert orphan_job.attempts >= 2
    finally:
        shutdown.request()
        report = await asyncio.wait_for(worker, 10)
        await queue.aclose()

    # `reclaimed` may miss the orphan: a reap sent during the sleep runs when the server wakes,
    # after its caller gave up on the reply. The orphan's second attempt shows it was reaped.
    assert report.completed >= 3, report
    messages = [record.getMessage() for record in caplog.records]
    assert any(m.startswith("lease failed") for m in messages), messages
    assert any(m.startswith("leasing works again") for m in messages), messages
    assert any(m.startswith("reaper round failed") for m in messages), messages
    assert any(m.startswith("reaper recovered") for m in messages), messages


async def _is(value: Awaitable[int | None], expected: int) -> bool:
    return await value == expected
