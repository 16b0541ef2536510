"""The dead-letter admin calls shared by both adapters: redrive and purge_dead.

These are operator tools, internal-only: no public route exposes them, and any internal one must
sit behind the internal listener and its token (docs/operations/redis.md, "Dead jobs").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from .errors import InvalidJobError
from .model import QueueSettings, Redriven, to_ms
from .validation import MAX_RETENTION, check_duration

DEAD_LETTER_CHUNK = 500
"""Most jobs one redrive or purge script call touches. A call over more jobs runs as several
steps: each step is atomic, the whole call is not (each job still moves exactly once), and no
step blocks Redis for long."""


def redrive_ids(job_ids: Sequence[str]) -> list[str]:
    """The ids to redrive, each once, in the caller's order."""
    if isinstance(job_ids, str | bytes):
        # A lone string is a Sequence[str] of its characters: almost surely a mistake.
        raise InvalidJobError("redrive takes a sequence of job ids or ALL_DEAD, not one string")
    return list(dict.fromkeys(job_ids))


def dead_age_ms(older_than: float | None, settings: QueueSettings) -> int:
    """purge_dead's age threshold in ms; None means the queue's dead_retention."""
    if older_than is None:
        return to_ms(settings.dead_retention)
    return to_ms(check_duration("older_than", older_than, 0.0, MAX_RETENTION))


@dataclass
class RedriveTally:
    """Sorts the ids of one redrive call into the three answers of `Redriven`."""

    redriven: list[str] = field(default_factory=list)
    not_dead: list[str] = field(default_factory=list)
    not_found: list[str] = field(default_factory=list)

    def add(self, job_id: str, *, redriven: bool, found: bool) -> None:
        if redriven:
            self.redriven.append(job_id)
        elif found:
            self.not_dead.append(job_id)
        else:
            self.not_found.append(job_id)

    def result(self) -> Redriven:
        return Redriven(tuple(self.redriven), tuple(self.not_dead), tuple(self.not_found))
