"""The Lua scripts behind RedisStrategyStore, read from lua/ and registered with the client.

Each write script is `qmtl_outbox_append` (qmtl.runtime.outbox.redis_store) + lua/common.lua +
its own body, so the state change, its outbox entries and its event-log entries are one
script. `register_script` runs them by EVALSHA and reloads them on NOSCRIPT (an empty script
cache after a Redis restart). The loader follows qmtl.runtime.workqueue.redis_scripts, whose
own is private to that package's lua/ directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import redis.asyncio as redis
from redis.commands.core import AsyncScript

from qmtl.runtime.outbox.redis_store import outbox_script

# The shebang makes Redis check for out-of-memory before a write script starts instead of at
# its first write, so a script under memory pressure fails whole rather than half-applied
# (outbox_script puts the same one first). The read script declares itself read-only.
_WRITE = "#!lua\n"
_READ = "#!lua flags=no-writes\n"


def _read(name: str) -> str:
    return resources.files(__package__).joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")


def _write_script(name: str) -> str:
    return outbox_script(_read("common") + "\n" + _read(name))


def _read_script(name: str) -> str:
    return _READ + _read("common") + "\n" + _read(name)


@dataclass(frozen=True, slots=True)
class StoreScripts:
    create: AsyncScript
    update: AsyncScript
    report_nodes: AsyncScript
    list: AsyncScript

    @classmethod
    def register(cls, client: redis.Redis) -> StoreScripts:
        return cls(
            create=client.register_script(_write_script("create")),
            update=client.register_script(_write_script("update")),
            report_nodes=client.register_script(_WRITE + _read("report_nodes")),
            list=client.register_script(_read_script("list")),
        )
