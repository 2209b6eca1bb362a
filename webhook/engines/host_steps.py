"""A bound on the work host built-ins do in one evaluation of the wasm engine.

Fuel bounds what the module itself does (webhook/engines/wasm_runtime.py), but a host
built-in runs in Python, outside it, on the event loop: ``regex.split("", s)`` on a 1 MB
annotation makes a million matches, ~5 s during which no other review is answered. Each
built-in that loops over its input takes a step per round (a match, a found index), and
an evaluation may take ``HOST_STEPS_PER_EVALUATION``: past them the built-in fails, and
the evaluation is an error, so a deny, as when fuel runs out. 100,000 steps are ~0.5 s
here, the fuel budget's order; no policy over a Kubernetes object needs more.
"""

from __future__ import annotations

HOST_STEPS_PER_EVALUATION = 100_000


class HostStepsExceeded(ValueError):
    """The evaluation's host built-ins did more than their share of work."""


class HostSteps:
    """The steps host built-ins took in the current evaluation (``start`` resets them)."""

    def __init__(self, limit: int = HOST_STEPS_PER_EVALUATION) -> None:
        self.limit = limit
        self.used = 0

    def start(self) -> None:
        self.used = 0

    def take(self, count: int, what: str) -> None:
        self.used += count
        if self.used > self.limit:
            raise HostStepsExceeded(
                f"{what}: the evaluation's built-ins did more than {self.limit:,} steps of work and were stopped"
            )
