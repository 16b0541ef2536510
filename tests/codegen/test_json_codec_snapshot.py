"""The JSON codec plugin's exact output on the inline probe schema (json_codec_probe.py).

After an intended change, rewrite it with `UPDATE_SNAPSHOTS=1 .venv/bin/pytest
tests/codegen/test_json_codec_snapshot.py` and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

from google.protobuf.compiler import plugin_pb2

from qmtl_codegen import json_codec
from tests.codegen import json_codec_probe

SNAPSHOT = Path(__file__).parent / "snapshots" / "json_codec" / "codec_probe_json.py.snap"
UPDATE = os.environ.get("UPDATE_SNAPSHOTS") == "1"


def test_plugin_output_matches_the_snapshot(tmp_path: Path) -> None:
    outputs = json_codec_probe.generated_source(tmp_path)
    assert list(outputs) == ["qmtljsonprobe/v1/codec_probe_json.py"]
    (text,) = outputs.values()
    if UPDATE:
        SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
        SNAPSHOT.write_text(text)
    assert text == SNAPSHOT.read_text(), "run with UPDATE_SNAPSHOTS=1 and review the diff"


def test_files_without_messages_get_no_module(tmp_path: Path) -> None:
    request = json_codec_probe.request(tmp_path)
    only_enums = plugin_pb2.CodeGeneratorRequest()
    only_enums.CopyFrom(request)
    probe = only_enums.proto_file[-1]
    del probe.message_type[:]
    assert list(json_codec.generate(only_enums)) == []


def test_module_path_sits_next_to_the_messages() -> None:
    assert json_codec.module_path("qmtl/dag/v1/dag.proto") == "qmtl/dag/v1/dag_json.py"
