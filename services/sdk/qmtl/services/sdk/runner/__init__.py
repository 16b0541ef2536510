"""The SDK runner: runs a strategy's new nodes on the data plane (docs/operations/data-plane.md).

`RunPlan` (model.py) says what one process runs; `Runner` (runner.py) consumes the input
topics, keeps per-node windows (windows.py), calls compute functions with a `ComputeView`
(view.py), produces outputs, commits after producing and reports node states (status.py).
"""

from .model import RunPlan
from .runner import Runner, source_record
from .status import NodeCounts
from .view import ComputeView

__all__ = ["ComputeView", "NodeCounts", "RunPlan", "Runner", "source_record"]
