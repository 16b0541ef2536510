"""The schema contracts version on the wire: what this process speaks and which peers it serves.

`schemas/VERSION` (MAJOR.MINOR.PATCH) is generated into `qmtl.common.contracts_version`, which
ships with the runtime core next to the other qmtl.common messages. Every request, reply, event
and record carries it in the `qmtl-contracts-version` header (HTTP header, gRPC metadata,
Kafka record header). Within one major version every change is additive (VERSIONING.md), so
the rule a receiver applies (`check_peer`) looks at the major only:

- no header, or an empty one: accepted -- old peers, curl, foreign producers;
- a major this runtime supports (`SUPPORTED_MAJORS`), whatever its minor and patch: accepted;
- any other major (newer or older): refused, E_CONTRACT_VERSION (HTTP 412, gRPC
  FAILED_PRECONDITION), the message naming both versions;
- not MAJOR.MINOR.PATCH: E_INVALID_ARGUMENT (HTTP 400), like a malformed qmtl-timeout-ms.

On Kafka a refused or malformed header makes the record undecodable, so the consumer
dead-letters it with the reason (eventbus/model.py) and goes on; `RecordBus.read` leaves it
out. Every refusal is counted in `qmtl_contracts_version_refusals_total{transport}` (on Kafka,
each time a record is read). Not to be confused with
qmtl.runtime.gen.CONTRACT_VERSION, the generated-code <-> runtime API number.
"""

from __future__ import annotations

import re

from prometheus_client import Counter

from qmtl.common.contracts_version import CONTRACTS_VERSION
from qmtl.runtime.errors import ErrorCode, QmtlError
from qmtl.runtime.metrics import REGISTRY

HEADER = "qmtl-contracts-version"
HEADER_BYTES = HEADER.encode("latin-1")
# The version this process speaks: the schemas its messages were generated from.
SPOKEN: str = CONTRACTS_VERSION
SPOKEN_BYTES = SPOKEN.encode("latin-1")
# The major versions of the contracts this runtime can serve and call. A generated package of
# another major refuses to import (`check_generated`); a peer of another major is refused.
SUPPORTED_MAJORS: frozenset[int] = frozenset({1})

_VERSION = re.compile(r"(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})")

REFUSALS = Counter(
    "qmtl_contracts_version_refusals",
    "Requests, events and records refused for their qmtl-contracts-version header (another "
    "major version, or not MAJOR.MINOR.PATCH), by transport (http, grpc, kafka).",
    ["transport"],
    registry=REGISTRY,
)


def parse(text: str) -> tuple[int, int, int] | None:
    """`"1.2.3"` -> `(1, 2, 3)`; None unless `text` is exactly MAJOR.MINOR.PATCH."""
    match = _VERSION.fullmatch(text.strip())
    if match is None:
        return None
    major, minor, patch = (int(part) for part in match.groups())
    return (major, minor, patch)


def _majors(majors: frozenset[int]) -> str:
    return ", ".join(str(major) for major in sorted(majors))


def check_peer(text: str | None) -> QmtlError | None:
    """The error to answer a peer speaking contracts `text` with; None to serve it.

    `text` is the raw header value, None when the peer sent none (see the module docstring).
    """
    if text is None or not text.strip():
        return None
    version = parse(text)
    if version is None:
        return QmtlError(
            ErrorCode.ERROR_CODE_INVALID_ARGUMENT,
            f"header {HEADER} must be a contracts version MAJOR.MINOR.PATCH, not {text!r}",
            details={"header": HEADER},
        )
    if version[0] in SUPPORTED_MAJORS:
        return None
    peer = text.strip()
    return QmtlError(
        ErrorCode.ERROR_CODE_CONTRACT_VERSION,
        f"the peer speaks qmtl contracts {peer}, but this process speaks {SPOKEN} and serves "
        f"major version {_majors(SUPPORTED_MAJORS)} only: use a client or service generated "
        f"from contracts {_majors(SUPPORTED_MAJORS)}.x",
        details={"header": HEADER, "peer_version": peer, "version": SPOKEN},
    )


def admit(text: str | None, transport: str) -> None:
    """Raises `check_peer`'s error, counted under `transport`; returns when it is None."""
    error = check_peer(text)
    if error is not None:
        REFUSALS.labels(transport).inc()
        raise error


def check_generated(version: str, module: str) -> None:
    """ImportError unless `module`, generated from contracts `version`, is of a major this
    runtime supports; the message names both versions and what to do."""
    parsed = parse(version)
    if parsed is not None and parsed[0] in SUPPORTED_MAJORS:
        return
    raise ImportError(
        f"{module} was generated from qmtl contracts {version}, but the installed qmtl runtime "
        f"(contracts {SPOKEN}) supports contracts major version {_majors(SUPPORTED_MAJORS)} "
        "only: install a runtime that supports it, or regenerate from matching schemas"
    )
