"""GatewaySettings: the handler's and the submit worker's tunables, each with its default
(docs/operations/gateway.md, "Settings"). The process reads them from flags and env (config.py)."""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass, field

from qmtl.runtime.dag_validation import DagLimits
from qmtl.runtime.workqueue import WorkerSettings

DEFAULT_MAX_WAIT = 30.0
DEFAULT_DIFF_TIMEOUT = 30.0
DEFAULT_DIFF_MAX_ATTEMPTS = 5
DEFAULT_SOURCE = "qmtl/gateway/local"
# Node states one ReportNodeStatus call may carry (the schema documents the bound).
MAX_NODE_STATES_PER_REPORT = 1_000
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1_000


class InvalidGatewaySettings(Exception):
    """Settings that could never work (a configuration error, refused at start)."""


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """`max_wait` caps a submission's `wait_timeout`; `wait_poll_initial` / `wait_poll_max`
    bound the store polls of a waiting submission (doubling between them), which find a diff
    finished by another instance's worker (this process's own worker wakes the wait at once).
    `diff_timeout` is the deadline of each DAG Manager `Diff` call and `diff_max_attempts` the
    work item's attempts before the strategy is FAILED; the queue's BackoffPolicy spaces them.
    `stranded_after` is how old a QUEUED strategy without a live work item must be before
    `requeue_stranded` enqueues it again (longer than a submit takes between its two writes).
    `callback_allowed_hosts` restricts callback URLs (None: any host; set it in production).
    `source` is the Event.source of the events this instance raises."""

    max_wait: float = DEFAULT_MAX_WAIT
    wait_poll_initial: float = 0.05
    wait_poll_max: float = 1.0
    diff_timeout: float = DEFAULT_DIFF_TIMEOUT
    diff_max_attempts: int = DEFAULT_DIFF_MAX_ATTEMPTS
    callback_max_attempts: int = 8
    callback_allowed_hosts: Collection[str] | None = None
    stranded_after: float = 60.0
    limits: DagLimits = field(default_factory=DagLimits)
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    source: str = DEFAULT_SOURCE

    def __post_init__(self) -> None:
        for name in (
            "max_wait",
            "wait_poll_initial",
            "wait_poll_max",
            "diff_timeout",
            "stranded_after",
        ):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise InvalidGatewaySettings(f"{name} must be a positive number, got {value!r}")
        if self.wait_poll_max < self.wait_poll_initial:
            raise InvalidGatewaySettings("wait_poll_max must be at least wait_poll_initial")
        for name in ("diff_max_attempts", "callback_max_attempts"):
            if not 1 <= getattr(self, name) <= 100:
                raise InvalidGatewaySettings(f"{name} must be 1..100, got {getattr(self, name)}")
        if not self.source:
            raise InvalidGatewaySettings("source must not be empty")
