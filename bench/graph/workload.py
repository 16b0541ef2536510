"""What the graph bench stores and asks, deterministic for a seed: a tag vocabulary shaped like a
market-data catalogue, ComputeNodes with real node ids (qmtl.runtime.nodeid), the tag lookups,
and layered DAGs for the diff."""

from __future__ import annotations

import json
import random
import re
import string
from collections.abc import Iterator
from dataclasses import dataclass

from blake3 import blake3

from qmtl.common.v1 import match_mode_pb2
from qmtl.dag.v1 import dag_pb2, node_pb2, node_spec_pb2
from qmtl.runtime.graphstore import MatchMode, NodeWrite
from qmtl.runtime.nodeid import ID_PREFIX, node_id

# A catalogue: many instruments, few data kinds and venues. Every node carries one tag of each,
# so a symbol matches ~count/symbols nodes and a kind or venue matches a large slice.
FEATURE_KINDS = (
    "price",
    "volume",
    "ohlcv",
    "trades",
    "orderbook",
    "spread",
    "vwap",
    "returns",
    "volatility",
    "rsi",
    "macd",
    "signal",
)
SOURCE_KINDS = frozenset({"price", "volume", "ohlcv", "trades", "orderbook"})
VENUES = ("binance", "coinbase", "kraken", "nyse", "nasdaq", "cme", "lse", "tse")
INTERVALS = (60, 300, 3600, 86400)
DEFAULT_SYMBOLS = 5000
TOPIC_VERSION = "v1"
_UNSAFE = re.compile(r"[^a-z0-9]")


@dataclass(frozen=True, slots=True)
class Vocabulary:
    symbols: tuple[str, ...]
    kinds: tuple[str, ...] = FEATURE_KINDS
    venues: tuple[str, ...] = VENUES

    @property
    def size(self) -> int:
        return len(self.symbols) + len(self.kinds) + len(self.venues)

    def describe(self) -> str:
        return (
            f"{self.size:,} distinct tags: {len(self.symbols):,} ticker symbols "
            f"(e.g. {', '.join(self.symbols[:3])}), {len(self.kinds)} feature kinds, "
            f"{len(self.venues)} venues; each node has 1 of each"
        )


def vocabulary(symbols: int = DEFAULT_SYMBOLS, seed: int = 7) -> Vocabulary:
    """`symbols` distinct 3-5 letter tickers."""
    rng = random.Random(seed)
    found: dict[str, None] = {}
    while len(found) < symbols:
        found["".join(rng.choices(string.ascii_uppercase, k=rng.choice((3, 4, 4, 5))))] = None
    return Vocabulary(symbols=tuple(found))


class TopicNamer:
    """domain.md §2.6: `{asset}_{node_type}_{short_hash}_{version}`, the hash growing by 2 hex
    digits while the name is taken (the diff's rule; the store rejects a reused topic)."""

    def __init__(self) -> None:
        self._taken: set[str] = set()

    def name(self, nid: str, node_type: str, first_tag: str) -> str:
        asset = _UNSAFE.sub("", first_tag.lower()) or "asset"
        digest = nid.removeprefix(ID_PREFIX)
        for width in range(8, len(digest) + 1, 2):
            topic = f"{asset}_{node_type}_{digest[:width]}_{TOPIC_VERSION}"
            if topic not in self._taken:
                self._taken.add(topic)
                return topic
        raise AssertionError(f"no free topic for {nid}")  # ids are unique, so unreachable


def catalogue_nodes(count: int, vocab: Vocabulary, seed: int = 11) -> Iterator[NodeWrite]:
    """`count` unrelated ComputeNodes (sources and indicators), tagged (symbol, kind, venue)."""
    rng = random.Random(seed)
    namer = TopicNamer()
    for i in range(count):
        symbol = vocab.symbols[i % len(vocab.symbols)]
        kind = rng.choice(vocab.kinds)
        venue = rng.choice(vocab.venues)
        interval = rng.choice(INTERVALS)
        node_type = "StreamInput" if kind in SOURCE_KINDS else "Indicator"
        period = rng.choice((1, 5, 20, 50))
        params = canonical_json({"symbol": symbol, "field": kind, "venue": venue, "n": i})
        compat, code = f"{kind}-v1", f"code-{kind}"
        nid = source_node_id(node_type, interval, period, params, compat, code)
        yield NodeWrite(
            node_id=nid,
            node_type=node_type,
            topic=namer.name(nid, node_type, symbol),
            interval=interval,
            period=period,
            tags=(symbol, kind, venue),
            code_hash=code,
            schema_compat_id=compat,
            params_canon=params,
        )


def canonical_json(params: dict[str, object]) -> str:
    """nodeid.canonical_params of params that hold no excluded key, without the parse."""
    return json.dumps(params, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def source_node_id(
    node_type: str, interval: int, period: int, params: str, compat: str, code: str
) -> str:
    """nodeid.compute_node_id of a dependency-free node whose params are already canonical.
    The catalogue needs 100k ids; the module's parse-and-validate path costs ~10x more, and
    tests/unit/test_bench_graph_workload.py proves both give the same id."""
    canonical = "|".join((node_type, str(interval), str(period), params, "", compat, code))
    return ID_PREFIX + blake3(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Lookup:
    tags: tuple[str, ...]
    interval: int
    match_mode: MatchMode

    def describe(self) -> str:
        mode = "all" if self.match_mode == match_mode_pb2.MATCH_MODE_ALL else "any"
        return f"{mode}({', '.join(self.tags)}) @ {self.interval or 'any'}"


def lookups(count: int, vocab: Vocabulary, seed: int = 13) -> list[Lookup]:
    """What a TagQueryNode asks: half `any(symbol)` at one interval (a strategy following an
    instrument), half `all(symbol, kind)` at any interval (one feature of it)."""
    rng = random.Random(seed)
    found = []
    for i in range(count):
        symbol = rng.choice(vocab.symbols)
        if i % 2:
            found.append(
                Lookup((symbol, rng.choice(vocab.kinds)), 0, match_mode_pb2.MATCH_MODE_ALL)
            )
        else:
            found.append(Lookup((symbol,), rng.choice(INTERVALS), match_mode_pb2.MATCH_MODE_ANY))
    return found


def layered_dag(size: int, variant: str, vocab: Vocabulary, *, width: int = 100) -> dag_pb2.Dag:
    """A strategy DAG of `size` nodes: `width` sources, then layers of indicators each reading
    1-3 nodes of the layer before. `variant` goes into every code_hash, so two variants share
    no node id (a first submit), and the same variant is the same DAG (a resubmit)."""
    rng = random.Random(f"{variant}:{size}:{width}")
    dag = dag_pb2.Dag(schema_version="v1")
    dag.meta.version = TOPIC_VERSION
    previous: list[str] = []
    layer: list[str] = []
    for index in range(size):
        if index and index % width == 0:
            previous, layer = layer, []
        symbol = vocab.symbols[index % width % len(vocab.symbols)]
        deps = sorted(set(rng.sample(previous, k=min(len(previous), rng.randint(1, 3)))))
        kind = FEATURE_KINDS[index % len(FEATURE_KINDS)] if deps else "ohlcv"
        spec = node_spec_pb2.NodeSpec(
            node_type="Indicator" if deps else "StreamInput",
            interval=60,
            period=1 + index % 50,
            params_json=json.dumps({"i": index, "field": kind}),
            dependencies=deps,
            schema_compat_id=f"{kind}-v1",
            code_hash=f"code-{variant}-{kind}",
        )
        node = node_pb2.Node(
            kind=node_pb2.NODE_KIND_PROCESSING if deps else node_pb2.NODE_KIND_SOURCE,
            spec=spec,
            name=f"n{index}",
            tags=[symbol, kind],
            config_hash=f"cfg-{index}",
            schema_hash=f"{kind}-schema",
        )
        node.node_id = node_id(node, index=index)
        dag.nodes.append(node)
        dag.edges.extend(dag_pb2.Edge(source=dep, target=node.node_id) for dep in deps)
        layer.append(node.node_id)
    return dag
