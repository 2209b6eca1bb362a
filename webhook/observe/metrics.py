"""Prometheus metrics, served on ``/metrics`` of the webhook's HTTPS listener.

Metric objects are module-level, as prometheus-client intends (one registry per
process). With several worker processes, set ``PROMETHEUS_MULTIPROC_DIR`` to an
empty directory before start: each process then writes its values there and
``/metrics`` aggregates all of them (prometheus-client's multiprocess mode), so a
scrape that lands on any worker sees the whole pod.

Per-decision updates go through ``metric_buffer.PENDING`` (flushed every second and
before each render): multiprocess mode makes each direct update a locked write to a
memory-mapped file.

Fact gatherers record their own I/O with the counters below (registry round trips,
cache hits, signature verifications, upstream errors); the reviewer's
``MetricsObserver`` records every decision and its per-phase latency.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Collection, Mapping
from datetime import UTC
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from webhook.observe.metric_buffer import PENDING
from webhook.workloads import BUILTIN_TEMPLATE_PATHS

# 1 ms .. 10 s: the webhook's whole deadline budget, with resolution where answers usually are.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

ADMISSION_REQUESTS = Counter(
    "deployguard_admission_requests_total",
    "Admission requests answered, by operation, kind and decision (allowed, warned, denied, error).",
    ["operation", "kind", "decision", "dry_run"],
)
RULE_FINDINGS = Counter(
    "deployguard_rule_findings_total",
    "Findings reported by a rule, by the mode it was applied in (deny, warn, dryrun).",
    ["rule", "mode"],
)
ADMISSION_DURATION = Histogram(
    "deployguard_admission_duration_seconds",
    "End-to-end time to decide one admission request (parse excluded, see phase).",
    ["decision"],
    buckets=LATENCY_BUCKETS,
)
PHASE_DURATION = Histogram(
    "deployguard_phase_duration_seconds",
    "Time per phase: parse, classify, facts.<gatherer>, evaluate.",
    ["phase"],
    buckets=LATENCY_BUCKETS,
)
DECISION_MEMO = Counter("deployguard_decision_memo_total", "Decision memo lookups, by result (hit, miss).", ["result"])
FACTS_UNKNOWN = Counter(
    "deployguard_facts_unknown_total", "Facts that could not be had (error or deadline), by gatherer.", ["fact"]
)
REGISTRY_REQUESTS = Counter(
    "deployguard_registry_requests_total",
    "Round trips to OCI registries, by registry host, operation and result (ok, error).",
    ["registry", "operation", "result"],
)
CACHE_REQUESTS = Counter(
    "deployguard_cache_requests_total", "Cache lookups, by cache and result (hit, miss).", ["cache", "result"]
)
SIGNATURE_VERIFICATIONS = Counter(
    "deployguard_signature_verifications_total",
    "Signature verifications, by result (verified, failed, unsigned, error).",
    ["result"],
)
UPSTREAM_ERRORS = Counter(
    "deployguard_upstream_errors_total",
    "Errors talking to systems deployguard depends on (prometheus, opa, kubernetes, registry).",
    ["upstream"],
)
KUBERNETES_EVENTS = Counter(
    "deployguard_kubernetes_events_total",
    "Kubernetes Events about decisions, by result (sent, failed, dropped, rate_limited).",
    ["result"],
)
POLICY_REVISION = Gauge(
    "deployguard_policy_revision_info",
    "1 for the policy revision (and engine) being served.",
    ["revision", "engine"],
    multiprocess_mode="liveall",
)
POLICY_LOAD_FAILING = Gauge(
    "deployguard_policy_load_failing",
    "1 while the newest policy revision on disk does not compile or cannot decide.",
    multiprocess_mode="max",
)
FREEZES_ACTIVE = Gauge("deployguard_freezes_active", "Freezes active at the last decision.", multiprocess_mode="max")
CERT_EXPIRY = Gauge(
    "deployguard_tls_certificate_expiry_timestamp_seconds",
    "When the serving certificate expires (Unix time).",
    multiprocess_mode="min",
)

BUILTIN_KINDS = frozenset(kind for _, kind in BUILTIN_TEMPLATE_PATHS)
_NON_LABEL = re.compile(r"[^A-Za-z0-9_.:/-]")


def _label(value: Any, default: str = "") -> str:
    return _NON_LABEL.sub("_", str(value))[:63] if value not in (None, "") else default


class LabelledChildren:
    """A metric's labelled children by their raw label values.

    ``.labels()`` takes a lock and sanitises every value on each call; a decision
    touches a dozen children, nearly always the same ones. Bounded: past
    ``max_entries`` distinct keys it starts over (prometheus-client keeps the children).
    """

    def __init__(self, metric: Any, defaults: tuple[str, ...], max_entries: int = 1024) -> None:
        self._metric, self._defaults, self._max = metric, defaults, max_entries
        self._children: dict[tuple[Any, ...], Any] = {}

    def get(self, *values: Any) -> Any:
        try:
            child = self._children.get(values)
        except TypeError:  # an unhashable value (not from our records, but never fail on it)
            values = tuple(map(str, values))
            child = self._children.get(values)
        if child is None:
            if len(self._children) >= self._max:
                self._children.clear()
            labels = (_label(v, d) for v, d in zip(values, self._defaults, strict=True))
            child = self._children[values] = self._metric.labels(*labels)
        return child


class MetricsObserver:
    """Records each decision: counters by outcome and rule, latency histograms, memo, unknown facts.

    The ``kind`` label takes the kinds deployguard inspects (``kinds``; the built-in workload
    kinds by default) and ``other`` for anything else: a request's kind is whatever its sender
    wrote, and prometheus-client keeps every label set it is given, so one series per invented
    kind grew the process and every scrape without bound."""

    def __init__(self, kinds: Collection[str] = BUILTIN_KINDS) -> None:
        self._kinds = frozenset(kinds)
        self._requests = LabelledChildren(ADMISSION_REQUESTS, ("none", "none", "error", "false"))
        self._findings = LabelledChildren(RULE_FINDINGS, ("unnamed", ""))
        self._durations = LabelledChildren(ADMISSION_DURATION, ("error",))
        self._phases = LabelledChildren(PHASE_DURATION, ("",))
        self._memo = LabelledChildren(DECISION_MEMO, ("",))
        self._unknown = LabelledChildren(FACTS_UNKNOWN, ("",))
        self._freezes_shown: int | None = None

    def observe(self, record: Mapping[str, Any], timings: Mapping[str, float]) -> None:
        decision = str(record.get("outcome") or "error")
        dry_run = "true" if record.get("dry_run") else "false"
        inc, observe = PENDING.inc, PENDING.observe
        kind = record.get("kind")
        kind = kind if isinstance(kind, str) and kind in self._kinds else ("other" if kind else None)
        inc(self._requests.get(record.get("operation"), kind, decision, dry_run))
        for finding in record.get("findings") or ():
            inc(self._findings.get(finding.get("rule"), finding.get("mode")))
        for phase, seconds in timings.items():
            if phase == "total":
                observe(self._durations.get(decision), seconds)
            else:
                observe(self._phases.get(phase), seconds)
        if "evaluate" in timings:
            inc(self._memo.get("hit" if record.get("memo_hit") else "miss"))
        for fact in record.get("unknown_facts") or ():
            inc(self._unknown.get(fact))
        if record.get("error") and record.get("engine") == "opa" and not record.get("rejected"):
            inc(UPSTREAM_ERRORS.labels(upstream="opa"))
        freezes = record.get("freezes_active")
        if isinstance(freezes, list) and len(freezes) != self._freezes_shown:
            self._freezes_shown = len(freezes)
            FREEZES_ACTIVE.set(len(freezes))


_PARSE_PHASE: list[Any] = []  # the child, looked up once


def observe_parse(seconds: float) -> None:
    """The HTTP adapter's share: reading and parsing the body."""
    if not _PARSE_PHASE:
        _PARSE_PHASE.append(PHASE_DURATION.labels(phase="parse"))
    PENDING.observe(_PARSE_PHASE[0], seconds)


def certificate_expiry(certfile: Path) -> float | None:
    """The serving certificate's notAfter as Unix time, or None when it cannot be read."""
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(certfile.read_bytes())
    except (OSError, ValueError):
        return None
    return cert.not_valid_after_utc.replace(tzinfo=UTC).timestamp()


class MetricsEndpoint:
    """Renders ``/metrics``; refreshes scrape-time gauges (policy revision, certificate) first."""

    def __init__(self, refreshers: tuple[Callable[[], None], ...] = ()) -> None:
        self._refreshers = refreshers

    def render(self) -> tuple[bytes, str]:
        PENDING.flush()
        for refresh in self._refreshers:
            refresh()
        directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if directory:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


class PolicyRevisionGauge:
    """Keeps ``deployguard_policy_revision_info`` and ``…_load_failing`` in step with the engine."""

    def __init__(self, revision: Callable[[], str], engine: str, last_error: Callable[[], str]) -> None:
        self._revision, self._engine, self._last_error = revision, engine, last_error
        self._shown: str | None = None

    def __call__(self) -> None:
        revision = self._revision() or "none"
        if revision != self._shown:
            if self._shown is not None:
                POLICY_REVISION.labels(revision=self._shown, engine=self._engine).set(0)
            POLICY_REVISION.labels(revision=revision, engine=self._engine).set(1)
            self._shown = revision
        POLICY_LOAD_FAILING.set(1 if self._last_error() else 0)


def certificate_gauge(certfile: Path) -> Callable[[], None]:
    """A refresher that re-reads the certificate (it is rotated while serving)."""
    cache: dict[str, float] = {}

    def refresh() -> None:
        now = time.monotonic()
        if now - cache.get("at", -1e9) < 30:
            return
        cache["at"] = now
        expiry = certificate_expiry(certfile)
        if expiry is not None:
            CERT_EXPIRY.set(expiry)

    return refresh
