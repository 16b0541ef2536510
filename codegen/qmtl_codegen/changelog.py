"""The schema changelog: docs/schemas/CHANGELOG.md, from the published baselines and the work tree.

Run with `strategy: all` and the repository root as the working directory, so that the request
holds every schema file and `releases=` (default `schemas/releases`) finds the baselines that
`make release-schemas` writes. The page has a section per version, newest first: "Unreleased"
(the work tree against the latest baseline), then each baseline against the one before it,
and last the first baseline, summarised as counts per package since everything in it is new.
A section lists, per package, the added, newly deprecated and removed elements
(qmtl_codegen.schemadiff), each linked to its entry of reference.md while the work tree still
has it. Nothing but the schemas and the baselines goes in: no dates, no wall clock.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.compiler import plugin_pb2

from qmtl_codegen import markdown
from qmtl_codegen.descriptors import Schema
from qmtl_codegen.plugin import GeneratorError, OutputFile, header_line, parse_options, run
from qmtl_codegen.releases import RELEASES_DIR, ReleaseError, list_releases, load_image
from qmtl_codegen.schemadiff import (
    Changes,
    Element,
    Inventory,
    Kind,
    counts,
    diff,
    inventory,
    schema_of_image,
    schema_roots,
)
from qmtl_codegen.templating import render

OUTPUT_NAME = "CHANGELOG.md"
TEMPLATE = "changelog.md.j2"
REFERENCE = "reference.md"
# The first baseline's table: one column per kind, in Kind's order.
_COLUMNS = {
    Kind.SERVICE: "Services",
    Kind.RPC: "RPCs",
    Kind.ROUTE: "HTTP routes",
    Kind.MESSAGE: "Messages",
    Kind.FIELD: "Fields",
    Kind.ENUM: "Enums",
    Kind.ENUM_VALUE: "Enum values",
}


@dataclass(frozen=True, slots=True)
class ChangelogOptions:
    # The baselines' directory, relative to buf's working directory (the repository root).
    releases: str = RELEASES_DIR.as_posix()


@dataclass(frozen=True, slots=True)
class PackageChanges:
    title: str
    # (label, lines) of each non-empty group: Added, Deprecated, Removed.
    groups: tuple[tuple[str, tuple[str, ...]], ...]


@dataclass(frozen=True, slots=True)
class CountRow:
    package: str
    counts: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Section:
    title: str
    intro: str
    packages: tuple[PackageChanges, ...] = ()
    # For the first baseline: its contents counted per package.
    totals: tuple[CountRow, ...] = ()


class _Linker:
    """Links to the reference, for the elements the work tree (and so the reference) still has."""

    def __init__(self, current: Inventory) -> None:
        self.anchors = frozenset(e.anchor for e in current.values())
        self.anchors |= frozenset(e.package for e in current.values())

    def ref(self, text: str, anchor: str) -> str:
        code = markdown.code(text)
        return f"[{code}]({REFERENCE}#{anchor})" if anchor in self.anchors else code

    def package(self, name: str) -> str:
        return self.ref(name, name)

    def line(self, element: Element) -> str:
        if element.kind is Kind.ROUTE:
            rpc = self.ref(element.rpc, element.anchor)
            return f"HTTP route {markdown.code(element.name)} of rpc {rpc}"
        text = f"{element.kind.value} {self.ref(element.name, element.anchor)}"
        if element.kind is Kind.RPC:
            routes = ", ".join(markdown.code(route) for route in element.routes)
            text += f": {routes}" if routes else " (gRPC only)"
        return text


def _package_changes(changes: Changes, linker: _Linker) -> tuple[PackageChanges, ...]:
    groups = (
        ("Added", changes.added),
        ("Deprecated", changes.deprecated),
        ("Removed", changes.removed),
    )
    return tuple(
        PackageChanges(
            title=linker.package(package),
            groups=tuple(
                (label, lines)
                for label, elements in groups
                if (lines := tuple(linker.line(e) for e in elements if e.package == package))
            ),
        )
        for package in changes.packages()
    )


def _changes_section(
    title: str, since: str, changes: Changes, linker: _Linker, subject: str
) -> Section:
    if not changes:
        return Section(title, f"No changes to the schemas since {since}.")
    return Section(title, f"{subject} since {since}.", _package_changes(changes, linker))


def _first_section(version: str, contents: Inventory, linker: _Linker) -> Section:
    rows = tuple(
        CountRow(linker.package(package), tuple(row[kind] for kind in Kind))
        for package, row in counts(contents).items()
    )
    return Section(
        title=version,
        intro="The first release: the contracts as first published, counted per package.",
        totals=rows,
    )


def _sections(current: Inventory, releases: Sequence[tuple[str, Inventory]]) -> Iterator[Section]:
    linker = _Linker(current)
    if not releases:
        yield Section(
            "Unreleased",
            "No release yet: the first `make release-schemas VERSION=1.0.0` publishes the "
            "baseline `1.0.0`, and from then on every change to the schemas is listed here.",
        )
        return
    latest, latest_contents = releases[-1]
    yield _changes_section(
        "Unreleased", latest, diff(latest_contents, current), linker, "In the work tree"
    )
    for (before, old), (version, new) in reversed(list(itertools.pairwise(releases))):
        yield _changes_section(version, before, diff(old, new), linker, "Changes")
    first, first_contents = releases[0]
    yield _first_section(first, first_contents, linker)


def changelog(current: Schema, releases: Sequence[tuple[str, Schema]], source: str) -> str:
    """The changelog page: `current` against `releases` (version name, schema; oldest first)."""
    return render(
        TEMPLATE,
        header=header_line("changelog", source),
        columns=[_COLUMNS[kind] for kind in Kind],
        sections=list(
            _sections(
                inventory(current),
                [(version, inventory(schema)) for version, schema in releases],
            )
        ),
    )


def load_releases(directory: Path, roots: Sequence[str]) -> list[tuple[str, Schema]]:
    """Every baseline under `directory`, oldest first, as (version, the files under `roots`)."""
    try:
        return [
            (release.name, schema_of_image(load_image(release.path), roots))
            for release in list_releases(directory)
        ]
    except ReleaseError as exc:
        raise GeneratorError(f"changelog: {exc}") from None


def generate(request: plugin_pb2.CodeGeneratorRequest) -> Iterator[OutputFile]:
    opts = parse_options("changelog", request.parameter, ChangelogOptions)
    current = Schema.from_request(request)
    roots = schema_roots(current)
    releases = load_releases(Path(opts.releases), roots)
    schemas = ", ".join(f"{root}/**/*.proto" for root in roots) or "no files"
    source = f"{opts.releases}/*.binpb and {schemas}"
    yield OutputFile(OUTPUT_NAME, changelog(current, releases, source))


def main() -> None:
    run(generate)


if __name__ == "__main__":
    main()
