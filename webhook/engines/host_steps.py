"""A bound on the work host built-ins do in one evaluation of the wasm engine.

Fuel bounds what the module itself does (webhook/engines/wasm_runtime.py), but a host
built-in runs in Python, outside it, on the event loop: ``indexof_n`` of one character
in a 3 MB annotation finds three million places, or ``time.parse_duration_ns`` of a
megabyte of ``1s1s…`` loops over half a million segments, each second during which no
other review is answered. Each built-in that loops over its input takes a step per round
(a found index), and
an evaluation may take ``HOST_STEPS_PER_EVALUATION``: past them the built-in fails, and
the evaluation is an error, so a deny, as when fuel runs out. 100,000 steps are ~0.5 s
here, the fuel budget's order; no policy over a Kubernetes object needs more. Built-ins
whose Python work grows with the length of their text (a duration's segments, a layout's
elements, a query's pairs) are charged by that length before they run (``charged``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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


def _text_length(args: list[Any]) -> int:
    """Characters in the string arguments, and in strings inside array arguments."""
    return sum(len(a) if isinstance(a, str) else sum(len(v) for v in a if isinstance(v, str))
               if isinstance(a, list) else 0 for a in args)  # fmt: skip


def charged(
    steps: HostSteps, what: str, builtin: Callable[[list[Any]], Any], chars_per_step: int
) -> Callable[[list[Any]], Any]:
    """``builtin``, first taking a step per ``chars_per_step`` characters of its text (and
    one per element of an array argument: sprintf's values)."""

    def call(args: list[Any]) -> Any:
        elements = sum(len(a) for a in args if isinstance(a, list))
        steps.take(1 + elements + _text_length(args) // chars_per_step, what)
        return builtin(args)

    return call
