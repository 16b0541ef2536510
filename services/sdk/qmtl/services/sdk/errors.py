"""The SDK's authoring error: a strategy the platform would refuse, caught where it is written."""

from __future__ import annotations


class AuthoringError(ValueError):
    """A node or strategy that breaks an authoring rule (domain.md §2.4-2.5); the message names
    the node (`Node 'ma5': period: must be 1..10000, got 0`).

    A ValueError, not a QmtlError: it is raised in the quant's own process while the strategy
    is built and never crosses a wire; the Gateway answers the same mistakes with its own
    typed errors.
    """
