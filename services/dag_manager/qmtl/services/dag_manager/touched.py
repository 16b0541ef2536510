"""What a change did to tag-query answers: the tags and interval of a node that appeared in
them (created, or tagged anew) or left them (deleted). The diff and GC report these; the tag
query service re-answers the queries they touch."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Touched:
    tags: tuple[str, ...]
    interval: int
