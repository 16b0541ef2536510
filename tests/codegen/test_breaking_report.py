"""The report half of scripts/breaking.sh: buf's JSON findings and ours in one format and exit code.

Runs qmtl_codegen.breaking_report in-process on hand-written buf reports and tiny images, so the
outcomes that are awkward to provoke through buf (a failure before comparing, a missing image,
a stray baseline name) are checked too; tests/contracts drive the whole script.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

from qmtl_codegen import breaking_report, contract_checks

FIELD_SAME_TYPE = {
    "path": "schemas/qmtl/dag/v1/queue.proto",
    "start_line": 24,
    "start_column": 3,
    "type": "FIELD_SAME_TYPE",
    "message": 'Field "4" with name "interval" changed type from "int64" to "int32".',
}


def image(path: Path, *files: descriptor_pb2.FileDescriptorProto) -> Path:
    path.write_bytes(descriptor_pb2.FileDescriptorSet(file=files).SerializeToString())
    return path


def probe_file(event_type: str) -> descriptor_pb2.FileDescriptorProto:
    """qmtl/probe/v1/e.proto: an Event whose one payload member declares `event_type`."""
    proto = descriptor_pb2.FileDescriptorProto(name="qmtl/probe/v1/e.proto", package="p")
    message = proto.message_type.add(name="Event")
    message.field.add(name="made", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING)
    location = proto.source_code_info.location.add(path=[4, 0, 2, 0], span=[6, 2, 20])
    location.leading_comments = f" type `{event_type}`.\n"
    return proto


@pytest.fixture
def same(tmp_path: Path) -> tuple[Path, Path]:
    return image(tmp_path / "a.binpb", probe_file("p.made")), image(
        tmp_path / "b.binpb", probe_file("p.made")
    )


def report(
    tmp_path: Path, lines: list[str], status: int, baseline: Path, current: Path, errors: str = ""
) -> int:
    (tmp_path / "report").write_text("".join(f"{line}\n" for line in lines))
    (tmp_path / "errors").write_text(errors)
    return breaking_report.main(
        [
            "report",
            "--label",
            "baseline 1.0.0",
            "--buf-report",
            str(tmp_path / "report"),
            "--buf-status",
            str(status),
            "--baseline",
            str(baseline),
            "--current",
            str(current),
            "--build-errors",
            str(tmp_path / "errors"),
        ]
    )


def test_buf_findings_are_reprinted_with_their_rule_and_counted(
    tmp_path: Path, same: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code = report(tmp_path, [json.dumps(FIELD_SAME_TYPE), "a plain line"], 100, *same)
    out, err = capsys.readouterr()
    assert code == 100
    assert out.splitlines() == [
        'schemas/qmtl/dag/v1/queue.proto:24:3: Field "4" with name "interval" changed type '
        'from "int64" to "int32". (FIELD_SAME_TYPE)',
        "a plain line",
    ]
    assert "breaking: 1 breaking change(s) against baseline 1.0.0" in err


def test_our_findings_alone_exit_as_buf_violations_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    baseline = image(tmp_path / "a.binpb", probe_file("p.made"))
    current = image(tmp_path / "b.binpb", probe_file("p.created"))
    code = report(tmp_path, [], 0, baseline, current)
    out, err = capsys.readouterr()
    assert code == breaking_report.BREAKING_EXIT == 100
    assert out == (
        'schemas/qmtl/probe/v1/e.proto:7:3: Field "1" with name "made" on message "Event" '
        'changed its event type from "p.made" to "p.created". (QMTL_EVENT_TYPE_SAME)\n'
    )
    assert "1 breaking change(s)" in err


def test_clean_comparison_passes(
    tmp_path: Path, same: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert report(tmp_path, [], 0, *same) == 0
    assert capsys.readouterr().out == "breaking: no breaking change against baseline 1.0.0\n"


def test_compile_errors_win_over_everything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    compile_error = {**FIELD_SAME_TYPE, "type": "COMPILE", "message": "syntax error"}
    missing = tmp_path / "missing.binpb"
    code = report(tmp_path, [json.dumps(compile_error)], 100, missing, missing, "not shown")
    out, err = capsys.readouterr()
    assert code == 100
    assert out.endswith(": syntax error (COMPILE)\n")
    assert "the schemas do not compile (1 error(s))" in err
    assert "not shown" not in err


def test_buf_failure_before_comparing_keeps_its_exit_code(
    tmp_path: Path, same: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert report(tmp_path, ["Failure: something else"], 1, *same) == 1
    assert "buf breaking failed (exit 1) before comparing" in capsys.readouterr().err


def test_missing_image_shows_the_build_errors(
    tmp_path: Path, same: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code = report(tmp_path, [], 0, same[0], tmp_path / "none.binpb", "buf: cannot build\n")
    err = capsys.readouterr().err
    assert code == 1
    assert "buf: cannot build" in err
    assert "the option checks could not run" in err


def test_unreadable_image_is_an_error(
    tmp_path: Path, same: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.binpb"
    broken.write_bytes(b"\xff\xff\xff")
    assert report(tmp_path, [], 0, broken, same[1]) == 1
    assert "not a readable buf image" in capsys.readouterr().err


def test_latest_orders_versions_numerically(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert breaking_report.main(["latest", str(tmp_path)]) == 0
    assert capsys.readouterr().out == ""
    for name in ("1.9.0", "1.10.0", "1.2.3"):
        (tmp_path / f"{name}.binpb").write_bytes(b"")
    assert breaking_report.main(["latest", str(tmp_path)]) == 0
    assert capsys.readouterr().out == f"{tmp_path / '1.10.0.binpb'}\n"
    (tmp_path / "next.binpb").write_bytes(b"")
    assert breaking_report.main(["latest", str(tmp_path)]) == 2
    assert "not a release baseline name" in capsys.readouterr().err


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


@pytest.mark.parametrize(("flag", "expected"), [(1, True), (0, False)])
def test_files_buf_marks_as_imports_are_not_compared(flag: int, expected: bool) -> None:
    # buf.alpha.image.v1.ImageFileExtension, with other field kinds ahead of is_import (1).
    extension = (
        _varint(2 << 3 | 2)
        + _varint(3)
        + b"abc"
        + _varint(3 << 3 | 1)
        + bytes(8)
        + _varint(4 << 3 | 5)
        + bytes(4)
        + _varint(1 << 3 | 0)
        + _varint(flag)
    )
    raw = descriptor_pb2.FileDescriptorProto(name="x.proto").SerializeToString()
    raw += _varint(8042 << 3 | 2) + _varint(len(extension)) + extension
    proto = descriptor_pb2.FileDescriptorProto.FromString(raw)
    assert contract_checks._is_import(proto) is expected
    assert contract_checks._is_import(descriptor_pb2.FileDescriptorProto(name="y.proto")) is False
