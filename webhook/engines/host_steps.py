"""A bound on the work host built-ins do in one evaluation of the wasm engine.

Fuel bounds what the module itself does (webhook/engines/wasm_runtime.py), but a host
built-in runs in Python, outside it, on the event loop: ``indexof_n`` of one character
in a 3 MB annotation finds three million places, and ``time.parse_duration_ns`` of a
megabyte of ``1s1s…`` loops over half a million segments; meanwhile no other review is
answered. So built-ins take steps: one per round of a loop (a found index), or, for those
whose Python work grows with the length of their text (a duration's segments, a layout's
elements, a query's pairs, sprintf's verbs and values), a step per few characters before
they run (``charged``). An evaluation may take ``HOST_STEPS_PER_EVALUATION``; past them
the built-in fails and the evaluation is an error, so a deny, as when fuel runs out.
100,000 steps are 0.01-0.65 s here (the format of a 200,000-character layout, a
duration of that length), the fuel budget's order; no policy over a Kubernetes object
needs more.
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
    total = 0
    for arg in args:
        if isinstance(arg, str):
            total += len(arg)
        elif isinstance(arg, list):
            total += sum(len(value) for value in arg if isinstance(value, str))
    return total


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
