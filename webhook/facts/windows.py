"""The ``windows`` fact: which freezes and windows stop this change now, and when it could go.

Times are computed here (Rego only judges) at minute resolution, so the decision memo
stays correct, and shown in the workload's zone (annotation ``deployguard.io/time-zone``
on the workload or its pod template, else ``change.default_time_zone``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from webhook.config import Settings
from webhook.governance.calendar_sources import CalendarSource, Problem, Snapshot
from webhook.governance.change_calendar import (
    ActiveEntry,
    CalendarEntry,
    evaluate,
    floor_minute,
    human_text,
    local_text,
)
from webhook.policy_input import Subject
from webhook.workloads import metadata

Clock = Callable[[], datetime]
ZONE_KEY = "deployguard.io/time-zone"  # change.time_zone_label: shared with the risk score's off-hours


def utc_now() -> datetime:
    return datetime.now(UTC)


def merged_snapshot(sources: Sequence[CalendarSource | Snapshot]) -> Snapshot:
    snaps = [s if isinstance(s, Snapshot) else s.snapshot() for s in sources]
    return Snapshot(
        entries=tuple(e for s in snaps for e in s.entries),
        problems=tuple(p for s in snaps for p in s.problems),
    )


def workload_zone(
    labels: Mapping[str, str], annotations: Mapping[str, str], default: str, key: str = ZONE_KEY
) -> tuple[ZoneInfo, str]:
    """The zone people of this workload read times in, and a problem text when the label is wrong."""
    name = annotations.get(key) or labels.get(key) or ""
    if name:
        try:
            return ZoneInfo(name), ""
        except (ZoneInfoNotFoundError, ValueError):
            return ZoneInfo(default), f"{key}={name} is not an IANA time zone; using {default}"
    return ZoneInfo(default), ""


def entry_fact(active: ActiveEntry, zone: ZoneInfo) -> dict[str, Any]:
    entry = active.entry
    return {
        "kind": entry.kind,
        "name": entry.name,
        "namespace": entry.namespace,
        "source": entry.source,
        "reason": entry.reason,
        "declared_by": entry.declared_by,
        "ticket": entry.ticket,
        "zone": entry.zone,
        "occasion": active.interval.label,
        "change_types": list(entry.change_types),
        "until": local_text(active.interval.end, zone),
        "until_text": human_text(active.interval.end, zone),
    }


def window_facts(
    snapshot: Snapshot,
    *,
    now: datetime,
    namespace: str,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    change_type: str,
    default_zone: str,
    zone_key: str = ZONE_KEY,
) -> dict[str, Any]:
    """The JSON document at ``input.facts.windows``. Pure."""
    now = floor_minute(now)
    zone, zone_problem = workload_zone(labels, annotations, default_zone, zone_key)
    verdict = evaluate(snapshot.entries, now=now, namespace=namespace, labels=labels, change_type=change_type)
    problems = [p.message for p in snapshot.problems if p.namespace in ("", namespace)]
    if zone_problem:
        problems.append(zone_problem)
    allowed: list[CalendarEntry] = list(verdict.allow_windows)
    return {
        "status": "ok",
        "now": local_text(now, zone),
        "zone": zone.key,
        "change_type": change_type,
        "blocking": sorted((entry_fact(a, zone) for a in verdict.blocking), key=lambda f: (f["kind"], f["name"])),
        "allowed_windows": sorted({e.name for e in allowed}),
        "inside_allowed": verdict.inside_allowed,
        "opens_at": local_text(verdict.opens_at, zone),
        "opens_at_text": human_text(verdict.opens_at, zone),
        "problems": sorted(problems),
    }


class RecentFacts:
    """A small LRU of window facts, valid for one set of source snapshots.

    The facts are a pure function of (snapshots, minute, namespace, labels, zone,
    change type): a rollout's repeats in the same minute reuse them instead of
    expanding the calendar again. A source that hands out another snapshot (a
    freeze declared, a file changed, the watch gone stale) empties the cache.
    """

    def __init__(self, max_entries: int = 256) -> None:
        self.max_entries = max_entries
        self._snapshots: tuple[Snapshot, ...] = ()
        self._entries: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()

    def _valid_for(self, snapshots: tuple[Snapshot, ...]) -> bool:
        return len(snapshots) == len(self._snapshots) and all(
            a is b for a, b in zip(snapshots, self._snapshots, strict=True)
        )

    def get(self, snapshots: tuple[Snapshot, ...], key: tuple[Any, ...]) -> dict[str, Any] | None:
        if not self._valid_for(snapshots):
            return None
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
        return found

    def put(self, snapshots: tuple[Snapshot, ...], key: tuple[Any, ...], facts: dict[str, Any]) -> None:
        if not self._valid_for(snapshots):
            self._entries.clear()
            self._snapshots = snapshots
        self._entries[key] = facts
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)


class WindowsGatherer:
    """Evaluates the change calendar for each request; the clock is injectable for tests."""

    name = "windows"
    eager = True  # no I/O in gather: sources hand out snapshots (see webhook/facts/__init__.py)

    def __init__(
        self,
        sources: Sequence[CalendarSource],
        *,
        default_zone: str = "UTC",
        zone_key: str = ZONE_KEY,
        clock: Clock = utc_now,
    ) -> None:
        self._sources = tuple(sources)
        self._default_zone = default_zone
        self._zone_key = zone_key
        self._clock = clock
        self._recent = RecentFacts()

    def start(self) -> None:
        """Start the sources that watch (the Kubernetes calendar); called by the server's lifespan."""
        for source in self._sources:
            start = getattr(source, "start", None)
            if callable(start):
                start()

    def stop(self) -> None:
        """Stop the watches started by ``start``."""
        for source in self._sources:
            stop = getattr(source, "stop", None)
            if callable(stop):
                stop()

    def ready(self) -> tuple[bool, str]:
        """Unready until each watched source had its first list: serving before that would
        admit changes that a freeze declared in the cluster blocks."""
        for source in self._sources:
            listed = getattr(source, "listed", None)
            if callable(listed) and not listed():
                return False, "change calendar: ChangeFreeze/ChangeWindow objects not listed yet"
        return True, ""

    def prime(self) -> None:
        """List the watched sources once, synchronously: for one-shot commands (check) that never serve."""
        for source in self._sources:
            list_once = getattr(source, "list_once", None)
            if callable(list_once):
                list_once()

    async def gather(self, subject: Subject) -> dict[str, Any]:
        """The windows fact; read-only (it may be the same object for many requests)."""
        meta = metadata(subject.request.subject)
        labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
        annotations = {str(k): str(v) for k, v in (meta.get("annotations") or {}).items()}
        if subject.template is not None:
            labels = {**subject.template.labels, **labels}
            annotations = {**subject.template.annotations, **annotations}
        snapshots = tuple(source.snapshot() for source in self._sources)
        now = floor_minute(self._clock())
        # window_facts reads the annotations only for the zone; everything else it reads is in the key.
        zone_name = annotations.get(self._zone_key) or labels.get(self._zone_key) or ""
        key = (now, subject.request.namespace, tuple(sorted(labels.items())), zone_name, subject.change.value)
        cached = self._recent.get(snapshots, key)
        if cached is not None:
            return cached
        facts = window_facts(
            merged_snapshot(snapshots),
            now=now,
            namespace=subject.request.namespace,
            labels=labels,
            annotations=annotations,
            change_type=subject.change.value,
            default_zone=self._default_zone,
            zone_key=self._zone_key,
        )
        self._recent.put(snapshots, key, facts)
        return facts


def problems_of(snapshot: Snapshot, namespace: str | None) -> list[Problem]:
    return [p for p in snapshot.problems if namespace is None or p.namespace in ("", namespace)]


def build_windows_gatherer(settings: Settings, *, watch: bool = False) -> WindowsGatherer:
    """Data files (plus change-windows.yaml in the policy directory) and, if enabled, the cluster's objects.

    The Kubernetes watch starts with ``watch`` or later with ``start()`` (the server's lifespan)."""
    from webhook.governance.calendar_sources import FileSource
    from webhook.policy_bundle import default_policy_dir

    policy_dir = settings.policy.directory or default_policy_dir()
    sources: list[CalendarSource] = [FileSource(settings.windows.files, optional=[policy_dir / "change-windows.yaml"])]
    if settings.windows.watch_kubernetes:
        from webhook.governance.kube_calendar import KubeCalendarSource

        kube = KubeCalendarSource(
            settings.kube_api.kubeconfig,
            resync_seconds=settings.windows.resync_seconds,
            stale_after_seconds=settings.windows.stale_after_seconds,
        )
        if watch:
            kube.start()
        sources.append(kube)
    return WindowsGatherer(
        sources, default_zone=settings.change.default_time_zone, zone_key=settings.change.time_zone_label
    )
