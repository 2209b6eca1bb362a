"""What fact gatherers count about their own I/O: cache lookups, registry round trips,
signature verifications and errors of the systems they ask.

Cache lookups happen on every decision, so all of these go through ``PENDING`` (see
metric_buffer.py) with each labelled child looked up once and kept. ``PENDING`` belongs
to the event loop's thread: code on other threads (the calendar watch) uses
``upstream_error_from_thread``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Literal

from webhook.observe.metric_buffer import PENDING
from webhook.observe.metrics import (
    CACHE_REQUESTS,
    REGISTRY_REQUESTS,
    SIGNATURE_VERIFICATIONS,
    UPSTREAM_ERRORS,
    LabelledChildren,
)

Upstream = Literal["prometheus", "opa", "kubernetes", "registry"]
Verification = Literal["verified", "failed", "unsigned", "error"]
OTHER_REGISTRY = "other"  # the registry label once ``max_hosts`` unconfigured hosts have one

_upstream = LabelledChildren(UPSTREAM_ERRORS, ("",))
_verifications = LabelledChildren(SIGNATURE_VERIFICATIONS, ("error",))


def upstream_error(upstream: Upstream) -> None:
    """One failed call to ``upstream`` (on the event loop's thread)."""
    PENDING.inc(_upstream.get(upstream))


def upstream_error_from_thread(upstream: Upstream) -> None:
    """One failed call to ``upstream``, from a thread other than the event loop's:
    ``PENDING`` is not locked, prometheus-client is (and this is rare)."""
    UPSTREAM_ERRORS.labels(upstream=upstream).inc()


def signature_verification(result: Verification) -> None:
    """One authority's verdict on one digest (a verdict from the cache is not counted)."""
    PENDING.inc(_verifications.get(result))


class CacheCounter:
    """Hits and misses of one cache; its two children are looked up on first use and kept."""

    __slots__ = ("_children", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._children: tuple[Any, Any] | None = None

    def __call__(self, hit: bool) -> None:
        children = self._children
        if children is None:
            children = self._children = (
                CACHE_REQUESTS.labels(cache=self.name, result="hit"),
                CACHE_REQUESTS.labels(cache=self.name, result="miss"),
            )
        PENDING.inc(children[0] if hit else children[1])


class HostLabels:
    """The registry label of a host, with bounded cardinality. Pure.

    Image references are written by whoever submits a workload; without an allowlist
    they choose the registry hosts. Hosts named in the settings always get their own
    label, the first ``max_hosts`` others too, and every later one is ``other``.
    """

    def __init__(self, known: Iterable[str], max_hosts: int = 32) -> None:
        self._known = frozenset(known)
        self._others: set[str] = set()
        self._max = max_hosts

    def __call__(self, registry: str) -> str:
        if registry in self._known or registry in self._others:
            return registry
        if len(self._others) < self._max:
            self._others.add(registry)
            return registry
        return OTHER_REGISTRY


class RegistryRequests:
    """``deployguard_registry_requests_total`` of one registry client; a failed round trip
    is also an upstream error of the registry."""

    def __init__(self, known_hosts: Iterable[str], max_hosts: int = 32) -> None:
        self.host_label = HostLabels(known_hosts, max_hosts)
        self._children = LabelledChildren(REGISTRY_REQUESTS, (OTHER_REGISTRY, "", "error"))

    def __call__(self, registry: str, operation: str, ok: bool) -> None:
        PENDING.inc(self._children.get(self.host_label(registry), operation, "ok" if ok else "error"))
        if not ok:
            upstream_error("registry")
