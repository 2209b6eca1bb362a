"""Where change windows and freezes come from: data files (or a mounted ConfigMap) here,
Kubernetes objects in ``webhook/governance/kube_calendar.py``. Both hand out immutable snapshots.

A definition that does not parse is kept as a problem with the namespace it belongs to,
so that it is reported (decision warnings, ``windows status``) instead of ignored.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

from webhook import yaml_limits
from webhook.governance.change_calendar import CalendarEntry, CalendarError, parse_object


@dataclass(frozen=True)
class Problem:
    """A definition that could not be used, or a source that is behind. ``namespace`` "" concerns everyone."""

    namespace: str
    message: str


@dataclass(frozen=True)
class Snapshot:
    entries: tuple[CalendarEntry, ...] = ()
    problems: tuple[Problem, ...] = ()


class CalendarSource(Protocol):
    """Something that knows the current windows and freezes."""

    name: str

    def snapshot(self) -> Snapshot:
        """The last known definitions (never blocks; a stale source says so in its problems)."""


def parse_items(items: Sequence[Any], *, source: str) -> Snapshot:
    """Parse each item alone: one bad definition does not hide the good ones."""
    entries: list[CalendarEntry] = []
    problems: list[Problem] = []
    for index, item in enumerate(items):
        meta = item.get("metadata") if isinstance(item, dict) else None
        namespace = str(meta.get("namespace") or "") if isinstance(meta, dict) else ""
        try:
            label = f"{source} item {index}" if source.startswith("file") else source
            entries.append(parse_object(item, source=label))
        except CalendarError as exc:
            problems.append(Problem(namespace, str(exc)))
    return Snapshot(tuple(entries), tuple(problems))


def load_file(path: Path) -> Snapshot:
    """A YAML file with ``windows: [...]`` (objects shaped like the CRDs: kind, metadata, spec)."""
    try:
        raw = yaml_limits.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        return Snapshot(problems=(Problem("", f"change windows file {path} cannot be read: {exc}"),))
    items = raw.get("windows") if isinstance(raw, dict) else None
    if items is None:
        items = []
    if not isinstance(items, list):
        return Snapshot(problems=(Problem("", f"change windows file {path}: 'windows' must be a list"),))
    return parse_items(items, source=f"file {path.name}")


class FileSource:
    """Data files, re-read when they change on disk (a ConfigMap update swaps the file).

    Whether they changed is checked at most every ``recheck_seconds`` (stat calls on
    every request were 3 % of a warm answer); the kubelet takes up to a minute to
    swap a ConfigMap's file anyway.
    """

    name = "files"

    def __init__(
        self,
        paths: Sequence[Path],
        *,
        optional: Sequence[Path] = (),
        recheck_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._optional = frozenset(optional)  # absent is fine (the policy directory's change-windows.yaml)
        self._paths = tuple(optional) + tuple(paths)
        self._names = tuple(str(p) for p in self._paths)
        self._stamp: tuple[tuple[float, int], ...] | None = None
        self._snapshot = Snapshot()
        self._recheck, self._clock = recheck_seconds, clock
        self._checked_at = -math.inf

    def _stamps(self) -> tuple[tuple[float, int], ...]:
        result = []
        for path in self._names:
            try:
                st = os.stat(path)
                result.append((st.st_mtime, st.st_size))
            except OSError:
                result.append((-1.0, -1))
        return tuple(result)

    def snapshot(self) -> Snapshot:
        now = self._clock()
        if now - self._checked_at < self._recheck:
            return self._snapshot
        self._checked_at = now
        stamp = self._stamps()
        if stamp != self._stamp:
            parts = [load_file(p) for p in self._paths if p not in self._optional or p.exists()]
            self._snapshot = Snapshot(
                entries=tuple(e for s in parts for e in s.entries),
                problems=tuple(p for s in parts for p in s.problems),
            )
            self._stamp = stamp
        return self._snapshot
