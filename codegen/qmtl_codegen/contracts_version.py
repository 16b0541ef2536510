"""The contracts version (`schemas/VERSION`) that generated code is stamped with.

buf runs the plugins from the repository root, so the default path is relative to it. The
handler, router, gRPC adapter and client modules pass the version to the runtime's import
check (qmtl.runtime.gen.check_version); the package plugin writes it into
`qmtl/common/contracts_version.py`, the packaged version and the OpenAPI `info.version`.
"""

from __future__ import annotations

from pathlib import Path

from qmtl_codegen.plugin import GeneratorError
from qmtl_codegen.releases import VERSION_FILE, ReleaseError, format_version, read_current_version


def current(path: Path | str = VERSION_FILE) -> str:
    """`MAJOR.MINOR.PATCH` from `path`; a GeneratorError (not a traceback) when unreadable."""
    try:
        return format_version(read_current_version(Path(path)))
    except ReleaseError as exc:
        raise GeneratorError(f"contracts version: {exc}") from None
