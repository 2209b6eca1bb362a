"""Namespace labels through the Kubernetes API, cached so that the warm path never waits.

A workload's own labels are written by whoever submits it; its namespace's labels are
set by the platform team. Facts that must not be lowered by the workload itself (its
criticality) therefore also read the namespace. Entries live ``ttl_seconds``; a miss
is one GET, shared by concurrent requests for the same namespace.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping

from webhook.kube_api import KubeApi, KubeApiError, NotFound, namespaced_path
from webhook.observe.io_counters import CacheCounter, upstream_error

_CACHE = CacheCounter("namespace_labels")


class NamespaceLabels:
    """``labels(namespace)`` with a TTL cache; ``cached(namespace)`` answers without I/O or says None."""

    def __init__(
        self,
        kube: KubeApi,
        *,
        ttl_seconds: float = 60.0,
        max_entries: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kube, self._ttl, self._max, self._clock = kube, ttl_seconds, max_entries, clock
        self._entries: OrderedDict[str, tuple[float, Mapping[str, str]]] = OrderedDict()
        self._inflight: dict[str, asyncio.Future[Mapping[str, str]]] = {}

    def cached(self, namespace: str) -> Mapping[str, str] | None:
        entry = self._entries.get(namespace)
        if entry is None or self._clock() - entry[0] >= self._ttl:
            return None
        return entry[1]

    async def labels(self, namespace: str) -> Mapping[str, str]:
        """The namespace's labels; KubeApiError when the API cannot say."""
        found = self.cached(namespace)
        _CACHE(found is not None)
        if found is not None:
            return found
        pending = self._inflight.get(namespace)
        if pending is None:
            pending = asyncio.ensure_future(self._fetch(namespace))
            self._inflight[namespace] = pending
            pending.add_done_callback(lambda _: self._inflight.pop(namespace, None))
        return await asyncio.shield(pending)

    async def _fetch(self, namespace: str) -> Mapping[str, str]:
        path = namespaced_path("/api/v1", namespace)  # not a name: KubeApiError, no call
        try:
            obj = await self._kube.get(path)
        except KubeApiError as exc:
            if not isinstance(exc, NotFound):
                upstream_error("kubernetes")
            raise
        raw = (obj.get("metadata") or {}).get("labels") or {}
        labels = {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}
        self._entries[namespace] = (self._clock(), labels)
        self._entries.move_to_end(namespace)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
        return labels
