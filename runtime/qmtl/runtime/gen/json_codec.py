"""What the generated proto3 JSON codec modules (`*_json.py`) may use of the runtime: exactly
`__all__` of qmtl.runtime.json_codec, re-exported here so generated code reaches the runtime
only through qmtl.runtime.gen (tests/unit/test_runtime_contract.py checks it)."""

from __future__ import annotations

from qmtl.runtime.json_codec import *  # noqa: F403  (the surface is its __all__, exactly)
from qmtl.runtime.json_codec import __all__ as __all__
