"""The runtime contract generated modules are written against (docs/api/HANDLERS.md).

Every generated module that uses the runtime starts with
`check_version(<n>, __name__, "<contracts version>")`, so a module generated for another
contract, or from schemas of a contracts major version this runtime does not support
(qmtl.runtime.contracts_version), fails at import with a message saying what to do, rather
than later with an AttributeError or on the wire. Generated code refers to runtime names only as
`_qmtl_<alias>.<Name>`, each in the `__all__` of this package or of its submodules
(`http_server`, `grpc_server`, `http_client`); those names are the contract. This module
imports protobuf and the runtime core only, never a web or gRPC framework.
"""

from __future__ import annotations

from importlib import metadata

from qmtl.runtime import contracts_version
from qmtl.runtime.auth import Principal
from qmtl.runtime.context import Context
from qmtl.runtime.errors import ErrorCode, QmtlError, unimplemented
from qmtl.runtime.redact import Hidden
from qmtl.runtime.spec import Access, RpcSpec, ServiceSpec

# Raised whenever a change would break modules generated before it; the generator writes the
# number it targets into each module's check_version call.
CONTRACT_VERSION = 1

# Distributions that may carry this runtime, newest packaging first.
_DISTRIBUTIONS = ("qmtl-runtime-core", "qmtl-nextgen")


def _runtime_version() -> str:
    for name in _DISTRIBUTIONS:
        try:
            return f"{name} {metadata.version(name)}"
        except metadata.PackageNotFoundError:
            continue
    return "qmtl-runtime-core (version unknown)"


def check_version(required: int, module: str, contracts: str | None = None) -> None:
    """Refuses to import `module`, generated for contract `required`, on another contract, or
    generated from schemas of contracts version `contracts` outside the supported majors.

    Modules generated before the contracts version was passed (None) are checked for the
    contract only.
    """
    if required != CONTRACT_VERSION:
        raise ImportError(
            f"{module} was generated for qmtl runtime contract {required}, but the installed "
            f"qmtl runtime provides contract {CONTRACT_VERSION} ({_runtime_version()}): "
            "regenerate with `make generate` or install a matching runtime"
        )
    if contracts is not None:
        contracts_version.check_generated(contracts, module)


__all__ = [
    "CONTRACT_VERSION",
    "Access",
    "Context",
    "ErrorCode",
    "Hidden",
    "Principal",
    "QmtlError",
    "RpcSpec",
    "ServiceSpec",
    "check_version",
    "unimplemented",
]
