"""The public view of a response: fields marked `(qmtl.api.v1.internal_only)` cleared.

Which fields those are is known statically, so the generator writes one `Hidden` table per
response type of a public rpc (its `RpcSpec.public_view`) and a public listener passes the
reply through `public_message` before encoding it; nothing is looked up per request. The
handler's message is copied first, because a service may hand the same message (a cached
health report) to its internal route too. Transport-neutral: HTTP and gRPC listeners share it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from google.protobuf import message

M = TypeVar("M", bound=message.Message)


@dataclass(frozen=True, slots=True)
class Hidden:
    """Where a message type holds internal_only fields.

    `clear` names its own internal_only fields; `nested` names each message field (singular,
    repeated or map) whose message type holds some, with that type's table.
    """

    clear: tuple[str, ...] = ()
    nested: tuple[tuple[str, Hidden], ...] = ()


def _clear(msg: message.Message, hidden: Hidden) -> None:
    for name in hidden.clear:
        msg.ClearField(name)
    for name, inner in hidden.nested:
        value = getattr(msg, name)
        if isinstance(value, Mapping):
            for item in value.values():
                _clear(item, inner)
        elif msg.DESCRIPTOR.fields_by_name[name].is_repeated:
            for item in value:
                _clear(item, inner)
        elif msg.HasField(name):
            _clear(value, inner)


def public_message(msg: M, hidden: Hidden) -> M:
    """A copy of `msg` without the fields `hidden` names, at any depth."""
    copy = type(msg)()
    copy.CopyFrom(msg)
    _clear(copy, hidden)
    return copy
