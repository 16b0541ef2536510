"""What a compute function gets: its node, the bucket it computes, its inputs' windows."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from .errors import RunnerError

if TYPE_CHECKING:
    from ..authoring import NodeLike


class ComputeView:
    """`view[upstream]` is that input's window (decoded payloads, oldest first, at most the
    node's `period` of them, the last one for `bucket_ts`); `upstream` is an input node, its
    node id, or (for a tag query, whose inputs are queues) the topic or the node id of a
    queue it resolved to."""

    def __init__(
        self,
        node: NodeLike,
        bucket_ts: int,
        windows: Mapping[str, list[Any]],
        aliases: Mapping[str, str] | None = None,
    ) -> None:
        self.node = node
        self.bucket_ts = bucket_ts
        self._windows = windows
        self._aliases = aliases or {}

    def __getitem__(self, upstream: NodeLike | str) -> list[Any]:
        key = upstream if isinstance(upstream, str) else upstream.node_id
        key = key if key in self._windows else self._aliases.get(key, key)
        try:
            return list(self._windows[key])
        except KeyError:
            raise RunnerError(
                f"node {self.node.name!r} has no input {key!r} (inputs: {sorted(self._windows)})",
                node_id=self.node.node_id,
            ) from None

    def latest(self, upstream: NodeLike | str) -> Any:
        """The input's value for `bucket_ts`."""
        return self[upstream][-1]

    def keys(self) -> list[str]:
        """The inputs' keys: upstream node ids, or topics for a tag query."""
        return list(self._windows)

    def __iter__(self) -> Iterator[str]:
        return iter(self._windows)

    def __repr__(self) -> str:
        return f"ComputeView(node={self.node.name!r}, bucket_ts={self.bucket_ts})"
