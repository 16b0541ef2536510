"""The schema changelog lists what each version adds, deprecates and removes, deterministically.

The snapshot tests compile two versions of a small inline schema with protoc and compare the
whole page with the expected Markdown; the end-to-end tests run the plugin as buf does, on
baselines that `buf build` made from scratch copies of schemas/.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2
from grpc_tools import protoc

from qmtl_codegen import changelog
from qmtl_codegen.descriptors import Schema
from qmtl_codegen.plugin import GeneratorError
from qmtl_codegen.schemadiff import schema_of_image
from tests.codegen.conftest import PROTO_DEPS, ROOT, WELL_KNOWN

BUF = ROOT / ".tools" / "bin" / "buf"
WIDGETS = "shop/v1/widgets.proto"
STOCK = "shop/stock/v1/stock.proto"
CompileSchema = Callable[[dict[str, str]], Schema]

WIDGETS_1_0 = """\
syntax = "proto3";

// Widgets.
package shop.v1;

import "google/api/annotations.proto";

// A widget.
message Widget {
  // Its ID.
  string id = 1;
  // Its colour.
  string colour = 2;
  // Dropped in 1.1.0.
  string legacy = 3;
}

// Sizes.
enum Size {
  // Unset.
  SIZE_UNSPECIFIED = 0;
  // Small.
  SIZE_SMALL = 1;
  // Dropped in 1.1.0.
  SIZE_HUGE = 2;
}

// Which widget to get.
message GetWidgetRequest {
  // The widget's ID.
  string id = 1;
}

// Serves widgets.
service WidgetService {
  // One widget.
  rpc GetWidget(GetWidgetRequest) returns (Widget) {
    option (google.api.http) = {get: "/v1/widgets/{id}"};
  }
  // Dropped in 1.1.0.
  rpc Ping(GetWidgetRequest) returns (Widget);
}
"""

WIDGETS_1_1 = """\
syntax = "proto3";

// Widgets.
package shop.v1;

import "google/api/annotations.proto";

// A widget.
message Widget {
  reserved 3;
  reserved "legacy";
  // Its ID.
  string id = 1;
  // Its colour.
  string colour = 2 [deprecated = true];
  // Its weight.
  int32 weight = 4;
}

// Sizes.
enum Size {
  reserved 2;
  reserved "SIZE_HUGE";
  // Unset.
  SIZE_UNSPECIFIED = 0;
  // Small.
  SIZE_SMALL = 1;
  // Large.
  SIZE_LARGE = 3;
}

// Which widget to get.
message GetWidgetRequest {
  option deprecated = true;
  // The widget's ID.
  string id = 1;
}

// Which widgets to list.
message ListWidgetsRequest {
  // Widgets on this shelf.
  string shelf = 1;
}

// A gadget: new, so its fields and its nested message are not listed apart.
message Gadget {
  // A part.
  message Part {
    // Its name.
    string name = 1;
  }
  // Its ID.
  string id = 1;
  // Its parts.
  repeated Part parts = 2;
}

// Serves widgets.
service WidgetService {
  // One widget.
  rpc GetWidget(GetWidgetRequest) returns (Widget) {
    option (google.api.http) = {
      get: "/v1/widgets/{id}"
      additional_bindings {get: "/v1/shelves/{id}/widget"}
    };
  }
  // Every widget.
  rpc ListWidgets(ListWidgetsRequest) returns (Widget) {
    option (google.api.http) = {get: "/v1/widgets"};
  }
}
"""

STOCK_1_1 = """\
syntax = "proto3";

// Stock.
package shop.stock.v1;

// A stock level.
message Stock {
  // How many.
  int64 count = 1;
}
"""

HEADER_SOURCE = "probe"
INTRO = """\
# Schema changelog

What changed in the QMTL contracts, version by version, newest first: the elements added,
newly deprecated and removed in each package, computed from the descriptors of the published
baselines (`make release-schemas`) and of the work tree. Links go to the
[schema reference](reference.md) as it stands now; an element it no longer has is not linked.
How the schemas may change is in [VERSIONING.md](VERSIONING.md).
"""

CHANGES_1_1 = """\
### Package [`shop.stock.v1`](reference.md#shop.stock.v1)

Added:

- message [`Stock`](reference.md#shop.stock.v1.Stock)

### Package [`shop.v1`](reference.md#shop.v1)

Added:

- rpc [`WidgetService.ListWidgets`](reference.md#shop.v1.WidgetService.ListWidgets): `GET /v1/widgets`
- HTTP route `GET /v1/shelves/{id}/widget` of rpc [`WidgetService.GetWidget`](reference.md#shop.v1.WidgetService.GetWidget)
- message [`Gadget`](reference.md#shop.v1.Gadget)
- message [`ListWidgetsRequest`](reference.md#shop.v1.ListWidgetsRequest)
- field [`Widget.weight`](reference.md#shop.v1.Widget)
- enum value [`Size.SIZE_LARGE`](reference.md#shop.v1.Size)

Deprecated:

- message [`GetWidgetRequest`](reference.md#shop.v1.GetWidgetRequest)
- field [`Widget.colour`](reference.md#shop.v1.Widget)

Removed:

- rpc `WidgetService.Ping` (gRPC only)
- field [`Widget.legacy`](reference.md#shop.v1.Widget)
- enum value [`Size.SIZE_HUGE`](reference.md#shop.v1.Size)
"""  # noqa: E501

TOTALS_1_0 = """\
| Package | Services | RPCs | HTTP routes | Messages | Fields | Enums | Enum values |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
| [`shop.v1`](reference.md#shop.v1) | 1 | 2 | 1 | 2 | 4 | 1 | 3 |
"""


def compile_files(tmp_path: Path, files: dict[str, str]) -> descriptor_pb2.FileDescriptorSet:
    """The files as buf would hand them over: imports and source info included."""
    root = tmp_path / "protos"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    out = tmp_path / "set.binpb"
    status = protoc.main(
        [
            "protoc",
            f"-I{root}",
            f"-I{PROTO_DEPS}",
            f"-I{WELL_KNOWN}",
            "--include_imports",
            "--include_source_info",
            f"--descriptor_set_out={out}",
            *sorted(files),
        ]
    )
    assert status == 0, "protoc could not compile the probe schemas"
    return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


@pytest.fixture
def compile_schema(tmp_path: Path) -> CompileSchema:
    counter = iter(range(100))

    def make(files: dict[str, str]) -> Schema:
        scratch = tmp_path / f"v{next(counter)}"
        return schema_of_image(compile_files(scratch, files), ["shop"])

    return make


@pytest.fixture
def v1_0(compile_schema: CompileSchema) -> Schema:
    return compile_schema({WIDGETS: WIDGETS_1_0})


@pytest.fixture
def v1_1(compile_schema: CompileSchema) -> Schema:
    return compile_schema({WIDGETS: WIDGETS_1_1, STOCK: STOCK_1_1})


def header() -> str:
    return (
        "<!-- Code generated by qmtl-codegen 0.1.0 (changelog) "
        f"from {HEADER_SOURCE}. DO NOT EDIT. -->\n\n"
    )


def test_work_tree_against_one_baseline(v1_0: Schema, v1_1: Schema) -> None:
    page = changelog.changelog(v1_1, [("1.0.0", v1_0)], HEADER_SOURCE)
    assert page == (
        header()
        + INTRO
        + "\n## Unreleased\n\nIn the work tree since 1.0.0.\n\n"
        + CHANGES_1_1
        + "\n## 1.0.0\n\n"
        + "The first release: the contracts as first published, counted per package.\n\n"
        + TOTALS_1_0
    )


def test_each_baseline_against_the_one_before_newest_first(v1_0: Schema, v1_1: Schema) -> None:
    page = changelog.changelog(v1_1, [("1.0.0", v1_0), ("1.1.0", v1_1)], HEADER_SOURCE)
    assert page == (
        header()
        + INTRO
        + "\n## Unreleased\n\nNo changes to the schemas since 1.1.0.\n"
        + "\n## 1.1.0\n\nChanges since 1.0.0.\n\n"
        + CHANGES_1_1
        + "\n## 1.0.0\n\n"
        + "The first release: the contracts as first published, counted per package.\n\n"
        + TOTALS_1_0
    )


def test_links_only_what_the_work_tree_still_has(v1_0: Schema, v1_1: Schema) -> None:
    # The work tree went back to 1.0.0's schema: what 1.1.0 added is gone from the reference.
    page = changelog.changelog(v1_0, [("1.0.0", v1_0), ("1.1.0", v1_1)], HEADER_SOURCE)
    unreleased = page.split("\n## Unreleased\n", 1)[1].split("\n## 1.1.0\n", 1)[0]
    stock, widgets = unreleased.split("### Package [`shop.v1`](reference.md#shop.v1)")
    added, removed = widgets.split("Removed:")
    # Back in the work tree, so linked; gone from it (and from the reference), so not.
    ping = "[`WidgetService.Ping`](reference.md#shop.v1.WidgetService.Ping)"
    assert f"- rpc {ping} (gRPC only)\n" in added
    assert "- message `Gadget`\n" in removed
    assert "- message `ListWidgetsRequest`\n" in removed
    assert "### Package `shop.stock.v1`\n\nRemoved:\n\n- message `Stock`\n" in stock
    section_1_1 = page.split("\n## 1.1.0\n", 1)[1].split("\n## 1.0.0\n", 1)[0]
    assert "- message `Stock`\n" in section_1_1
    assert "- rpc `WidgetService.ListWidgets`: `GET /v1/widgets`\n" in section_1_1
    # Still there: the message whose field 1.1.0 added keeps its link.
    assert "- field [`Widget.weight`](reference.md#shop.v1.Widget)\n" in section_1_1


def test_no_baseline_yet(v1_0: Schema) -> None:
    assert changelog.changelog(v1_0, [], HEADER_SOURCE) == (
        header()
        + INTRO
        + "\n## Unreleased\n\nNo release yet: the first `make release-schemas VERSION=1.0.0` "
        + "publishes the baseline `1.0.0`, and from then on every change to the schemas is "
        + "listed here.\n"
    )


def _reordered(source: str) -> str:
    """WIDGETS_1_1 with its top-level declarations in reverse order."""
    head, _, body = source.partition('import "google/api/annotations.proto";\n\n')
    blocks = body.strip("\n").split("\n\n")
    return (
        head + 'import "google/api/annotations.proto";\n\n' + "\n\n".join(reversed(blocks)) + "\n"
    )


def test_declaration_order_does_not_matter(
    compile_schema: CompileSchema, v1_0: Schema, v1_1: Schema
) -> None:
    shuffled = _reordered(WIDGETS_1_1)
    assert shuffled != WIDGETS_1_1
    other = compile_schema({WIDGETS: shuffled, STOCK: STOCK_1_1})
    expected = changelog.changelog(v1_1, [("1.0.0", v1_0)], HEADER_SOURCE)
    assert changelog.changelog(other, [("1.0.0", v1_0)], HEADER_SOURCE) == expected
    assert changelog.changelog(v1_1, [("1.0.0", v1_0)], HEADER_SOURCE) == expected


# --- the plugin, as buf runs it ----------------------------------------------------------------


def scratch_workspace(tmp_path: Path) -> Path:
    """A copy of the buf workspace (buf.yaml, schemas/, the vendored google/api protos)."""
    assert BUF.is_file(), "run `make setup`"
    assert (PROTO_DEPS / "google" / "api" / "http.proto").is_file(), "run `make setup`"
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(ROOT / "buf.yaml", work / "buf.yaml")
    shutil.copytree(ROOT / "schemas", work / "schemas", ignore=shutil.ignore_patterns("releases"))
    shutil.copytree(PROTO_DEPS, work / ".tools" / "proto-deps")
    return work


def buf_image(work: Path, out: Path) -> descriptor_pb2.FileDescriptorSet:
    out.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [str(BUF), "build", "-o", str(out)], cwd=work, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, f"{path}: {old!r} is not there once"
    path.write_text(text.replace(old, new))


def run_plugin(
    request: plugin_pb2.CodeGeneratorRequest, cwd: Path
) -> plugin_pb2.CodeGeneratorResponse:
    proc = subprocess.run(
        [sys.executable, "-m", "qmtl_codegen.changelog"],
        input=request.SerializeToString(),
        cwd=cwd,
        capture_output=True,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    return plugin_pb2.CodeGeneratorResponse.FromString(proc.stdout)


def test_plugin_renders_the_baselines_buf_built(tmp_path: Path) -> None:
    work = scratch_workspace(tmp_path)
    releases = work / "schemas" / "releases"
    buf_image(work, releases / "1.0.0.binpb")
    record = work / "schemas" / "qmtl" / "data" / "v1" / "record.proto"
    edit(record, "string compute_key = 5;", "string compute_key = 5 [deprecated = true];")
    edit(
        record,
        "  bytes payload = 7;\n}",
        "  bytes payload = 7;\n  // A note added after 1.0.0.\n  string probe_note = 8;\n}",
    )
    image = buf_image(work, releases / "1.1.0.binpb")
    targets = [f.name for f in image.file if f.name.startswith("qmtl/")]
    # buf runs the plugin from the workspace root with `opt: [releases=schemas/releases]`.
    request = plugin_pb2.CodeGeneratorRequest(
        file_to_generate=targets, proto_file=image.file, parameter="releases=schemas/releases"
    )
    response = run_plugin(request, cwd=work)

    assert not response.error
    assert [f.name for f in response.file] == ["CHANGELOG.md"]
    page = response.file[0].content
    assert page.startswith("<!-- Code generated by qmtl-codegen ")
    assert "from schemas/releases/*.binpb and qmtl/**/*.proto. DO NOT EDIT. -->" in page
    assert "\n## Unreleased\n\nNo changes to the schemas since 1.1.0.\n" in page
    assert page.index("\n## 1.1.0\n") < page.index("\n## 1.0.0\n")
    section_1_1 = page.split("\n## 1.1.0\n", 1)[1].split("\n## 1.0.0\n", 1)[0]
    assert section_1_1 == (
        "\nChanges since 1.0.0.\n\n"
        "### Package [`qmtl.data.v1`](reference.md#qmtl.data.v1)\n\n"
        "Added:\n\n"
        "- field [`Record.probe_note`](reference.md#qmtl.data.v1.Record)\n\n"
        "Deprecated:\n\n"
        "- field [`Record.compute_key`](reference.md#qmtl.data.v1.Record)\n"
    )
    # The first baseline is counted, with no google/* package among ours.
    totals = page.split("\n## 1.0.0\n", 1)[1]
    assert "| [`qmtl.data.v1`](reference.md#qmtl.data.v1) | 0 | 0 | 0 | 1 | 7 | 0 | 0 |" in totals
    assert "google." not in totals
    # The same request again gives the same bytes.
    assert run_plugin(request, cwd=work).file[0].content == page


def test_plugin_reports_an_unreadable_baseline(tmp_path: Path) -> None:
    releases = tmp_path / "releases"
    releases.mkdir()
    (releases / "1.0.0.binpb").write_bytes(b"\xff\xff not an image")
    request = plugin_pb2.CodeGeneratorRequest(parameter=f"releases={releases}")
    response = run_plugin(request, cwd=tmp_path)
    assert not response.file
    assert response.error.startswith(
        f"changelog: {releases / '1.0.0.binpb'}: not a readable buf image"
    )


def test_a_stray_file_in_the_releases_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "latest.binpb").write_bytes(b"")
    request = plugin_pb2.CodeGeneratorRequest(parameter=f"releases={tmp_path}")
    with pytest.raises(GeneratorError, match=r"latest\.binpb: not a release baseline name"):
        list(changelog.generate(request))


def test_releases_default_to_schemas_releases_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert changelog.ChangelogOptions().releases == "schemas/releases"
    (page,) = changelog.generate(plugin_pb2.CodeGeneratorRequest())
    assert page.name == "CHANGELOG.md"
    assert isinstance(page.content, str)
    assert "No release yet" in page.content
