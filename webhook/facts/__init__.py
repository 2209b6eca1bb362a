"""Fact gatherers: the I/O that turns a request into facts for the policies.

Each gatherer has a name and one async method; its result (JSON-able) lands in the
policy input at ``input.facts.<name>``. All gatherers of a request run concurrently
under one deadline. A gatherer that fails or runs out of time contributes
``{"status": "unknown", "error": "..."}`` instead: the policy decides what an
unknown fact means (fail closed for signatures, warn for error budgets) — Python
never turns a missing fact into an allow.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any, Protocol

from webhook.policy_input import Subject

log = logging.getLogger("deployguard.facts")

UNKNOWN = "unknown"


class FactGatherer(Protocol):
    """One source of facts (registry, clock and calendars, Prometheus, Kubernetes API...).

    A gatherer that never awaits I/O may set a class attribute ``eager = True``: it then
    runs inline instead of in a Task of its own (cheaper on the warm path).
    """

    name: str

    async def gather(self, subject: Subject) -> Any:
        """Facts about ``subject``; raise (or be cancelled) when they cannot be had."""


def unknown(error: str) -> dict[str, Any]:
    return {"status": UNKNOWN, "error": error}


async def _timed(gatherer: FactGatherer, subject: Subject, timings: dict[str, float]) -> Any:
    started = time.perf_counter()
    try:
        return await gatherer.gather(subject)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a fact source failing is a fact, not a crash
        log.warning("fact gatherer %s failed: %s", gatherer.name, exc)
        return unknown(f"{gatherer.name}: {exc or type(exc).__name__}")
    finally:
        timings[f"facts.{gatherer.name}"] = time.perf_counter() - started


async def gather_facts(
    gatherers: Sequence[FactGatherer], subject: Subject, timeout: float
) -> tuple[dict[str, Any], dict[str, float]]:
    """Run every gatherer concurrently; whatever is not done by ``timeout`` is unknown.

    Gatherers marked ``eager`` (pure computations, no I/O) are awaited inline in the
    reviewer's own task, under the same deadline: no Task, no loop turn. I/O gatherers
    each get a Task, started first so their I/O overlaps the inline work.
    """
    if not gatherers:
        return {}, {}
    timings: dict[str, float] = {}
    end = time.perf_counter() + timeout
    tasks = {
        g.name: asyncio.ensure_future(_timed(g, subject, timings)) for g in gatherers if not getattr(g, "eager", False)
    }
    facts: dict[str, Any] = {}
    try:
        for g in gatherers:
            if getattr(g, "eager", False):
                try:  # asyncio.timeout bounds it without a Task, should it ever suspend
                    async with asyncio.timeout(max(end - time.perf_counter(), 0.0)):
                        facts[g.name] = await _timed(g, subject, timings)
                except TimeoutError:
                    facts[g.name] = unknown(f"{g.name}: not gathered within the deadline ({timeout:.2f} s)")
                    timings[f"facts.{g.name}"] = timeout
        pending: set[asyncio.Future[Any]] = set()
        if tasks:
            _, pending = await asyncio.wait(tasks.values(), timeout=max(end - time.perf_counter(), 0.0))
    except asyncio.CancelledError:  # the review was cancelled: so is its I/O
        for task in tasks.values():
            task.cancel()
        raise
    for late in pending:
        late.cancel()
    for name, task in tasks.items():
        if task not in pending and task.done() and not task.cancelled():
            facts[name] = task.result()
        else:
            facts[name] = unknown(f"{name}: not gathered within the deadline ({timeout:.2f} s)")
            timings[f"facts.{name}"] = timeout
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
    return {g.name: facts[g.name] for g in gatherers}, timings
