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
import types
from collections.abc import Coroutine, Generator, Sequence
from typing import Any, Protocol

from webhook.policy_input import Subject

log = logging.getLogger("deployguard.facts")

UNKNOWN = "unknown"


class FactGatherer(Protocol):
    """One source of facts (registry, clock and calendars, Prometheus, Kubernetes API...).

    A gatherer that never awaits I/O may set a class attribute ``eager = True``; one that
    needs I/O only for some requests may define ``needs_io(subject) -> bool``. Either way,
    a gather without I/O runs inline instead of in a Task of its own (cheaper on the warm
    path; see ``gather_facts``).
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


def runs_inline(gatherer: FactGatherer, subject: Subject) -> bool:
    """True when the gatherer declares no I/O for this subject (``eager`` or ``needs_io``)."""
    if getattr(gatherer, "eager", False):
        return True
    needs_io = getattr(gatherer, "needs_io", None)
    return callable(needs_io) and not needs_io(subject)


@types.coroutine
def _resume(coroutine: Coroutine[Any, Any, Any], awaiting: Any) -> Generator[Any, Any, Any]:
    """Go on with a coroutine that already ran up to its first suspension (as ``yield from`` would)."""
    while True:
        try:
            sent = yield awaiting
        except BaseException as exc:  # cancellation and timeouts are thrown into it
            try:
                awaiting = coroutine.throw(exc)
            except StopIteration as done:
                return done.value
        else:
            try:
                awaiting = coroutine.send(sent)
            except StopIteration as done:
                return done.value


async def _run_inline(gatherer: FactGatherer, subject: Subject, timings: dict[str, float], end: float) -> Any:
    """Run a gather that declared no I/O inline: no Task, no loop turn when it keeps its word.

    Its coroutine is stepped once by hand, which finishes it. Should it suspend after all,
    it goes on under the deadline like any other fact (``asyncio.timeout``).
    """
    coroutine = _timed(gatherer, subject, timings)
    try:
        awaiting = coroutine.send(None)
    except StopIteration as done:
        return done.value
    timeout = max(end - time.perf_counter(), 0.0)
    try:
        async with asyncio.timeout(timeout):
            return await _resume(coroutine, awaiting)
    except TimeoutError:
        timings[f"facts.{gatherer.name}"] = timeout
        return unknown(f"{gatherer.name}: not gathered within the deadline ({timeout:.2f} s left)")


async def gather_facts(
    gatherers: Sequence[FactGatherer], subject: Subject, timeout: float
) -> tuple[dict[str, Any], dict[str, float]]:
    """Run every gatherer concurrently; whatever is not done by ``timeout`` is unknown.

    Gathers without I/O (``runs_inline``) run to completion inline in the reviewer's own
    task: no Task, no loop turn. I/O gatherers each get a Task, started first so their
    I/O overlaps the inline work.
    """
    if not gatherers:
        return {}, {}
    timings: dict[str, float] = {}
    end = time.perf_counter() + timeout
    inline = [g for g in gatherers if runs_inline(g, subject)]
    tasks = {g.name: asyncio.ensure_future(_timed(g, subject, timings)) for g in gatherers if g not in inline}
    facts: dict[str, Any] = {}
    pending: set[asyncio.Future[Any]] = set()
    try:
        for g in inline:
            facts[g.name] = await _run_inline(g, subject, timings, end)
        if not tasks:
            return facts, timings
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
