"""The outbox's typed errors (publish failures keep the event bus's, GraphStore calls the graph
store's): one root, the shape every port shares (qmtl.runtime.port_errors.PortError)."""

from __future__ import annotations

from qmtl.runtime.port_errors import PortError


class OutboxError(PortError):
    """Root of every error an outbox store (MemoryOutbox, RedisOutbox) or the relay raises."""


class OutboxConfigError(OutboxError):
    """A setting out of range (the relay's page size or interval, a store's client); raised at
    construction."""

    default_code = "E_VALIDATION"


class InvalidOutboxInputError(OutboxError):
    """A malformed argument: a page limit out of range, an empty id to ack."""

    default_code = "E_VALIDATION"


class OutboxTooLargeError(OutboxError):
    """More entries in one call than MAX_BATCH, or a payload the broker would refuse; refused
    before anything is written."""

    default_code = "E_PAYLOAD_TOO_LARGE"


class OutboxUnavailableError(OutboxError):
    """The outbox's backing store could not be reached or refused the call for now; the entries
    already written are safe, the call may be repeated after a backoff."""

    default_code = "E_UNAVAILABLE"
    default_retryable = True
