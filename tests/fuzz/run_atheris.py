"""Runs one fuzz target under atheris (libFuzzer): `python -m tests.fuzz.run_atheris TARGET ARGS`.

ARGS go to libFuzzer as they are: corpus folders, -max_total_time=, -artifact_prefix= and so
on (scripts/fuzz.sh, `make fuzz`, passes them). The target is the same function the pytest
replay and the hypothesis tests call (tests/fuzz/targets.py); any exception it lets out is a
crash, which libFuzzer writes to the artifact prefix and reports with its traceback.
"""

from __future__ import annotations

import gc
import os
import sys
import types

import atheris  # type: ignore[import-untyped]

# Coverage guides the search: the runtime and the generated code, protobuf's pure-Python parts
# (json_format, well-known types) and the targets. Not FastAPI, Starlette or pydantic, which
# the targets import but do not run: instrumenting all ~9,600 loaded functions
# (atheris.instrument_all) costs a minute per target before the first input.
INSTRUMENTED = ("qmtl.", "google.protobuf.", "tests.fuzz.")


def _instrument(prefixes: tuple[str, ...]) -> None:
    """Instruments every loaded function of the modules under `prefixes`, in place.

    Done after import rather than with atheris.instrument_imports, whose import hook cannot
    resolve the `qmtl` namespace package (runtime/ and generated/python/ each hold part of it).
    """
    functions = [
        obj
        for obj in gc.get_objects()
        if isinstance(obj, types.FunctionType) and (obj.__module__ or "").startswith(prefixes)
    ]
    for function in functions:
        atheris.instrument_func(function)
    sys.stderr.write(f"INFO: instrumented {len(functions)} functions under {', '.join(prefixes)}\n")


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        raise SystemExit("usage: python -m tests.fuzz.run_atheris TARGET [libFuzzer args]")
    from tests.fuzz.targets import TARGETS, tolerant

    _instrument(INSTRUMENTED)
    name = argv[1]
    if name not in TARGETS:
        raise SystemExit(f"unknown target {name!r}; targets: {', '.join(sorted(TARGETS))}")
    target = TARGETS[name]
    if os.environ.get("QMTL_FUZZ_SKIP_KNOWN", "") == "1":
        target = tolerant(target)
    atheris.Setup([argv[0], *argv[2:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
