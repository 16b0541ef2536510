"""Each rule of the proto3 JSON mapping, on the generated codec of an inline probe schema.

Every case checks three things: what codec.encode/decode give (the value the rule asks for,
or a 400 E_MALFORMED_BODY), that json_format (the runtime's JSON path before the generated
codec) gives the same, and whether the generated functions decided it alone (the fast path)
or left it to the reference parser.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from google.protobuf import duration_pb2, json_format, message

from qmtl.runtime import codec, contracts_version, json_codec
from qmtl.runtime.codec import Encoding
from qmtl.runtime.errors import ErrorCode, QmtlError
from tests.codegen import json_codec_probe
from tests.unit import json_codec_oracle as oracle


@pytest.fixture(scope="module")
def pb(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    messages, _ = json_codec_probe.load(tmp_path_factory.mktemp("json_codec_probe"))
    return messages


def printed(msg: message.Message, emit_defaults: bool = False) -> Any:
    """Ours, parsed; asserted equal to the reference's."""
    ours = oracle.ours_encode(msg, emit_defaults)
    assert oracle.same_json(ours, oracle.reference_encode(msg, emit_defaults))
    return ours


def read(cls: type[message.Message], body: Any, *, ignore_unknown: bool = False, fast: bool) -> Any:
    """Ours decoded (a message, or REJECTED), asserted equal to the reference's decision."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    ours = oracle.ours_decode(cls, data, ignore_unknown)
    assert ours == oracle.reference_decode(cls, data, ignore_unknown), data
    assert oracle.fast_path_decodes(cls, data, ignore_unknown) is fast, data
    return ours if ours == oracle.REJECTED else cls.FromString(ours)


def test_registered_when_the_module_imports(pb: ModuleType) -> None:
    for name in ("Scalars", "Maps", "Known", "Choice", "Choice.Inner"):
        assert (
            json_codec.lookup(pb.DESCRIPTOR.message_types_by_name[name.split(".")[0]]) is not None
        )
    assert json_codec.lookup(pb.Choice.Inner.DESCRIPTOR) is not None


def test_64_bit_integers_print_as_strings_and_read_from_numbers_or_strings(pb: ModuleType) -> None:
    msg = pb.Scalars(i64=-(2**63), u64=2**64 - 1, f64=7, s64=-3, i32=-5, u32=9, many=[1, -2])
    assert printed(msg) == {
        "i64": str(-(2**63)),
        "u64": str(2**64 - 1),
        "f64": "7",
        "s64": "-3",
        "i32": -5,
        "u32": 9,
        "many": ["1", "-2"],
    }
    assert read(pb.Scalars, {"i64": "12", "u64": 13, "many": ["1", 2]}, fast=True) == pb.Scalars(
        i64=12, u64=13, many=[1, 2]
    )
    assert read(pb.Scalars, {"i32": "-7"}, fast=True).i32 == -7
    assert read(pb.Scalars, {"i64": 1.0}, fast=False).i64 == 1  # accepted, by the reference
    assert read(pb.Scalars, {"i64": "1e2"}, fast=True).i64 == 100  # json_format's own reading
    for bad in ({"u64": -1}, {"i64": str(2**63)}, {"i32": 2**31}, {"i64": "1 "}, {"i64": 1.5}):
        assert read(pb.Scalars, bad, fast=False) == oracle.REJECTED
    assert read(pb.Scalars, {"i64": True}, fast=False) == oracle.REJECTED


def test_enums_by_name_numbers_accepted_unknown_names_refused_unless_ignored(
    pb: ModuleType,
) -> None:
    assert printed(pb.Scalars(color=pb.COLOR_BLUE, colors=[1, 0])) == {
        "color": "COLOR_BLUE",
        "colors": ["COLOR_RED", "COLOR_UNSPECIFIED"],
    }
    assert printed(pb.Scalars(color=7)) == {"color": 7}  # an open enum's unknown number
    assert read(pb.Scalars, {"color": "COLOR_RED"}, fast=True).color == pb.COLOR_RED
    assert read(pb.Scalars, {"color": 2}, fast=True).color == pb.COLOR_BLUE
    assert read(pb.Scalars, {"color": 9}, fast=False).color == 9
    assert read(pb.Scalars, {"color": "COLOR_GREEN"}, fast=False) == oracle.REJECTED
    ignored = read(pb.Scalars, {"color": "COLOR_GREEN"}, ignore_unknown=True, fast=False)
    assert ignored == pb.Scalars()
    assert read(pb.Scalars, {"color": True}, fast=False) == oracle.REJECTED
    assert read(pb.Scalars, {"color": 1.5}, fast=False) == oracle.REJECTED


def test_bytes_base64_both_alphabets_with_or_without_padding(pb: ModuleType) -> None:
    raw = b"\xfb\xff\xfe"
    assert printed(pb.Scalars(data=raw, blobs=[b"a"])) == {"data": "+//+", "blobs": ["YQ=="]}
    for spelt in ("+//+", "-__-", "YQ", "YQ=="):
        expected = raw if spelt in ("+//+", "-__-") else b"a"
        assert read(pb.Scalars, {"data": spelt}, fast=True).data == expected
    assert read(pb.Scalars, {"data": 5}, fast=False) == oracle.REJECTED


def test_floats_nan_infinity_negative_zero_and_float32_printing(pb: ModuleType) -> None:
    body = printed(pb.Scalars(dbl=-0.0, flt=0.1))
    assert body == {"dbl": -0.0, "flt": 0.1}
    assert math.copysign(1.0, body["dbl"]) < 0  # -0 is printed, with its sign
    for value, text in ((math.nan, "NaN"), (math.inf, "Infinity"), (-math.inf, "-Infinity")):
        assert printed(pb.Scalars(dbl=value, flt=value)) == {"dbl": text, "flt": text}
        decoded = read(pb.Scalars, {"dbl": text, "flt": text}, fast=True)
        assert str(decoded.dbl) == str(value)
        assert str(decoded.flt) == str(value)
    assert read(pb.Scalars, {"dbl": "1.5"}, fast=False).dbl == 1.5
    assert read(pb.Scalars, {"flt": 1e39}, fast=False) == oracle.REJECTED
    assert read(pb.Scalars, b'{"dbl": NaN}', fast=False) == oracle.REJECTED
    assert read(pb.Scalars, b'{"dbl": 1e999}', fast=False) == oracle.REJECTED


def test_json_name_printed_and_both_names_read_but_not_together(pb: ModuleType) -> None:
    assert printed(pb.Scalars(custom="x", maybe=0)) == {"renamed": "x", "maybe": "0"}
    assert read(pb.Scalars, {"renamed": "x"}, fast=True).custom == "x"
    assert read(pb.Scalars, {"custom": "x"}, fast=False).custom == "x"  # proto name: reference
    assert read(pb.Scalars, {"custom": "x", "renamed": "y"}, fast=False) == oracle.REJECTED


def test_presence_and_emit_defaults(pb: ModuleType) -> None:
    assert printed(pb.Scalars()) == {}
    everything = printed(pb.Scalars(), emit_defaults=True)
    assert everything["i64"] == "0"
    assert everything["color"] == "COLOR_UNSPECIFIED"
    assert "maybe" not in everything  # explicit presence: only when set
    assert printed(pb.Scalars(maybe=0)) == {"maybe": "0"}
    assert read(pb.Scalars, {"maybe": "0"}, fast=True).HasField("maybe")
    assert printed(pb.Known(), emit_defaults=True) == {"times": []}


def test_oneofs_one_member_only(pb: ModuleType) -> None:
    assert printed(pb.Choice(number=0)) == {"number": "0"}
    assert read(pb.Choice, {"number": "0"}, fast=True).WhichOneof("pick") == "number"
    nested = read(pb.Choice, {"nested": {}}, fast=True)
    assert nested.WhichOneof("pick") == "nested"
    assert read(pb.Choice, {"name": "a", "number": 1}, fast=False) == oracle.REJECTED
    assert read(pb.Choice, {"name": "a", "number": None}, fast=False).name == "a"
    deep = {"child": {"child": {"inner": {"color": "COLOR_RED"}}}}
    assert printed(read(pb.Choice, deep, fast=True)) == deep


def test_maps_with_non_string_keys(pb: ModuleType) -> None:
    msg = pb.Maps(by_name={"a": 1}, by_int={-3: "x"}, by_u64={2**64 - 1: pb.COLOR_RED})
    msg.by_flag[True].i32 = 1
    msg.by_flag[False].SetInParent()
    body = printed(msg)
    assert body == {
        "byName": {"a": "1"},
        "byInt": {"-3": "x"},
        "byFlag": {"true": {"i32": 1}, "false": {}},
        "byU64": {str(2**64 - 1): "COLOR_RED"},
    }
    assert read(pb.Maps, body, fast=True) == msg
    assert read(pb.Maps, {"byFlag": {"yes": {}}}, fast=False) == oracle.REJECTED
    assert read(pb.Maps, {"byInt": {"1.5": "x"}}, fast=False) == oracle.REJECTED
    assert read(pb.Maps, {"byName": {"a": None}}, fast=False) == oracle.REJECTED


def test_small_messages_in_a_list_print_inline_each_element_alone(pb: ModuleType) -> None:
    # Every combination of set and default fields, side by side in one list: an element with
    # a default field goes to its own function, the others are printed inline.
    pairs = [
        pb.Pair(
            label="a" if n & 1 else "",
            count=-n if n & 2 else 0,
            on=bool(n & 4),
            data=b"\xff"[: n >> 3],
        )
        for n in range(16)
    ]
    msg = pb.Pairs(pairs=pairs, inners=[pb.Choice.Inner(color=c) for c in (0, 1, 2)])
    body = printed(msg)
    assert body["pairs"][0] == {}
    assert body["pairs"][15] == {"label": "a", "count": "-15", "on": True, "data": "/w=="}
    assert body["inners"] == [{}, {"color": "COLOR_RED"}, {"color": "COLOR_BLUE"}]
    everything = printed(msg, emit_defaults=True)
    assert everything["pairs"][0] == {"label": "", "count": "0", "on": False, "data": ""}
    assert everything["inners"][0] == {"color": "COLOR_UNSPECIFIED"}
    assert read(pb.Pairs, body, fast=True) == msg


def test_timestamp_and_duration_rfc3339_and_range(pb: ModuleType) -> None:
    msg = pb.Known()
    msg.at.FromJsonString("2026-01-02T03:04:05.500Z")
    msg.took.FromJsonString("-1.5s")
    msg.times.add().FromJsonString("0001-01-01T00:00:00Z")
    body = printed(msg)
    assert body == {
        "at": "2026-01-02T03:04:05.500Z",
        "took": "-1.500s",
        "times": ["0001-01-01T00:00:00Z"],
    }
    assert read(pb.Known, body, fast=True) == msg
    assert read(pb.Known, {"at": "2026-01-02T05:04:05+02:00"}, fast=True).at.seconds == (
        msg.at.seconds - msg.at.seconds % 60 + 5
    )
    for bad in (
        {"at": "2026-01-02 03:04:05Z"},
        {"at": "2026-01-02T03:04:05+99:00"},
        {"at": "9999-12-31T23:59:59-01:00"},
        {"at": 5},
        {"took": "1e3s"},
        {"took": "315576000001s"},
        {"times": [None]},
    ):
        assert read(pb.Known, bad, fast=False) == oracle.REJECTED, bad
    out_of_range = pb.Known()
    out_of_range.at.seconds = -62_135_596_801
    assert printed(out_of_range) == oracle.REJECTED


def test_struct_value_list_value(pb: ModuleType) -> None:
    body = {"extra": {"a": [1, "x", None, True, {"b": {}}]}, "anyValue": None, "items": [1.5]}
    decoded = read(pb.Known, body, fast=False)  # a null Value field: the reference's rule
    assert decoded.any_value.WhichOneof("kind") == "null_value"
    del body["anyValue"]
    assert printed(read(pb.Known, body, fast=True)) == body
    assert printed(read(pb.Known, {"anyValue": {"k": [[]]}}, fast=True)) == {
        "anyValue": {"k": [[]]}
    }
    nan = pb.Known()
    nan.any_value.number_value = math.nan
    assert printed(nan) == oracle.REJECTED
    assert read(pb.Known, {"extra": []}, fast=False) == oracle.REJECTED


def test_any_known_types_only(pb: ModuleType) -> None:
    msg = pb.Known()
    msg.packed.Pack(duration_pb2.Duration(seconds=3))
    body = printed(msg)
    assert body == {
        "packed": {"@type": "type.googleapis.com/google.protobuf.Duration", "value": "3s"}
    }
    assert read(pb.Known, body, fast=False) == msg  # an Any is always the reference's
    unknown = {"packed": {"@type": "type.googleapis.com/no.such.Type", "x": 1}}
    assert read(pb.Known, unknown, fast=False) == oracle.REJECTED
    assert read(pb.Known, {"packed": {"value": "3s"}}, fast=False) == oracle.REJECTED
    assert read(pb.Known, {"packed": {}}, fast=False).HasField("packed")


def test_field_mask_wrappers_empty(pb: ModuleType) -> None:
    msg = pb.Known(nothing={})
    msg.mask.paths.extend(["node_id", "spec.code_hash"])
    msg.big.value = 2**40
    msg.blob.value = b"\x00"
    body = printed(msg)
    assert body == {
        "mask": "nodeId,spec.codeHash",
        "big": str(2**40),
        "blob": "AA==",
        "nothing": {},
    }
    assert read(pb.Known, body, fast=True) == msg
    assert read(pb.Known, {"big": 0}, fast=True).HasField("big")
    assert read(pb.Known, {"nothing": {"x": 1}}, fast=False) == oracle.REJECTED
    assert read(pb.Known, {"big": "x"}, fast=False) == oracle.REJECTED


def test_unknown_fields_refused_by_default_ignored_on_request(pb: ModuleType) -> None:
    body = {"i32": 1, "later": {"deep": [1, {"x": 2}]}}
    assert read(pb.Scalars, body, fast=False) == oracle.REJECTED
    assert read(pb.Scalars, body, ignore_unknown=True, fast=True) == pb.Scalars(i32=1)
    # A key shaped like an extension is refused even when unknown fields are ignored.
    assert read(pb.Scalars, {"[a.b]": 1}, ignore_unknown=True, fast=False) == oracle.REJECTED


def test_other_keys_and_nulls_are_judged_after_the_fields_are_read(pb: ModuleType) -> None:
    # The fast path counts the keys it read as fields; a key left over (unknown, a proto name,
    # a null) is judged at the end, in nested messages too, and no field set so far survives a
    # fallback.
    body = {"nested": {"text": "a", "later": 1}, "inner": {"color": "COLOR_RED"}}
    assert read(pb.Choice, body, fast=False) == oracle.REJECTED
    assert read(pb.Choice, body, ignore_unknown=True, fast=True) == pb.Choice(
        nested=pb.Scalars(text="a"), inner=pb.Choice.Inner(color=pb.COLOR_RED)
    )
    with_null = {"text": "a", "later": None}
    assert read(pb.Scalars, with_null, ignore_unknown=True, fast=False) == pb.Scalars(text="a")
    assert read(pb.Scalars, {"text": "a", "i32": None}, fast=False) == pb.Scalars(text="a")
    both = {"nested": {"renamed": "x", "custom": "y"}}
    assert read(pb.Choice, both, ignore_unknown=True, fast=False) == oracle.REJECTED
    assert read(pb.Scalars, {"renamed": "x", "custom": "y"}, fast=False) == oracle.REJECTED


def test_malformed_json_shapes_and_duplicates(pb: ModuleType) -> None:
    for body in (
        b'{"i32": 1, "i32": 2}',
        b'{"nested": {"text": "a:b", "text": "c"}}',
        b"[]",
        b'"x"',
        b"{",
        b"\xff",
        b'{"i32": null, "i32": 1}',
    ):
        assert read(pb.Choice, body, fast=False) == oracle.REJECTED, body
    # A compact body (equal to orjson's own print when no key repeats) is checked the same way.
    assert read(pb.Choice, b'{"name":"a","name":"b"}', fast=False) == oracle.REJECTED
    assert read(pb.Choice, b'{"child":{"name":"a","name":"a"}}', fast=False) == oracle.REJECTED
    assert read(pb.Choice, b'{"child":{"name":"a:b"}}', fast=True).child.name == "a:b"
    # Colons inside strings do not count as keys; an escaped one sends the body to the reference.
    assert read(pb.Choice, b'{"name": "a:b:c"}', fast=True).name == "a:b:c"
    assert read(pb.Choice, b'{"name": "a\\u003ab"}', fast=False).name == "a:b"
    assert read(pb.Scalars, {"i32": None}, fast=False) == pb.Scalars()  # null: the default


def test_errors_are_typed_400s(pb: ModuleType) -> None:
    with pytest.raises(QmtlError) as caught:
        codec.decode(pb.Scalars, b'{"color": "COLOR_GREEN"}', Encoding.JSON)
    assert caught.value.code == ErrorCode.ERROR_CODE_MALFORMED_BODY
    infinite = pb.Known()
    infinite.any_value.number_value = math.inf
    with pytest.raises(json_format.SerializeToJsonError):
        codec.encode(infinite, Encoding.JSON)


def test_messages_without_a_generated_module_use_json_format() -> None:
    body = codec.encode(duration_pb2.Duration(seconds=1), Encoding.JSON)
    assert json.loads(body) == "1s"
    assert json_codec.lookup(duration_pb2.Duration.DESCRIPTOR) is None


def test_generated_module_refuses_another_runtime_contract(tmp_path: Path) -> None:
    source = json_codec_probe.generated_source(tmp_path)
    (text,) = source.values()
    assert f'_qmtl_gen.check_version(1, __name__, "{contracts_version.SPOKEN}")' in text
