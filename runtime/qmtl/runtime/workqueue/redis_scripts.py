"""The Lua scripts behind the Redis adapter, read from lua/ and registered with the client.

`register_script` runs each one by EVALSHA and, on NOSCRIPT (an empty script cache after a
Redis restart or failover), loads it again and retries, so a restart needs no special handling.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import redis.asyncio as redis
from redis.commands.core import AsyncScript

# The shebang makes Redis check for out-of-memory before the script starts instead of at its
# first write, so a script under memory pressure fails whole rather than half-applied.
_SHEBANG = "#!lua\n"


# The bodies every script may call (lib_*.lua), after common.lua: the combined scripts
# (complete_and_lease, fail_and_lease) reuse the very functions the single ones run.
_LIBRARIES = ("common", "lib_take", "lib_complete", "lib_fail")


def _source(name: str) -> str:
    lua = resources.files(__package__).joinpath("lua")
    parts = [lua.joinpath(f"{part}.lua").read_text(encoding="utf-8") for part in _LIBRARIES]
    body = lua.joinpath(f"{name}.lua").read_text(encoding="utf-8")
    return _SHEBANG + "\n".join([*parts, body])


@dataclass(frozen=True, slots=True)
class QueueScripts:
    enqueue: AsyncScript
    lease: AsyncScript
    complete: AsyncScript
    fail: AsyncScript
    extend: AsyncScript
    release: AsyncScript
    reap: AsyncScript
    redrive: AsyncScript
    purge_dead: AsyncScript
    complete_and_lease: AsyncScript
    fail_and_lease: AsyncScript

    @classmethod
    def register(cls, client: redis.Redis) -> QueueScripts:
        return cls(
            enqueue=client.register_script(_source("enqueue")),
            lease=client.register_script(_source("lease")),
            complete=client.register_script(_source("complete")),
            fail=client.register_script(_source("fail")),
            extend=client.register_script(_source("extend")),
            release=client.register_script(_source("release")),
            reap=client.register_script(_source("reap")),
            redrive=client.register_script(_source("redrive")),
            purge_dead=client.register_script(_source("purge_dead")),
            complete_and_lease=client.register_script(_source("complete_and_lease")),
            fail_and_lease=client.register_script(_source("fail_and_lease")),
        )
