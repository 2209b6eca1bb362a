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
    """One source of facts (registry, clock and calendars, Prometheus, Kubernetes API...)."""

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
    """Run every gatherer concurrently; whatever is not done by ``timeout`` is unknown."""
    if not gatherers:
        return {}, {}
    timings: dict[str, float] = {}
    tasks = {g.name: asyncio.ensure_future(_timed(g, subject, timings)) for g in gatherers}
    done, pending = await asyncio.wait(tasks.values(), timeout=max(timeout, 0.0))
    for task in pending:
        task.cancel()
    facts: dict[str, Any] = {}
    for name, task in tasks.items():
        if task in done and not task.cancelled():
            facts[name] = task.result()
        else:
            facts[name] = unknown(f"{name}: not gathered within the deadline ({timeout:.2f} s)")
            timings[f"facts.{name}"] = timeout
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
    return facts, timings
