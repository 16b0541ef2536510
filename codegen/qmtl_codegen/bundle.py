"""Several of our generators in one plugin process: one Python start, one parsed request.

Each generator of this package is a function from a CodeGeneratorRequest to output files and
runs fine as a plugin of its own; what a plugin process costs is mostly starting Python and
importing protobuf, paid once per buf.gen.yaml entry. A bundle entry lists generators, each
with the folder its files go to and its own options, and runs them one after the other on the
same request. buf writes the files under the entry's `out` (`.`), so each name carries its
folder; scripts/generate.sh swaps them in exactly as if separate entries had written them.

    - local: [.venv/bin/python, -m, qmtl_codegen.bundle]
      out: .
      strategy: all
      opt:
        - generated/python qmtl_codegen.protoc_bridge lang=python
        - docs/openapi qmtl_codegen.openapi version_file=schemas/VERSION

One `opt` entry per generator: the output folder, the module (its `generate` function), then
its options separated by spaces (buf joins `opt` entries with commas, so an option value may
not contain a comma). A failing generator is named in the error: `<module>: <why>`.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass

from google.protobuf.compiler import plugin_pb2

from qmtl_codegen import descriptors
from qmtl_codegen.plugin import Generator, GeneratorError, OutputFile, run

_PACKAGE = "qmtl_codegen."


@dataclass(frozen=True, slots=True)
class Step:
    """One generator of a bundle: where its files go, which module, which options."""

    out: str
    module: str
    parameter: str


def parse_steps(parameter: str) -> list[Step]:
    """The bundle's `opt` entries (comma-joined by buf) as steps, in order."""
    steps = []
    for entry in parameter.split(","):
        words = entry.split()
        if not words:
            continue
        if len(words) < 2:
            raise GeneratorError(
                f"bundle: {entry!r} must be '<out folder> <module> [option ...]', "
                f"e.g. 'generated/python qmtl_codegen.handlers'"
            )
        out, module, *options = words
        if not module.startswith(_PACKAGE):
            raise GeneratorError(f"bundle: {module!r} is not a module of {_PACKAGE.rstrip('.')}")
        if out.startswith("/") or ".." in out.split("/"):
            raise GeneratorError(f"bundle: output folder {out!r} must stay inside the tree")
        steps.append(Step(out.rstrip("/"), module, ",".join(options)))
    if not steps:
        raise GeneratorError("bundle: no generator listed in opt")
    return steps


def _generator(module: str) -> Generator:
    try:
        loaded = importlib.import_module(module)
    except ImportError as exc:
        raise GeneratorError(f"bundle: cannot import {module}: {exc}") from exc
    generate = getattr(loaded, "generate", None)
    if not callable(generate):
        raise GeneratorError(f"bundle: {module} has no generate(request) function")
    generator: Generator = generate
    return generator


def generate(request: plugin_pb2.CodeGeneratorRequest) -> Iterator[OutputFile]:
    steps = parse_steps(request.parameter)
    generators = [_generator(step.module) for step in steps]
    # The generators share one resolved Schema (and what they derive from it) instead of each
    # loading the request's files again.
    with descriptors.shared(request):
        for step, generator in zip(steps, generators, strict=True):
            # Each generator reads its own options from the request's parameter, as it would
            # from its own buf.gen.yaml entry.
            request.parameter = step.parameter
            try:
                for output in generator(request):
                    yield OutputFile(f"{step.out}/{output.name}", output.content)
            except GeneratorError as exc:
                raise GeneratorError(f"{step.module}: {exc}") from exc


def main() -> None:
    run(generate)


if __name__ == "__main__":
    main()
