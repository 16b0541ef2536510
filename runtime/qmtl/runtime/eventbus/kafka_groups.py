"""Looking at and moving a consumer group's offsets on Kafka: lag, and replay by reset.

The broker's Java CLI (kafka-consumer-groups) is not among the jars scripts/services/kafka.sh
fetches, so this is the tool (docs/operations/kafka.md, "Lag" and "Replay"):

    python -m qmtl.runtime.eventbus.kafka_groups lag GROUP TOPIC...
    python -m qmtl.runtime.eventbus.kafka_groups reset GROUP TOPIC... --to earliest|latest|<ms>

A reset commits the new offsets as a non-member of the group, which Kafka accepts only while
the group has no live member: stop its consumers first (a refused reset changes nothing).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from .errors import EventBusError

REQUEST_TIMEOUT_MS = 10_000


@dataclass(frozen=True, slots=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int | None
    """The group's next offset to read; None if it never committed on this partition."""
    end: int
    lag: int
    """Records after the committed offset (after the oldest retained one if none)."""


async def _partitions(admin: AIOKafkaAdminClient, topics: Sequence[str]) -> list[TopicPartition]:
    described = await admin.describe_topics(list(topics))
    missing = [t["topic"] for t in described if t["error_code"] != 0]
    if missing:
        raise EventBusError(
            f"topics {missing} do not exist",
            operation="subscribe",
            topics=missing,
            retryable=False,
            code="E_NOT_FOUND",
        )
    return sorted(
        TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]
    )


async def group_lag(bootstrap: str, group: str, topics: Sequence[str]) -> list[PartitionLag]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=REQUEST_TIMEOUT_MS)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        await admin.start()
        await consumer.start()
        tps = await _partitions(admin, topics)
        committed = await admin.list_consumer_group_offsets(group, partitions=tps)
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
    except KafkaError as exc:
        raise EventBusError(f"lag of {group!r}: {exc!r}", operation="subscribe") from exc
    finally:
        await consumer.stop()
        await admin.close()
    lags = []
    for tp in tps:
        meta = committed.get(tp)
        offset = None if meta is None or meta.offset < 0 else int(meta.offset)
        base = starts[tp] if offset is None else max(offset, starts[tp])
        lags.append(PartitionLag(tp.topic, tp.partition, offset, ends[tp], ends[tp] - base))
    return lags


async def reset_group(
    bootstrap: str, group: str, topics: Sequence[str], *, to: str
) -> dict[TopicPartition, int]:
    """Moves the group's offsets on every partition of `topics` to `to` (`earliest`, `latest`
    or an epoch-ms timestamp: the first record at or after it). Returns the offsets set."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=REQUEST_TIMEOUT_MS)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    try:
        await admin.start()
        await consumer.start()
        tps = await _partitions(admin, topics)
        targets = await _targets(consumer, tps, to)
        consumer.assign(tps)
        await consumer.commit(targets)
    except KafkaError as exc:
        raise EventBusError(
            f"cannot reset {group!r} (stop its consumers first): {exc!r}",
            operation="commit",
            topics=topics,
            retryable=False,
        ) from exc
    finally:
        await consumer.stop()
        await admin.close()
    return dict(targets)


async def _targets(
    consumer: AIOKafkaConsumer, tps: list[TopicPartition], to: str
) -> dict[TopicPartition, int]:
    if to == "earliest":
        return dict(await consumer.beginning_offsets(tps))
    ends = dict(await consumer.end_offsets(tps))
    if to == "latest":
        return ends
    if not to.isdigit():
        raise EventBusError(
            f"--to must be earliest, latest or epoch milliseconds, got {to!r}",
            operation="commit",
            retryable=False,
            code="E_VALIDATION",
            field="to",
        )
    found = await consumer.offsets_for_times({tp: int(to) for tp in tps})
    # No record at or after the time: the end (nothing to replay there).
    return {tp: ends[tp] if found[tp] is None else found[tp].offset for tp in tps}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qmtl.runtime.eventbus.kafka_groups")
    parser.add_argument(
        "--bootstrap", default=os.environ.get("QMTL_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    )
    sub = parser.add_subparsers(dest="command", required=True)
    lag = sub.add_parser("lag", help="committed offset, end offset and lag per partition")
    lag.add_argument("group")
    lag.add_argument("topics", nargs="+")
    reset = sub.add_parser("reset", help="move the group's offsets (the group must be idle)")
    reset.add_argument("group")
    reset.add_argument("topics", nargs="+")
    reset.add_argument("--to", required=True, help="earliest, latest or epoch milliseconds")
    args = parser.parse_args(argv)
    try:
        if args.command == "lag":
            rows = asyncio.run(group_lag(args.bootstrap, args.group, args.topics))
            print("TOPIC\tPARTITION\tCOMMITTED\tEND\tLAG")
            for row in rows:
                committed = "-" if row.committed is None else str(row.committed)
                print(f"{row.topic}\t{row.partition}\t{committed}\t{row.end}\t{row.lag}")
            print(f"total lag {sum(row.lag for row in rows)}")
        else:
            targets = asyncio.run(reset_group(args.bootstrap, args.group, args.topics, to=args.to))
            for tp, offset in sorted(targets.items()):
                print(f"{tp.topic}\t{tp.partition}\t{offset}")
    except EventBusError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
