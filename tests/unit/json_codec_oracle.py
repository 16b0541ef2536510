"""The reference the generated JSON codec is held to, and what the differential tests share.

The reference is the runtime codec's JSON path before the generated codec: json_format's
MessageToDict printed by json.dumps, and codec._parse_json (json.loads refusing duplicate keys
and non-finite numbers, json_format.ParseDict, json_shape's checks) followed by
wellknown_range.unwritable, as codec.decode does. `ours` is codec.encode / codec.decode, which
now go through the generated `_json` modules.
"""

from __future__ import annotations

import importlib
import json
import math
from pathlib import Path
from typing import Any

from google.protobuf import descriptor, json_format, message, message_factory

from qmtl.runtime import codec, json_codec, wellknown_range
from qmtl.runtime.codec import Encoding
from qmtl.runtime.errors import QmtlError

GENERATED = Path(__file__).resolve().parents[2] / "generated" / "python"
REJECTED = "rejected"


def all_codec_modules() -> list[str]:
    """Every generated `_json` module, imported (which registers its messages)."""
    names = sorted(
        path.relative_to(GENERATED).with_suffix("").as_posix().replace("/", ".")
        for path in GENERATED.rglob("*_json.py")
    )
    for name in names:
        importlib.import_module(name.removesuffix("_json") + "_pb2")
        importlib.import_module(name)
    return names


def message_types() -> list[type[message.Message]]:
    """The message classes of every generated `_json` module, by full name."""
    all_codec_modules()
    found = []
    for name in sorted(json_codec._codecs):
        pool_desc = _pool().FindMessageTypeByName(name)
        found.append(message_factory.GetMessageClass(pool_desc))
    return found


def _pool() -> Any:
    from google.protobuf import descriptor_pool

    return descriptor_pool.Default()


def reference_encode(msg: message.Message, emit_defaults: bool = False) -> Any:
    """The JSON value (parsed back) the runtime printed before, or REJECTED."""
    try:
        mapped = json_format.MessageToDict(msg, always_print_fields_with_no_presence=emit_defaults)
        text = json.dumps(mapped, separators=(",", ":"), ensure_ascii=False)
    except (json_format.SerializeToJsonError, ValueError):
        return REJECTED
    return json.loads(text)


def ours_encode(msg: message.Message, emit_defaults: bool = False) -> Any:
    try:
        data = codec.encode(msg, Encoding.JSON, emit_defaults=emit_defaults)
    except (json_format.SerializeToJsonError, ValueError):
        return REJECTED
    return json.loads(data)


def reference_decode(cls: type[message.Message], data: bytes, ignore_unknown: bool = False) -> Any:
    """The message's deterministic bytes as the reference decodes `data`, or REJECTED."""
    msg = cls()
    try:
        codec._parse_json(data, msg, ignore_unknown)
    except (json_format.ParseError, UnicodeDecodeError, RecursionError):
        return REJECTED
    if wellknown_range.unwritable(msg) is not None:
        return REJECTED
    return msg.SerializeToString(deterministic=True)


def ours_decode(cls: type[message.Message], data: bytes, ignore_unknown: bool = False) -> Any:
    try:
        msg = codec.decode(cls, data, Encoding.JSON, ignore_unknown=ignore_unknown)
    except QmtlError:
        return REJECTED
    return msg.SerializeToString(deterministic=True)


def fast_path_decodes(
    cls: type[message.Message], data: bytes, ignore_unknown: bool = False
) -> bool:
    """Whether the generated functions alone (no reference fallback) decode `data`."""
    generated = json_codec.lookup(cls.DESCRIPTOR)
    assert generated is not None, f"{cls.DESCRIPTOR.full_name} has no generated codec"
    return json_codec.try_decode(generated, data, cls(), ignore_unknown)


def same_json(left: Any, right: Any) -> bool:
    """JSON values equal after parsing; NaN is never a JSON number here, so == is exact."""
    if isinstance(left, float) and isinstance(right, float) and math.isnan(left):
        return math.isnan(right)
    return bool(left == right)


def field_of(desc: descriptor.Descriptor, name: str) -> descriptor.FieldDescriptor:
    return desc.fields_by_name[name]
