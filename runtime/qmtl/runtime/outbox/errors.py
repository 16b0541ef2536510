"""The relay's own typed error (publish and store failures keep their ports' errors)."""

from __future__ import annotations

from qmtl.runtime.port_errors import PortError


class OutboxConfigError(PortError):
    """An OutboxRelay setting out of range (page size, interval); raised at construction."""

    default_code = "E_VALIDATION"
