"""SLO definitions and error-budget arithmetic. Pure: Prometheus is asked elsewhere.

An SLO file (``budgets.slo_file``) declares, per service, which workloads it covers
and how Prometheus measures it::

    slos:
      - name: checkout-availability
        selector: {namespace: shop, labels: {app: checkout}}
        objective: 0.999           # the fraction of good events promised
        window: 30d                # the budget period
        error_ratio_query: sum(rate(errors_total[{{window}}])) / sum(rate(requests_total[{{window}}]))
        # or: good_query / total_query, each with {{window}}
        burn_windows: [5m, 30m, 1h, 6h]     # optional; default these four
        burn_alerts: [{long: 1h, short: 5m, factor: 14.4}]  # optional; default: policy data

``{{window}}`` is replaced by a Prometheus range (``5m``). Burn rate over a window is
the error ratio over it divided by the error budget ``1 - objective``; the remaining
budget is ``1 - error_ratio(window) / (1 - objective)``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from webhook import yaml_limits
from webhook.errors import ConfigError

DEFAULT_BURN_WINDOWS = ("5m", "30m", "1h", "6h")
_DURATION = re.compile(r"^[0-9]+(ms|s|m|h|d|w|y)$")
_KEYS = {
    "name", "selector", "objective", "window", "error_ratio_query", "good_query", "total_query",
    "burn_windows", "burn_alerts",
}  # fmt: skip


@dataclass(frozen=True)
class Slo:
    """One service level objective and the queries that measure it."""

    name: str
    namespace: str  # "" matches every namespace
    labels: tuple[tuple[str, str], ...]
    objective: float
    window: str
    error_ratio_query: str = ""
    good_query: str = ""
    total_query: str = ""
    burn_windows: tuple[str, ...] = DEFAULT_BURN_WINDOWS
    burn_alerts: tuple[tuple[str, str, float], ...] = ()  # (long, short, factor); () = policy data

    def matches(self, namespace: str, labels: Mapping[str, str]) -> bool:
        """Whether a workload in ``namespace`` with ``labels`` belongs to this SLO's service."""
        if self.namespace and self.namespace != namespace:
            return False
        return all(labels.get(k) == v for k, v in self.labels)

    def queries(self, window: str) -> tuple[str, ...]:
        """The PromQL for ``window``: one error-ratio query, or (good, total)."""
        if self.error_ratio_query:
            return (self.error_ratio_query.replace("{{window}}", window),)
        return (self.good_query.replace("{{window}}", window), self.total_query.replace("{{window}}", window))


def _fail(where: str, message: str) -> ConfigError:
    return ConfigError(f"SLO definition {where}: {message}")


def parse_slo(raw: Any, where: str) -> Slo:
    """One SLO from YAML, or a ConfigError that says what is wrong and where."""
    if not isinstance(raw, Mapping):
        raise _fail(where, f"must be a mapping, got {type(raw).__name__}")
    unknown = sorted(set(raw) - _KEYS)
    if unknown:
        raise _fail(where, f"unknown key(s) {unknown}; known: {sorted(_KEYS)}")
    name = raw.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise _fail(where, "needs a name of letters, digits, '.', '_' or '-'")
    where = f"{where} ({name})"
    selector = raw.get("selector")
    if not isinstance(selector, Mapping) or not (selector.get("namespace") or selector.get("labels")):
        raise _fail(
            where, "needs a selector with a namespace and/or labels, e.g. {namespace: shop, labels: {app: web}}"
        )
    labels = selector.get("labels") or {}
    if not isinstance(labels, Mapping) or not all(isinstance(v, str) for v in labels.values()):
        raise _fail(where, "selector.labels must map label names to string values")
    objective = raw.get("objective")
    if isinstance(objective, bool) or not isinstance(objective, int | float) or not 0 < objective < 1:
        raise _fail(where, f"objective must be a number between 0 and 1 (e.g. 0.999), got {objective!r}")
    window = raw.get("window")
    if not isinstance(window, str) or not _DURATION.match(window):
        raise _fail(where, f"window must be a Prometheus duration such as 30d or 1h, got {window!r}")
    ratio, good, total = (raw.get(k) or "" for k in ("error_ratio_query", "good_query", "total_query"))
    if not all(isinstance(q, str) for q in (ratio, good, total)):
        raise _fail(where, "queries must be strings")
    if bool(ratio) == bool(good or total) or (not ratio and not (good and total)):
        raise _fail(where, "give either error_ratio_query, or both good_query and total_query")
    for query in (ratio, good, total):
        if query and "{{window}}" not in query:
            raise _fail(where, f"query {query!r} has no {{{{window}}}} placeholder for the range")
    windows = raw.get("burn_windows", list(DEFAULT_BURN_WINDOWS))
    if (
        not isinstance(windows, list)
        or not windows
        or not all(isinstance(w, str) and _DURATION.match(w) for w in windows)
    ):
        raise _fail(where, f"burn_windows must be a non-empty list of durations, got {windows!r}")
    alerts = []
    for alert in raw.get("burn_alerts") or ():
        if not isinstance(alert, Mapping) or set(alert) != {"long", "short", "factor"}:
            raise _fail(where, f"each burn_alerts entry needs exactly long, short and factor, got {alert!r}")
        long, short, factor = alert["long"], alert["short"], alert["factor"]
        if long not in windows or short not in windows:
            raise _fail(where, f"burn alert windows {long!r}/{short!r} must be listed in burn_windows {windows}")
        if isinstance(factor, bool) or not isinstance(factor, int | float) or factor <= 0:
            raise _fail(where, f"burn alert factor must be a positive number, got {factor!r}")
        alerts.append((long, short, float(factor)))
    return Slo(
        name=name,
        namespace=str(selector.get("namespace") or ""),
        labels=tuple(sorted((str(k), v) for k, v in labels.items())),
        objective=float(objective),
        window=window,
        error_ratio_query=ratio,
        good_query=good,
        total_query=total,
        burn_windows=tuple(windows),
        burn_alerts=tuple(alerts),
    )


def parse_slos(document: Any, source: str = "SLO file") -> tuple[Slo, ...]:
    """Every SLO of a document ``{slos: [...]}``; names must be unique."""
    if not isinstance(document, Mapping) or not isinstance(document.get("slos"), list):
        raise ConfigError(f"{source}: expected a mapping with a list under 'slos'")
    slos = tuple(parse_slo(item, f"{source} slos[{i}]") for i, item in enumerate(document["slos"]))
    names = [s.name for s in slos]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"{source}: duplicate SLO name(s) {duplicates}")
    return slos


def load_slos(path: Path) -> tuple[Slo, ...]:
    """Read and validate an SLO file."""
    try:
        document = yaml_limits.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read SLO file {path}: {exc}") from None
    return parse_slos(document, str(path))


def error_ratio(values: tuple[float | None, ...]) -> float | None:
    """The error ratio from one ratio value or (good, total); None when there is no traffic/data."""
    if len(values) == 1:
        return values[0]
    good, total = values
    if good is None or total is None or total <= 0:
        return None
    return max(0.0, 1.0 - good / total)


def budget_facts(slo: Slo, ratios: Mapping[str, float | None]) -> dict[str, Any]:
    """The policy fact of one SLO from its error ratio per window (``ratios[slo.window]`` too).

    Numbers are rounded so that the decision memo is not defeated by noise.
    A window without data counts as no errors (no traffic burns no budget).
    """
    budget = 1.0 - slo.objective
    burn = {w: round((ratios.get(w) or 0.0) / budget, 2) for w in slo.burn_windows}
    remaining = 1.0 - (ratios.get(slo.window) or 0.0) / budget
    # Numbers for the policy's comparisons, and text for its messages: rego-cpp prints
    # floats with all their digits (99.9 as 99.90000000000001), so policies never sprintf them.
    fact: dict[str, Any] = {
        "name": slo.name,
        "status": "ok",
        "objective": f"{slo.objective * 100:g}%",
        "window": slo.window,
        "budget_remaining_percent": round(remaining * 100, 1),
        "budget_remaining": f"{remaining * 100:.1f}%",
        "burn_rates": burn,
        "burn_rates_text": {w: f"{v:g}x" for w, v in burn.items()},
    }
    if slo.burn_alerts:
        fact["burn_alerts"] = [{"long": a, "short": b, "factor": f} for a, b, f in slo.burn_alerts]
    return fact
