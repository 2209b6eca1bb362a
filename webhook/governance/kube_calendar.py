"""ChangeFreeze / ChangeWindow objects (and their Cluster* kinds) from the Kubernetes API.

The I/O edge of the change calendar: a daemon thread lists every kind, then watches it
until the resync interval ends, and lists again. Requests never wait on it: they read
the last snapshot. On errors the last known definitions stay in force and the snapshot
carries a problem saying since when the calendar is stale (the policy warns about it).
The official ``kubernetes`` client, built on first use so a kubeconfig that appears
after start-up (the e2e control plane writes it late) still works.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from webhook.governance.calendar_sources import Problem, Snapshot, parse_items
from webhook.kube_client import api_client
from webhook.observe.io_counters import upstream_error_from_thread

log = logging.getLogger("deployguard.windows")

GROUP = "deployguard.io"
VERSION = "v1alpha1"


@dataclass(frozen=True)
class Resource:
    kind: str
    plural: str
    namespaced: bool


RESOURCES = (
    Resource("ChangeFreeze", "changefreezes", True),
    Resource("ClusterChangeFreeze", "clusterchangefreezes", False),
    Resource("ChangeWindow", "changewindows", True),
    Resource("ClusterChangeWindow", "clusterchangewindows", False),
)


class KubeCalendarSource:
    """The change calendar as declared in the cluster, kept current by list + watch."""

    name = "kubernetes"

    def __init__(
        self,
        kubeconfig: Path | None,
        *,
        resync_seconds: float = 300.0,
        stale_after_seconds: float = 120.0,
        request_timeout_seconds: float = 10.0,
    ) -> None:
        self._kubeconfig = kubeconfig
        self._resync = max(resync_seconds, 1.0)
        self._stale_after = stale_after_seconds
        self._timeout = request_timeout_seconds
        self._lock = threading.Lock()
        self._objects: dict[str, dict[str, Any]] = {r.kind: {} for r in RESOURCES}
        self._listed: dict[str, float] = {}  # kind -> monotonic time of the last successful list
        self._errors: dict[str, str] = {}
        self._snapshot = Snapshot(problems=(Problem("", "change calendar: ChangeFreeze/ChangeWindow not listed yet"),))
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._attempted: set[str] = set()  # kinds whose first list finished (either way)

    def start(self) -> None:
        """One daemon thread per kind, so a missing CRD does not hold up the others. Idempotent."""
        if self._threads:
            return
        for resource in RESOURCES:
            thread = threading.Thread(target=self._run, args=(resource,), name=f"watch-{resource.plural}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()

    def listed(self) -> bool:
        """Whether every kind had its first list (successful or not): until then the snapshot
        lacks the cluster's freezes, so the server reports itself unready instead of admitting."""
        with self._lock:
            return len(self._attempted) == len(RESOURCES)

    def snapshot(self) -> Snapshot:
        with self._lock:
            snap = self._snapshot
            listed = dict(self._listed)
            errors = dict(self._errors)
        now = time.monotonic()
        stale = []
        for resource in RESOURCES:
            last = listed.get(resource.kind, self._started)
            if now - last > self._stale_after and resource.kind in errors:
                stale.append(f"{resource.kind} ({errors[resource.kind]})")
        if not stale:
            return snap
        text = "change calendar is stale, the last known freezes stay in force: cannot list " + "; ".join(stale)
        return Snapshot(snap.entries, (*snap.problems, Problem("", text)))

    def list_once(self) -> Snapshot:
        """One list of every kind, for the CLI; a kind that cannot be listed becomes a problem."""
        try:
            api = self._api()
        except Exception as exc:  # no kubeconfig / not in a cluster: say so instead of crashing the CLI
            snap = self.snapshot()
            return Snapshot(snap.entries, (*snap.problems, Problem("", f"cannot reach Kubernetes: {_describe(exc)}")))
        problems = []
        for resource in RESOURCES:
            try:
                self._list(api, resource)
            except Exception as exc:  # the client's errors: say which kind, keep the others
                problems.append(Problem("", f"cannot list {resource.plural}: {_describe(exc)}"))
        snap = self.snapshot()
        return Snapshot(snap.entries, (*snap.problems, *problems))

    # -- the I/O

    def _api(self) -> Any:
        from kubernetes import client

        return client.CustomObjectsApi(api_client(self._kubeconfig))  # urllib3 retries off: _run backs off

    def _run(self, resource: Resource) -> None:
        api: Any = None
        backoff = 0.5
        while not self._stop.is_set():
            try:
                if api is None:
                    api = self._api()
                version = self._list(api, resource)
                backoff = 0.5
                self._watch(api, resource, version)
            except Exception as exc:  # any client error: keep the last snapshot, retry
                if getattr(exc, "status", None) != 404:  # a missing CRD is set-up, reported as such, not an outage
                    upstream_error_from_thread("kubernetes")  # the watch's thread, not the event loop's
                message = _describe(exc)
                with self._lock:
                    changed = self._errors.get(resource.kind) != message
                    self._errors[resource.kind] = message
                    self._attempted.add(resource.kind)
                if changed:
                    log.warning("cannot list/watch %s: %s (keeping the last known ones)", resource.plural, message)
                if "config" in type(exc).__module__ or isinstance(exc, OSError | FileNotFoundError):
                    api = None  # rebuild the client: the kubeconfig may appear or change
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)

    def _list(self, api: Any, resource: Resource) -> str:
        result = api.list_cluster_custom_object(GROUP, VERSION, resource.plural, _request_timeout=self._timeout)
        items = {_key(o): o for o in result.get("items", [])}
        with self._lock:
            self._objects[resource.kind] = items
            self._listed[resource.kind] = time.monotonic()
            self._errors.pop(resource.kind, None)
            self._attempted.add(resource.kind)
            self._rebuild()
        return str(result.get("metadata", {}).get("resourceVersion", ""))

    def _watch(self, api: Any, resource: Resource, version: str) -> None:
        from kubernetes import watch

        watcher = watch.Watch()  # type: ignore[no-untyped-call]
        stream = watcher.stream(  # type: ignore[no-untyped-call]
            api.list_cluster_custom_object,
            GROUP,
            VERSION,
            resource.plural,
            resource_version=version,
            timeout_seconds=int(self._resync),
            _request_timeout=self._resync + self._timeout,
        )
        for event in stream:
            if self._stop.is_set():
                watcher.stop()  # type: ignore[no-untyped-call]
                return
            obj = event.get("object")
            if not isinstance(obj, dict) or event.get("type") == "ERROR":
                return  # e.g. 410 Gone: list again
            with self._lock:
                if event.get("type") == "DELETED":
                    self._objects[resource.kind].pop(_key(obj), None)
                else:
                    self._objects[resource.kind][_key(obj)] = obj
                self._rebuild()

    def _rebuild(self) -> None:
        items = [dict(o, kind=kind) for kind, objs in self._objects.items() for _, o in sorted(objs.items())]
        self._snapshot = parse_items(items, source="kubernetes")


def _key(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def _describe(exc: Exception) -> str:
    status = getattr(exc, "status", None)
    reason = getattr(exc, "reason", None)
    if status == 404:
        return "the CRD is not installed (kubectl apply -f charts/deployguard/crds/)"
    if status is not None:
        return _printable(f"HTTP {status} {reason or ''}".strip())
    return _printable(f"{type(exc).__name__}: {exc}")[:300]


def _printable(text: str) -> str:
    """Client errors quote freely (urllib3: ``NewConnectionError("...")``); the policies show
    only printable ASCII without quotes or backslashes, so a stale calendar must read that way."""
    text = text.replace('"', "'").replace("\\", "/")
    return "".join(c if " " <= c <= "~" else " " for c in text)
