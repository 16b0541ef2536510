"""The callbacks' typed errors.

Registration and verification errors are `QmtlError`s, so a service answers them with the
catalogue's status as they are: a refused callback URL is `E_VALIDATION` (422) naming the field,
a refused signature is `E_UNAUTHENTICATED` (401). They need nothing beyond the slim runtime, so a
receiver can verify with `qmtl-runtime-core` alone; the delivery's error lives in delivery.py.
"""

from __future__ import annotations

from qmtl.runtime.errors import ErrorCode, QmtlError


class InvalidCallbackUrlError(QmtlError):
    """A callback URL refused at registration; `field` names it in the request, `reason` is a
    stable token saying which rule it broke (docs/operations/callbacks.md, "URL rules")."""

    def __init__(self, message: str, *, field: str, reason: str) -> None:
        super().__init__(
            ErrorCode.ERROR_CODE_VALIDATION,
            f"{field}: {message}",
            details={"field": field, "reason": reason},
        )
        self.field = field
        self.reason = reason


class SignatureError(QmtlError):
    """A callback request whose signature a receiver must refuse (answer it with 401).

    `reason` is one of: missing, malformed, unknown_key, mismatch, expired, future.
    """

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(ErrorCode.ERROR_CODE_UNAUTHENTICATED, message, details={"reason": reason})
        self.reason = reason


class InvalidSigningKeyError(QmtlError):
    """A signing key that cannot be used (bad id, short secret): a configuration mistake,
    refused when the key is built so it never signs anything."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(ErrorCode.ERROR_CODE_VALIDATION, message, details={"field": field})
        self.field = field
