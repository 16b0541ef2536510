"""What the generator knows about each rpc, as data the transports read at startup.

A generated `<file>_handler.py` holds one `ServiceSpec` per service: per rpc its names, message
types, access rule, idempotency, public view and declared errors. The HTTP routes and the gRPC
adapter are built from the same specs, so both transports enforce one set of rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from google.protobuf import message

from qmtl.runtime.redact import Hidden

Req = TypeVar("Req", bound=message.Message)
Resp = TypeVar("Resp", bound=message.Message)


@dataclass(frozen=True, slots=True)
class Access:
    """An rpc's `(qmtl.api.v1.access)` option: listener, scopes, anonymous callers."""

    public: bool
    scopes: tuple[str, ...]
    allow_anonymous: bool = False


@dataclass(frozen=True, slots=True)
class RpcSpec(Generic[Req, Resp]):
    """One rpc: `name` "GetStrategy", `method` the handler attribute "get_strategy".

    `idempotent`: bound to GET, or idempotency_level NO_SIDE_EFFECTS / IDEMPOTENT (a client
    may retry it). `public_view`: what public listeners clear from the reply. `errors`: the
    wire codes its `(qmtl.api.v1.errors)` option declares.
    """

    name: str
    full_name: str
    method: str
    request: type[Req]
    response: type[Resp]
    access: Access
    idempotent: bool
    public_view: Hidden | None = None
    errors: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """One service and every rpc it declares, HTTP-bound or gRPC-only, in schema order."""

    full_name: str
    rpcs: tuple[RpcSpec[Any, Any], ...]

    def rpc(self, name: str) -> RpcSpec[Any, Any]:
        """The rpc named `name`, short ("GetStrategy") or full; KeyError if there is none."""
        for spec in self.rpcs:
            if name in (spec.name, spec.full_name):
                return spec
        raise KeyError(f"{self.full_name} has no rpc {name!r}")
