"""Cycle detection over a DAG's in-DAG dependency edges."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def find_cycle(deps: Mapping[str, Sequence[str]]) -> list[str] | None:
    """One cycle of the graph `node -> its dependencies` (ids not in `deps` are ignored), as
    the ids along it starting from its first node, or None. Iterative, so a 10,000-node chain
    does not hit Python's recursion limit."""
    done: set[str] = set()
    for root in deps:
        if root in done:
            continue
        path: list[str] = [root]
        on_path = {root}
        stack = [iter(deps[root])]
        while stack:
            step = next(stack[-1], None)
            if step is None:
                stack.pop()
                finished = path.pop()
                on_path.discard(finished)
                done.add(finished)
                continue
            if step not in deps or step in done:
                continue
            if step in on_path:
                return path[path.index(step) :]
            path.append(step)
            on_path.add(step)
            stack.append(iter(deps[step]))
    return None
