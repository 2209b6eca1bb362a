"""Kubernetes Events on the workload for denials and warnings: best effort, never blocking.

``observe`` runs on the request path, so it only checks the rate limit and puts the
Event on a bounded queue (dropping it when full); a background task sends queued
Events through the Kubernetes API. A failing API server costs a counter increment,
never an answer or a delay. Dry-run requests get no Events (nothing was attempted).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from webhook.observe.io_counters import upstream_error
from webhook.observe.metric_buffer import PENDING
from webhook.observe.metrics import KUBERNETES_EVENTS, LabelledChildren

log = logging.getLogger("deployguard.events")

_EVENTS = LabelledChildren(KUBERNETES_EVENTS, ("",))  # by result; counted on the event loop, through PENDING
REASONS = {"denied": ("DeployDenied", "Warning"), "warned": ("DeployWarned", "Warning")}
MAX_MESSAGE = 1024  # the API server truncates Event messages anyway


class EventSink(Protocol):
    """Where Events go (the Kubernetes API); blocking, called off the event loop."""

    def create(self, namespace: str, body: dict[str, Any]) -> None: ...


def event_body(record: Mapping[str, Any], now: datetime) -> dict[str, Any] | None:
    """The core/v1 Event for a decision record, or None when it deserves none. Pure."""
    if record.get("rejected") or record.get("dry_run") or not record.get("namespace") or not record.get("name"):
        return None
    reason_type = REASONS.get(str(record.get("outcome")))
    if reason_type is None:
        return None
    reason, event_type = reason_type
    wanted = "deny" if reason == "DeployDenied" else "warn"
    lines = [f"[{f['rule']}] {f['message']}" for f in record.get("findings") or () if f.get("mode") == wanted]
    verb = "denied" if wanted == "deny" else "admitted with warnings"
    message = f"deployguard {verb} {record.get('operation', '').lower()} (decision {record['decision_id']}): "
    message += "; ".join(lines) or "; ".join(record.get("notes") or ()) or str(record.get("error") or "")
    group, version = record.get("group") or "", record.get("version") or "v1"
    stamp = now.isoformat(timespec="seconds").replace("+00:00", "Z")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{record['name']}.", "namespace": record["namespace"]},
        "involvedObject": {
            "apiVersion": f"{group}/{version}" if group else version,
            "kind": record.get("kind"),
            "namespace": record["namespace"],
            "name": record["name"],
        },
        "reason": reason,
        "type": event_type,
        "message": message[:MAX_MESSAGE],
        "source": {"component": "deployguard"},
        "reportingComponent": "deployguard",
        "reportingInstance": "deployguard",
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


class EventRecorder:
    """A decision observer that queues Events and a task (``run``) that sends them."""

    def __init__(
        self,
        sink: EventSink,
        *,
        min_interval_seconds: float = 60.0,
        queue_size: int = 256,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sink = sink
        self._interval = min_interval_seconds
        self._clock = clock
        self._last: dict[tuple[str, ...], float] = {}
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=queue_size)

    def observe(self, record: Mapping[str, Any], timings: Mapping[str, float]) -> None:
        body = event_body(record, datetime.now(UTC))
        if body is None:
            return
        target = body["involvedObject"]
        key = (str(target["namespace"]), str(target["kind"]), str(target["name"]), str(body["reason"]))
        now = self._clock()
        if now - self._last.get(key, -1e18) < self._interval:
            PENDING.inc(_EVENTS.get("rate_limited"))
            return
        try:
            self.queue.put_nowait(body)
        except asyncio.QueueFull:
            PENDING.inc(_EVENTS.get("dropped"))
            return
        self._last[key] = now
        if len(self._last) > 10_000:  # forget the oldest half rather than grow without bound
            for old in sorted(self._last, key=self._last.__getitem__)[:5_000]:
                del self._last[old]

    async def run(self) -> None:
        """Send queued Events until cancelled."""
        while True:
            body = await self.queue.get()
            try:
                await asyncio.to_thread(self._sink.create, body["metadata"]["namespace"], body)
                PENDING.inc(_EVENTS.get("sent"))
            except Exception as exc:
                PENDING.inc(_EVENTS.get("failed"))
                upstream_error("kubernetes")
                log.warning("could not create an Event in %s: %s", body["metadata"]["namespace"], exc)
            finally:
                self.queue.task_done()


class KubernetesEventSink:
    """core/v1 Events through the official Kubernetes client (kubeconfig or in-cluster).

    The client is built on first use, so a kubeconfig that appears after start-up works.
    """

    def __init__(self, kubeconfig: Path | None, timeout_seconds: float = 2.0) -> None:
        self._kubeconfig = kubeconfig
        self._timeout = timeout_seconds
        self._api: Any = None

    def _client(self) -> Any:
        if self._api is None:
            from kubernetes import client

            from webhook.kube_client import api_client

            self._api = client.CoreV1Api(api_client(self._kubeconfig))  # best effort: no urllib3 retries
        return self._api

    def create(self, namespace: str, body: dict[str, Any]) -> None:
        # The client serialises a plain dict as it would its own model.
        self._client().create_namespaced_event(namespace, body, _request_timeout=self._timeout)
