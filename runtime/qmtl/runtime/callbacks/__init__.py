"""Strategy callbacks: URL validation at registration, request signing and the receivers'
verifier (stdlib only), and delivery through the durable work queue in
`qmtl.runtime.callbacks.delivery` (needs httpx, the runtime's `client` extra; imported on
demand). docs/operations/callbacks.md is the guide.
"""

from .errors import InvalidCallbackUrlError, InvalidSigningKeyError, SignatureError
from .signing import (
    MAX_AGE,
    MAX_FUTURE_SKEW,
    MIN_SECRET_BYTES,
    SIGNATURE_HEADER,
    SigningKey,
    VerifiedSignature,
    compute_signature,
    sign,
    signature_header,
    verify,
)
from .urls import ALLOWED_SCHEMES, MAX_URL_LENGTH, host_allowed, validate_callback_url

__all__ = [
    "ALLOWED_SCHEMES",
    "MAX_AGE",
    "MAX_FUTURE_SKEW",
    "MAX_URL_LENGTH",
    "MIN_SECRET_BYTES",
    "SIGNATURE_HEADER",
    "InvalidCallbackUrlError",
    "InvalidSigningKeyError",
    "SignatureError",
    "SigningKey",
    "VerifiedSignature",
    "compute_signature",
    "host_allowed",
    "sign",
    "signature_header",
    "validate_callback_url",
    "verify",
]
