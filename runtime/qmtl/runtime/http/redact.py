"""Kept for code written before the move: `Hidden` lives in qmtl.runtime.redact now.

The public view is transport-neutral (HTTP and gRPC listeners clear the same fields), so the
tables and `public_message` moved out of the HTTP layer; `public_view` is its old name.
"""

from __future__ import annotations

from qmtl.runtime.redact import Hidden, public_message

public_view = public_message

__all__ = ["Hidden", "public_message", "public_view"]
