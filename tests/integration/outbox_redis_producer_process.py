"""A Gateway stand-in that changes a strategy's state in Redis with its event in the outbox, then
hangs.

Run by tests/integration/test_outbox_redis_kafka.py: one script (`SET_STATE`, built with
`outbox_script`) checks the strategy's state, sets the new one and appends the
StrategyStateChanged event for the test's private Kafka topic, all in one step. The process
then writes the event id to `--ready` and waits, never relaying: the test SIGKILLs it there,
between the state write and the publish. tests/integration/test_outbox_redis_writer.py uses
the same script in-process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import uuid
from pathlib import Path

import redis.asyncio as redis
from redis.commands.core import AsyncScript

from qmtl.dag.v1 import strategy_pb2
from qmtl.events.v1 import event_pb2, strategy_events_pb2
from qmtl.runtime.endpoints import ServiceEndpoints
from qmtl.runtime.outbox import RedisOutbox, outbox_argv, outbox_script

# A compare-and-set of a strategy's state that announces the transition. Every check comes
# before the first write: Redis keeps a script's writes even when a later command fails.
SET_STATE = """
-- KEYS: the outbox's three (RedisOutboxKeys.as_list()), then the strategy's hash.
-- ARGV: the entry's id, topic and payload (outbox_argv), then the expected and the new state.
local strategy = KEYS[4]
local current = redis.call('HGET', strategy, 'state') or ''
if current ~= ARGV[4] then
  return redis.error_reply('E_INVALID_STATE the state is ' .. current .. ', not ' .. ARGV[4])
end
redis.call('HSET', strategy, 'state', ARGV[5])
qmtl_outbox_append(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3])
return 1
"""

STRATEGY_ID = "s-1"
NEW, QUEUED = strategy_pb2.STRATEGY_STATE_UNSPECIFIED, strategy_pb2.STRATEGY_STATE_QUEUED


def strategy_key(prefix: str) -> str:
    return f"{prefix}strategy:{STRATEGY_ID}"


def state_changed(
    from_state: strategy_pb2.StrategyState.ValueType, to_state: strategy_pb2.StrategyState.ValueType
) -> event_pb2.Event:
    event = event_pb2.Event(
        id=str(uuid.uuid4()),
        type="qmtl.gateway.strategy_state_changed",
        source="outbox-test",
        subject=f"strategies/{STRATEGY_ID}",
        idempotency_key=f"{STRATEGY_ID}:{to_state}",
    )
    event.strategy_state_changed.CopyFrom(
        strategy_events_pb2.StrategyStateChanged(
            strategy_id=STRATEGY_ID, from_state=from_state, to_state=to_state
        )
    )
    return event


def set_state_script(client: redis.Redis) -> AsyncScript:
    return client.register_script(outbox_script(SET_STATE))


async def set_state(
    script: AsyncScript,
    outbox: RedisOutbox,
    key: str,
    expected: str,
    new: str,
    event: event_pb2.Event,
    topic: str,
) -> None:
    """Sets the state from `expected` to `new` and writes `event` with it, or neither."""
    await script(
        keys=[*outbox.keys.as_list(), key], args=[*outbox_argv(topic, event), expected, new]
    )


async def main(prefix: str, topic: str, ready: Path) -> None:
    client = redis.Redis.from_url(ServiceEndpoints.from_env().redis_url)
    outbox = RedisOutbox(client, prefix)
    event = state_changed(NEW, QUEUED)
    await set_state(
        set_state_script(client), outbox, strategy_key(prefix), "", "QUEUED", event, topic
    )

    tmp = ready.with_suffix(".tmp")
    tmp.write_text(json.dumps(event.id))
    os.replace(tmp, ready)  # the test sees the whole id or nothing
    await asyncio.Event().wait()  # the relay would run now; the test kills us first


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--ready", required=True, type=Path)
    args = parser.parse_args()
    asyncio.run(main(args.prefix, args.topic, args.ready))
