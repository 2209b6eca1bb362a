"""The ``budgets`` fact: remaining error budget and burn rates of the SLOs that cover a workload.

Asks Prometheus (webhook/governance/prometheus.py) for each matching SLO's error ratio over its
budget window and its burn windows, concurrently. Results are cached per SLO for
``cache_ttl_seconds`` so a rollout's burst of admission requests asks once. An SLO
whose queries fail is reported ``{"status": "unknown", "error": ...}``; the policy
(rule error_budget_unknown) decides what that means.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from webhook.config import BudgetSettings
from webhook.governance.prometheus import Prometheus, PrometheusError
from webhook.governance.slo import Slo, budget_facts, error_ratio
from webhook.observe.io_counters import CacheCounter
from webhook.policy_input import Subject
from webhook.workloads import metadata

_CACHE = CacheCounter("budget")


def _clean(text: str) -> str:
    """Error text that policies may echo (no quotes or backslashes, see policies/README.md)."""
    return text.replace('"', "'").replace("\\", "/")[:300]


class BudgetReader:
    """Reads SLO budgets from Prometheus, with a short TTL cache; shared by the gatherer and the CLI."""

    def __init__(
        self,
        slos: tuple[Slo, ...],
        prometheus: Prometheus,
        *,
        ttl: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.slos, self._prometheus, self._ttl, self._clock = slos, prometheus, ttl, clock
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}

    async def read(self, slo: Slo) -> dict[str, Any]:
        """The fact of one SLO, from the cache when it is fresh."""
        cached = self._cache.get(slo.name)
        if cached is not None and self._clock() - cached[0] < self._ttl:
            _CACHE(True)
            return cached[1]
        _CACHE(False)
        windows = tuple(dict.fromkeys((slo.window, *slo.burn_windows)))
        try:
            values = await asyncio.gather(*(self._ratio(slo, w) for w in windows))
            fact = budget_facts(slo, dict(zip(windows, values, strict=True)))
        except PrometheusError as exc:
            # Not cached: the next request tries again.
            return {"name": slo.name, "status": "unknown", "error": _clean(str(exc))}
        self._cache[slo.name] = (self._clock(), fact)
        return fact

    async def _ratio(self, slo: Slo, window: str) -> float | None:
        values = await asyncio.gather(*(self._prometheus.scalar(q) for q in slo.queries(window)))
        return error_ratio(tuple(values))

    async def read_all(self, slos: tuple[Slo, ...] | None = None) -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(self.read(s) for s in (self.slos if slos is None else slos))))


class BudgetGatherer:
    """``input.facts.budgets``: the SLOs whose selector matches the workload, with their budgets."""

    name = "budgets"

    def __init__(self, reader: BudgetReader) -> None:
        self._reader = reader

    @classmethod
    def from_settings(cls, settings: BudgetSettings, slos: tuple[Slo, ...]) -> BudgetGatherer:
        prometheus = Prometheus(settings.prometheus_url, timeout=settings.query_timeout_seconds)
        return cls(BudgetReader(slos, prometheus, ttl=settings.cache_ttl_seconds))

    async def gather(self, subject: Subject) -> Any:
        req = subject.request
        labels = metadata(req.subject).get("labels")
        labels = {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}
        if subject.template is not None:
            labels = {**dict(subject.template.labels), **labels}
        matching = tuple(s for s in self._reader.slos if s.matches(req.namespace, labels))
        return {"status": "ok", "slos": await self._reader.read_all(matching)}
