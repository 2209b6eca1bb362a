"""What happens after a decision besides the answer: metrics, Events, traces.

Each observer gets the decision record (the audit line) and the per-phase timings.
Observers must be quick and must not raise into the request path: the reviewer
logs and swallows their errors, because recording must never change or delay an
answer (Kubernetes Events, for instance, are queued and sent in the background).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

log = logging.getLogger("deployguard.observers")


class DecisionObserver(Protocol):
    """Something that records decisions (metrics, Events, traces)."""

    def observe(self, record: Mapping[str, Any], timings: Mapping[str, float]) -> None:
        """Record one decision; ``timings`` is seconds per phase (empty for rejected calls)."""


def notify(observers: Sequence[DecisionObserver], record: Mapping[str, Any], timings: Mapping[str, float]) -> None:
    """Tell every observer; a failing observer is logged, never raised."""
    for observer in observers:
        try:
            observer.observe(record, timings)
        except Exception:
            log.exception("decision observer %s failed", type(observer).__name__)
