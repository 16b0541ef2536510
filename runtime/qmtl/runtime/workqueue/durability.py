"""Whether a Redis server will keep accepted jobs: read at start-up, enforced in production.

The queue promises never to lose an accepted job. Redis only keeps that promise with the
append-only file on and fsynced at least every second, and with eviction off: a server that
may evict keys under memory pressure can silently drop a job hash or an idempotency key.
docs/operations/redis.md explains each rule and what every fsync policy can lose.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import redis.asyncio as redis
from redis.exceptions import RedisError, ResponseError

from .errors import DurabilityError, QueueUnavailableError

ACCEPTED_FSYNC_POLICIES = frozenset({"everysec", "always"})
CHECK_TIMEOUT = 5.0
"""Default bound of the start-up check; open_work_queue passes QueueSettings.call_timeout."""


@dataclass(frozen=True, slots=True)
class PersistenceReport:
    """The persistence settings of one Redis server, as CONFIG GET reports them."""

    appendonly: bool
    appendfsync: str
    save: str
    """RDB snapshot points; empty when snapshots are off."""
    maxmemory_policy: str

    @property
    def persistent(self) -> bool:
        """Whether anything at all survives a restart."""
        return self.appendonly or bool(self.save.strip())

    def problems(self) -> list[str]:
        """Why this server may lose accepted jobs; empty when it is fit for production."""
        found = []
        if not self.persistent:
            found.append("persistence is off (appendonly no and no RDB save points)")
        elif not self.appendonly:
            found.append(
                "only RDB snapshots are on (appendonly no): every job accepted since the last "
                f"snapshot (save '{self.save}') is lost in a restart; set appendonly yes"
            )
        if self.appendonly and self.appendfsync not in ACCEPTED_FSYNC_POLICIES:
            found.append(
                f"appendfsync is '{self.appendfsync}': the OS decides when the AOF reaches disk "
                "(about 30 s on Linux); set everysec or always"
            )
        if self.maxmemory_policy != "noeviction":
            found.append(
                f"maxmemory-policy is '{self.maxmemory_policy}': Redis may evict job hashes or "
                "idempotency keys under memory pressure; set noeviction"
            )
        return found


async def inspect_persistence(
    client: redis.Redis, *, call_timeout: float = CHECK_TIMEOUT
) -> PersistenceReport:
    try:
        async with asyncio.timeout(call_timeout):
            config = await client.config_get(
                "appendonly", "appendfsync", "save", "maxmemory-policy"
            )
    except TimeoutError as exc:
        raise QueueUnavailableError(f"Redis did not answer within {call_timeout:g}s") from exc
    except ResponseError as exc:
        # Some managed services rename or block CONFIG; we cannot vouch for what we cannot read.
        raise DurabilityError(
            f"cannot read the Redis persistence settings ({exc}); CONFIG GET must be allowed "
            "for the work queue's start-up check"
        ) from exc
    except RedisError as exc:
        raise QueueUnavailableError(f"Redis is unavailable: {exc}") from exc

    def value(name: str) -> str:
        raw = config.get(name, "")
        return raw.decode() if isinstance(raw, bytes) else str(raw)

    return PersistenceReport(
        appendonly=value("appendonly") == "yes",
        appendfsync=value("appendfsync"),
        save=value("save"),
        maxmemory_policy=value("maxmemory-policy"),
    )


async def require_durable_redis(
    client: redis.Redis, *, call_timeout: float = CHECK_TIMEOUT
) -> PersistenceReport:
    """The report if the server keeps accepted jobs; DurabilityError naming every problem if not."""
    report = await inspect_persistence(client, call_timeout=call_timeout)
    problems = report.problems()
    if problems:
        raise DurabilityError(
            "Redis would lose accepted work-queue jobs: "
            + "; ".join(problems)
            + " (see docs/operations/redis.md)"
        )
    return report
