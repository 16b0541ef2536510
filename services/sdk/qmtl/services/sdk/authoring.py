"""The nodes a strategy is written with (docs/sdk.md): `StreamInput`, `Node`, `TagQueryNode`.

A node is immutable once built: everything is checked in the constructor (an `AuthoringError`
naming the node) and its id is computed there, by the one rule the Gateway and the DAG Manager
recompute (qmtl.runtime.nodeid), from the same proto `to_proto()` returns. A node's inputs are
built before it, so a graph of nodes can never have a cycle.

What enters the id: node_type, interval, period, config (as params), the inputs' ids,
schema_compat_id and code_hash. What does not: name, tags, config_hash, schema_hash, and for a
tag query the queues it resolves to (hashes.py says what changes code_hash).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Literal, NoReturn, TypeAlias, TypeGuard, TypeVar

from qmtl.common.v1 import match_mode_pb2
from qmtl.dag.v1 import node_pb2, node_spec_pb2, tag_query_pb2
from qmtl.runtime import nodeid
from qmtl.runtime.dag_validation import MAX_TAG_LENGTH, TAG_PATTERN, DagLimits
from qmtl.runtime.errors import QmtlError

from . import hashes
from .errors import AuthoringError
from .intervals import check_period, parse_interval

if TYPE_CHECKING:
    from .runner.view import ComputeView

ComputeFn: TypeAlias = "Callable[[ComputeView], Any]"
MatchMode = Literal["any", "all"]
_In = TypeVar("_In")
_Out = TypeVar("_Out")
NodeKind = node_pb2.NodeKind

# The Gateway's per-node tag limit, so a node that builds here is never refused for its tags.
MAX_TAGS = DagLimits().max_tags_per_node
_MATCH_MODES = {"any": match_mode_pb2.MATCH_MODE_ANY, "all": match_mode_pb2.MATCH_MODE_ALL}


class _NodeBase:
    """What every node has; the subclasses say which fields the quant sets."""

    node_type: ClassVar[str]
    kind: ClassVar[node_pb2.NodeKind.ValueType]

    def __init__(
        self,
        *,
        name: str,
        interval: int | str,
        period: int,
        tags: Sequence[str],
        inputs: tuple[NodeLike, ...],
        compute_fn: ComputeFn | None,
        config: Mapping[str, Any] | None,
        schema: Mapping[str, Any] | None,
        schema_compat_id: str | None,
        code_hash: str | None,
    ) -> None:
        if not isinstance(name, str) or not name or not name.isprintable():
            raise AuthoringError(
                f"{self.node_type}: name must be a non-empty printable string, got {name!r}"
            )
        self._name = name
        self._interval = self._checked("interval", parse_interval, interval)
        self._period = self._checked("period", check_period, period)
        self._tags = self._check_tags("tags", tags, required=False)
        self._inputs = inputs
        if compute_fn is not None and not callable(compute_fn):
            self._fail("compute_fn", f"must be callable, got {compute_fn!r}")
        self._compute_fn = compute_fn
        self._config, self._params_json = self._check_config(config)
        self._schema = self._check_schema(schema)
        self._schema_hash = self._checked("schema", hashes.schema_hash, schema)
        self._schema_compat_id = (
            self._check_id_text("schema_compat_id", schema_compat_id) or self._schema_hash
        )
        self._code_hash = self._check_id_text("code_hash", code_hash) or hashes.code_hash(
            compute_fn
        )
        self._config_hash = hashes.config_hash(self._config)

    # -- checks -------------------------------------------------------------------------------

    def _fail(self, field: str, problem: str) -> NoReturn:
        # `from None`: the message says it all; a chained parser error would only add noise.
        raise AuthoringError(f"{self.node_type} {self._name!r}: {field}: {problem}") from None

    def _checked(self, field: str, check: Callable[[_In], _Out], value: _In) -> _Out:
        try:
            return check(value)
        except (TypeError, ValueError) as exc:
            self._fail(field, str(exc))

    def _check_tags(self, field: str, tags: Sequence[str], *, required: bool) -> tuple[str, ...]:
        if isinstance(tags, str) or not isinstance(tags, Sequence):
            self._fail(field, f"must be a list of strings, got {tags!r}")
        if required and not tags:
            self._fail(field, "must name at least one tag")
        if len(tags) > MAX_TAGS:
            self._fail(field, f"{len(tags)} tags, the limit is {MAX_TAGS}")
        for tag in tags:
            if not isinstance(tag, str) or not (
                len(tag) <= MAX_TAG_LENGTH and TAG_PATTERN.fullmatch(tag)
            ):
                self._fail(
                    field, f"tag {tag!r} must be 1-{MAX_TAG_LENGTH} characters of [a-zA-Z0-9_.-]"
                )
        repeated = sorted({tag for tag in tags if tags.count(tag) > 1})
        if repeated:
            self._fail(field, f"tags must be unique, repeated: {', '.join(repeated)}")
        return tuple(tags)

    def _check_config(self, config: Mapping[str, Any] | None) -> tuple[dict[str, Any], str]:
        # The node keeps the config its id was computed from: a later edit of the caller's
        # dict cannot make the node and its id disagree.
        if config is None:
            config = {}
        if not isinstance(config, Mapping):
            self._fail("config", f"must be a mapping, got {type(config).__name__}")
        text = self._checked("config", hashes.canonical_json, config)
        parsed: dict[str, Any] = json.loads(text)
        return parsed, text

    def _check_schema(self, schema: Mapping[str, Any] | None) -> dict[str, Any] | None:
        if schema is None:
            return None
        if not isinstance(schema, Mapping):
            self._fail("schema", f"must be a mapping, got {type(schema).__name__}")
        parsed: dict[str, Any] = json.loads(self._checked("schema", hashes.canonical_json, schema))
        return parsed

    def _check_id_text(self, field: str, value: str | None) -> str | None:
        """A text the quant gives for a field of the id, or None when not given."""
        if value is None:
            return None
        if not isinstance(value, str) or not value or value.strip() != value:
            self._fail(
                field, f"must be a non-empty string without surrounding blanks, got {value!r}"
            )
        if "|" in value:
            # `|` separates the fields of the id's canonical bytes: ("a|b", "c") and
            # ("a", "b|c") would hash alike, so two different nodes could share an id.
            self._fail(field, f"must not contain '|', got {value!r}")
        return value

    def _finish(self) -> None:
        """Computes the id; called by each subclass once its own fields are set."""
        try:
            self._node_id = nodeid.node_id(self._proto_without_id())
        except QmtlError as exc:  # the checks above leave nothing the rule refuses
            self._fail("spec", exc.message)

    # -- the node as the platform sees it ------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def interval(self) -> int:
        """Bar interval in seconds."""
        return self._interval

    @property
    def period(self) -> int:
        """Bars of history the node's compute function sees per input."""
        return self._period

    @property
    def tags(self) -> tuple[str, ...]:
        """Tags describing the node's output (what tag queries match); not in the id."""
        return self._tags

    @property
    def inputs(self) -> tuple[NodeLike, ...]:
        return self._inputs

    @property
    def compute_fn(self) -> ComputeFn | None:
        return self._compute_fn

    @property
    def config(self) -> Mapping[str, Any]:
        return MappingProxyType(self._config)

    @property
    def schema(self) -> Mapping[str, Any] | None:
        return None if self._schema is None else MappingProxyType(self._schema)

    @property
    def schema_compat_id(self) -> str:
        return self._schema_compat_id

    @property
    def code_hash(self) -> str:
        return self._code_hash

    @property
    def config_hash(self) -> str:
        return self._config_hash

    @property
    def schema_hash(self) -> str:
        return self._schema_hash

    @property
    def node_id(self) -> str:
        """`blake3:<64 hex>`, by the rule of qmtl.runtime.nodeid."""
        return self._node_id

    def _spec(self) -> node_spec_pb2.NodeSpec:
        return node_spec_pb2.NodeSpec(
            node_type=self.node_type,
            interval=self._interval,
            period=self._period,
            params_json=self._params_json,
            dependencies=[node.node_id for node in self._inputs],
            schema_compat_id=self._schema_compat_id,
            code_hash=self._code_hash,
        )

    def _proto_without_id(self) -> node_pb2.Node:
        return node_pb2.Node(
            kind=self.kind,
            spec=self._spec(),
            name=self._name,
            tags=list(self._tags),
            config_hash=self._config_hash,
            schema_hash=self._schema_hash,
        )

    def to_proto(self) -> node_pb2.Node:
        """The node as a DAG carries it (`qmtl.dag.v1.Node`), id set; a new message per call."""
        proto = self._proto_without_id()
        proto.node_id = self._node_id
        return proto

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self._name!r}, node_id={self._node_id!r})"


class StreamInput(_NodeBase):
    """A source: the bars a strategy is fed (NODE_KIND_SOURCE); it computes nothing.

    `config` (in the id) says what the stream is, e.g. `{"symbol": "BTC", "field": "close"}`;
    `tags` (not in the id) are how other strategies' tag queries find it.
    """

    node_type = "StreamInput"
    kind = NodeKind.NODE_KIND_SOURCE

    def __init__(
        self,
        *,
        tags: Sequence[str],
        interval: int | str,
        period: int,
        name: str = "stream_input",
        schema: Mapping[str, Any] | None = None,
        schema_compat_id: str | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(
            name=name,
            interval=interval,
            period=period,
            tags=tags,
            inputs=(),
            compute_fn=None,
            config=config,
            schema=schema,
            schema_compat_id=schema_compat_id,
            code_hash=None,
        )
        self._finish()


class Node(_NodeBase):
    """A computation over its inputs' windows (NODE_KIND_PROCESSING).

    `compute_fn(view)` is called once per bar with the last `period` values of each input and
    returns the node's output (a payload, payloads.py) or None for no output. `interval`
    defaults to the inputs' common interval. `code_hash=` pins the code's hash instead of
    hashing `compute_fn`'s source (hashes.py): for reproducible ids across edits that do not
    change the result, or for callables without source.
    """

    node_type = "Node"
    kind = NodeKind.NODE_KIND_PROCESSING

    def __init__(
        self,
        *,
        input: NodeLike | Sequence[NodeLike],
        compute_fn: ComputeFn,
        period: int,
        name: str | None = None,
        interval: int | str | None = None,
        tags: Sequence[str] = (),
        config: Mapping[str, Any] | None = None,
        schema: Mapping[str, Any] | None = None,
        schema_compat_id: str | None = None,
        code_hash: str | None = None,
    ) -> None:
        if name is None:
            name = getattr(compute_fn, "__name__", "") or "node"
        self._name = name
        inputs = self._check_inputs(input)
        if interval is None:
            interval = self._common_interval(inputs)
        if not callable(compute_fn):
            self._fail("compute_fn", f"must be callable, got {compute_fn!r}")
        super().__init__(
            name=name,
            interval=interval,
            period=period,
            tags=tags,
            inputs=inputs,
            compute_fn=compute_fn,
            config=config,
            schema=schema,
            schema_compat_id=schema_compat_id,
            code_hash=code_hash,
        )
        self._finish()

    def _check_inputs(self, given: NodeLike | Sequence[NodeLike]) -> tuple[NodeLike, ...]:
        inputs = (given,) if isinstance(given, _NodeBase) else given
        if not isinstance(inputs, Sequence):
            self._fail("input", f"must be a node or a list of nodes, got {given!r}")
        if not inputs:
            self._fail("input", "a Node needs at least one input")
        for item in inputs:
            if not isinstance(item, _NodeBase):
                self._fail("input", f"{item!r} is not a StreamInput, Node or TagQueryNode")
        ids = [item.node_id for item in inputs]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            self._fail("input", f"the same input is given twice: {', '.join(repeated)}")
        return tuple(inputs)

    def _common_interval(self, inputs: tuple[NodeLike, ...]) -> int:
        intervals = sorted({item.interval for item in inputs})
        if len(intervals) > 1:
            self._fail(
                "interval",
                f"the inputs have intervals {intervals} (seconds); pass interval= to choose",
            )
        return intervals[0]


class TagQueryNode(_NodeBase):
    """Inputs found by tags and interval at run time (NODE_KIND_TAG_QUERY): every queue whose
    node carries any (`match_mode="any"`) or all (`"all"`) of `query_tags` at `interval`,
    including queues created after the strategy started.

    The query (sorted, distinct tags, match mode, interval) and the period enter the id, the
    resolved queues do not. `tags` are this node's own output tags, empty by default: tagging
    its output with the query's tags would let other queries mistake it for a source.
    """

    node_type = "TagQueryNode"
    kind = NodeKind.NODE_KIND_TAG_QUERY

    def __init__(
        self,
        *,
        query_tags: Sequence[str],
        interval: int | str,
        period: int,
        match_mode: MatchMode = "any",
        compute_fn: ComputeFn | None = None,
        name: str | None = None,
        tags: Sequence[str] = (),
        schema: Mapping[str, Any] | None = None,
        schema_compat_id: str | None = None,
        code_hash: str | None = None,
    ) -> None:
        if name is None:
            name = getattr(compute_fn, "__name__", "") or "tag_query"
        self._name = name
        self._query_tags = self._check_tags("query_tags", query_tags, required=True)
        if match_mode not in _MATCH_MODES:
            self._fail("match_mode", f"must be 'any' or 'all', got {match_mode!r}")
        self._match_mode: MatchMode = match_mode
        super().__init__(
            name=name,
            interval=interval,
            period=period,
            tags=tags,
            inputs=(),
            compute_fn=compute_fn,
            config=None,
            schema=schema,
            schema_compat_id=schema_compat_id,
            code_hash=code_hash,
        )
        self._finish()

    @property
    def query_tags(self) -> tuple[str, ...]:
        return self._query_tags

    @property
    def match_mode(self) -> MatchMode:
        return self._match_mode

    def _spec(self) -> node_spec_pb2.NodeSpec:
        spec = super()._spec()
        # The rule hashes the query instead of params, which must then be empty.
        spec.params_json = ""
        spec.tag_query.CopyFrom(
            tag_query_pb2.TagQuery(
                tags=list(self._query_tags),
                interval=self._interval,
                match_mode=_MATCH_MODES[self._match_mode],
            )
        )
        return spec


NodeLike: TypeAlias = StreamInput | Node | TagQueryNode


def is_node(value: object) -> TypeGuard[NodeLike]:
    """Whether `value` is a StreamInput, Node or TagQueryNode."""
    return isinstance(value, StreamInput | Node | TagQueryNode)
