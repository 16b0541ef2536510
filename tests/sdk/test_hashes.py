"""The hash helpers and what they do to a node id: the golden vectors of domain.md §2.3 built
through the SDK, and what changes an id and what does not."""

from __future__ import annotations

import functools
import hashlib
import inspect
import linecache
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from qmtl.services.sdk import (
    NULL_HASH,
    Node,
    Strategy,
    StreamInput,
    TagQueryNode,
    code_hash,
    config_hash,
    schema_hash,
)
from qmtl.services.sdk.hashes import canonical_json
from tests.unit.test_nodeid import MA5_ID, MA20_ID, SIG_ID, SRC_ID, TQ_ID

TQ_ALL_ID = "blake3:d3c6fc0777199fa6397dcf4c8be946dbe8db5f699b5302bafb9179f98a0f0467"
TQ_PERIOD_48_ID = "blake3:90b0cd3d785ab2147e73d17a58b1f371ebf861151835efdbe6f6bbad9a138c34"
MA5_CODE_V2_ID = "blake3:2d6f76633a5024ad92d480d05f5bc10988b31daafeb0870f07dfa715e7bc35cb"
MA5_COMPAT_V2_ID = "blake3:47689116ac8ef6e7719cc7b151540cbfab42e23452d2c95463e0d5521fe21768"
CRC_SRC_MA5_MA20_SIG = 3_808_858_857
CRC_WITH_TQ = 220_170_483


def moving_average(view: Any) -> None:
    return None


def source(**changes: Any) -> StreamInput:
    fields: dict[str, Any] = {
        "tags": ["BTC", "price"],
        "interval": "1m",
        "period": 30,
        "schema_compat_id": "ohlcv-v1",
    }
    return StreamInput(**(fields | changes))


def ma(src: StreamInput, window: int, **changes: Any) -> Node:
    fields: dict[str, Any] = {
        "input": src,
        "compute_fn": moving_average,
        "period": window,
        "name": f"ma{window}",
        "config": {"window": window, "field": "close"},
        "schema_compat_id": "ind-v1",
        "code_hash": "code-ma",
    }
    return Node(**(fields | changes))


def signal(inputs: list[Node]) -> Node:
    return Node(
        input=inputs,
        compute_fn=moving_average,
        period=1,
        name="cross",
        config={"threshold": 0.0},
        schema_compat_id="sig-v1",
        code_hash="code-sig",
    )


def tag_query(**changes: Any) -> TagQueryNode:
    fields: dict[str, Any] = {
        "query_tags": ["price", "BTC"],
        "interval": 60,
        "period": 24,
        "schema_compat_id": "tq-v1",
    }
    return TagQueryNode(**(fields | changes))


def golden_strategy() -> Strategy:
    """SRC, MA5, MA20, SIG of domain.md §2.3, in that order, through the SDK."""
    src = source()
    return Strategy("golden", [signal([ma(src, 5), ma(src, 20)])])


# -- the golden vectors ------------------------------------------------------------------------


def test_null_hash_is_sha256_of_null() -> None:
    assert hashlib.sha256(b"null").hexdigest() == NULL_HASH
    assert NULL_HASH == "74234e98afe7498fb5daf1f36ac2d78acc339464f950703b8c019892f982b90b"


def test_the_golden_nodes_get_the_published_ids() -> None:
    src = source()
    ma5, ma20 = ma(src, 5), ma(src, 20)
    assert (src.node_id, ma5.node_id, ma20.node_id) == (SRC_ID, MA5_ID, MA20_ID)
    assert signal([ma5, ma20]).node_id == SIG_ID
    assert signal([ma20, ma5]).node_id == SIG_ID  # the rule sorts dependencies
    assert src.code_hash == NULL_HASH  # a source has no code
    assert tag_query().node_id == TQ_ID
    assert tag_query(match_mode="all").node_id == TQ_ALL_ID
    assert tag_query(period=48).node_id == TQ_PERIOD_48_ID
    assert tag_query().code_hash == NULL_HASH


def test_the_golden_strategy_gets_the_published_checksums() -> None:
    strategy = golden_strategy()
    assert [n.node_id for n in strategy.nodes] == [SRC_ID, MA5_ID, MA20_ID, SIG_ID]
    assert strategy.node_ids_crc32() == CRC_SRC_MA5_MA20_SIG
    strategy.add(tag_query())
    assert strategy.node_ids_crc32() == CRC_WITH_TQ


def test_the_code_and_the_compatibility_class_change_the_id() -> None:
    src = source()
    assert ma(src, 5, code_hash="code-ma-v2").node_id == MA5_CODE_V2_ID
    assert ma(src, 5, schema_compat_id="ind-v2").node_id == MA5_COMPAT_V2_ID


@pytest.mark.parametrize(
    "changes",
    [
        {"config": {"window": 5, "field": "close", "world_id": "w1", "seed": 7}},
        {"config": {"field": "close", "window": 5, "env_region": "eu", "AS_OF": "2024"}},
        {"name": "fast"},
        {"tags": ["ma", "fast"]},
        {"schema": {"fields": {"value": "double"}}},  # compat id pinned: schema_hash only
    ],
)
def test_display_fields_excluded_params_and_the_schema_hash_keep_the_id(
    changes: dict[str, Any],
) -> None:
    node = ma(source(), 5, **changes)
    assert node.node_id == MA5_ID


def test_source_tags_and_name_are_not_in_its_id() -> None:
    assert source(tags=["ETH"], name="eth").node_id == SRC_ID


# -- code_hash ---------------------------------------------------------------------------------


def test_code_hash_is_sha256_of_the_functions_source() -> None:
    expected = hashlib.sha256(inspect.getsource(moving_average).encode()).hexdigest()
    assert code_hash(moving_average) == expected
    assert code_hash(None) == NULL_HASH


def compiled(source_text: str, name: str) -> Callable[..., Any]:
    """A function defined from `source_text` in a file of its own, so getsource finds it."""
    namespace: dict[str, Any] = {}
    filename = f"<sdk-test-{hashlib.sha256(source_text.encode()).hexdigest()[:12]}>"
    linecache.cache[filename] = (len(source_text), None, source_text.splitlines(True), filename)
    exec(compile(source_text, filename, "exec"), namespace)
    fn: Callable[..., Any] = namespace[name]
    return fn


def test_any_edit_of_the_source_text_changes_the_code_hash() -> None:
    body = "def f(view):\n    return view + 1\n"
    edited = "def f(view):\n    return view + 2\n"
    commented = "def f(view):\n    # one more\n    return view + 1\n"
    hashes = {code_hash(compiled(text, "f")) for text in (body, edited, commented)}
    assert len(hashes) == 3


def test_the_same_text_nested_deeper_hashes_the_same() -> None:
    top = "def f(view):\n    return view\n"
    nested = "class Box:\n    def f(view):\n        return view\nf = Box.f\n"
    assert code_hash(compiled(top, "f")) == code_hash(compiled(nested, "f"))
    assert code_hash(compiled(top, "f")) == hashlib.sha256(top.encode()).hexdigest()


def make_scaler(factor: float) -> Callable[[Any], Any]:
    def scale(view: Any) -> Any:
        return view * factor

    return scale


def test_closure_values_do_not_change_the_code_hash_or_the_id() -> None:
    double, triple = make_scaler(2.0), make_scaler(3.0)
    assert double(1) != triple(1)
    assert code_hash(double) == code_hash(triple)
    src = source()
    first = Node(input=src, compute_fn=double, period=1)
    second = Node(input=src, compute_fn=triple, period=1)
    assert first.node_id == second.node_id
    # Putting the value into the config is what makes the ids differ.
    with_config = Node(input=src, compute_fn=double, period=1, config={"factor": 2.0})
    assert with_config.node_id != first.node_id


def test_a_function_without_source_hashes_its_bytecode() -> None:
    namespace: dict[str, Any] = {}
    exec("def g(view):\n    return view\n", namespace)  # no file, so no source
    fn = namespace["g"]
    with pytest.raises(OSError, match="could not get source code"):
        inspect.getsource(fn)
    assert code_hash(fn) == hashlib.sha256(fn.__code__.co_code).hexdigest()


def test_a_file_that_no_longer_holds_the_source_falls_back_to_the_bytecode(
    tmp_path: Path,
) -> None:
    path = tmp_path / "edited.py"
    path.write_text("x = (\n", encoding="utf-8")  # what the file says now: no function there
    namespace: dict[str, Any] = {}
    exec(compile("def f(view):\n    return view\n", str(path), "exec"), namespace)
    fn = namespace["f"]
    assert code_hash(fn) == hashlib.sha256(fn.__code__.co_code).hexdigest()


def test_a_callable_without_code_hashes_its_repr() -> None:
    assert code_hash(len) == hashlib.sha256(repr(len).encode()).hexdigest()
    partial = functools.partial(moving_average)
    assert code_hash(partial) == hashlib.sha256(repr(partial).encode()).hexdigest()


def test_the_function_body_changes_the_node_id_unless_code_hash_is_pinned() -> None:
    src = source()
    one = compiled("def f(view):\n    return 1\n", "f")
    two = compiled("def f(view):\n    return 2\n", "f")
    assert Node(input=src, compute_fn=one, period=1).node_id != (
        Node(input=src, compute_fn=two, period=1).node_id
    )
    pinned = [Node(input=src, compute_fn=fn, period=1, code_hash="v1") for fn in (one, two)]
    assert pinned[0].node_id == pinned[1].node_id
    assert pinned[0].code_hash == "v1"


# -- config_hash, schema_hash ------------------------------------------------------------------


def test_config_hash_is_sha256_of_canonical_json_whatever_the_key_order() -> None:
    assert config_hash({"b": 1, "a": [1, 2]}) == config_hash({"a": [1, 2], "b": 1})
    assert config_hash({"a": 1}) == hashlib.sha256(b'{"a":1}').hexdigest()
    assert config_hash({"a": 1}) != config_hash({"a": 2})
    assert config_hash(None) == NULL_HASH


def test_config_hash_and_schema_hash_travel_with_the_node() -> None:
    node = ma(source(), 5, schema={"value": "double"})
    assert node.config_hash == config_hash({"window": 5, "field": "close"})
    assert node.schema_hash == schema_hash({"value": "double"})
    proto = node.to_proto()
    assert (proto.config_hash, proto.schema_hash) == (node.config_hash, node.schema_hash)


def test_schema_compat_id_defaults_to_the_schema_hash() -> None:
    src = StreamInput(tags=["BTC"], interval=60, period=1, schema={"close": "double"})
    assert src.schema_compat_id == schema_hash({"close": "double"})
    assert StreamInput(tags=["BTC"], interval=60, period=1).schema_compat_id == NULL_HASH
    changed = StreamInput(tags=["BTC"], interval=60, period=1, schema={"close": "float"})
    assert changed.node_id != src.node_id  # no compat class named: a schema change is a new id


def test_canonical_json() -> None:
    assert (
        canonical_json({"b": {"y": 1, "x": "é"}, "a": (1, 2)}) == '{"a":[1,2],"b":{"x":"é","y":1}}'
    )
    assert canonical_json({"s": {3, 1, 2}}) == '{"s":[1,2,3]}'
    for bad in ({"x": math.nan}, {"x": math.inf}, {"x": object()}, {"x": b"raw"}):
        with pytest.raises((TypeError, ValueError)):
            canonical_json(bad)
