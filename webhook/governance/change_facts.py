"""Diff features of an old and a new workload, for the Rego risk score. Pure.

Python measures what changed (images, major versions, replicas, resources, probes,
rollout strategy, privilege, the team's local hour); Rego weighs it. Everything here
is a small number, boolean or name list so that the policy input stays small and the
decision memo keeps hitting: local time is reduced to an hour bucket and a business
hours flag.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from webhook.config import ChangeSettings
from webhook.images import parse_image
from webhook.workloads import PodTemplate

_VERSION = re.compile(r"^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:[-+].*)?$")
_HOST_FIELDS = ("hostNetwork", "hostPID", "hostIPC")
_DIFF_CAP = 200  # diff sizes above this all look the same to a policy


def major_version(tag: str) -> int | None:
    """The major version of a semver-like tag (``1.4.2``, ``v2``, ``3.1-alpine``), else None."""
    match = _VERSION.match(tag)
    return int(match.group(1)) if match else None


def _containers(template: PodTemplate | None) -> dict[str, Mapping[str, Any]]:
    if template is None:
        return {}
    found: dict[str, Mapping[str, Any]] = {}
    for key in ("initContainers", "containers"):
        items = template.spec.get(key)
        for item in items if isinstance(items, list) else []:
            if isinstance(item, Mapping):
                found[str(item.get("name", ""))] = item
    return found


def _privileged(container: Mapping[str, Any]) -> bool:
    ctx = container.get("securityContext")
    return isinstance(ctx, Mapping) and (ctx.get("privileged") is True or ctx.get("allowPrivilegeEscalation") is True)


def _host_settings(template: PodTemplate | None) -> set[str]:
    if template is None:
        return set()
    found = {f for f in _HOST_FIELDS if template.spec.get(f) is True}
    volumes = template.spec.get("volumes")
    for volume in volumes if isinstance(volumes, list) else []:
        if isinstance(volume, Mapping) and "hostPath" in volume:
            found.add(f"hostPath volume {volume.get('name', '')}")
    for name, container in _containers(template).items():
        ports = container.get("ports")
        for port in ports if isinstance(ports, list) else []:
            if isinstance(port, Mapping) and port.get("hostPort"):
                found.add(f"hostPort in {name}")
    return found


def _leaves(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_leaves(v, f"{prefix}.{k}"))
        return out
    if isinstance(value, list):
        out = {}
        for i, v in enumerate(value):
            out.update(_leaves(v, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def _template_doc(template: PodTemplate | None) -> dict[str, Any]:
    if template is None:
        return {}
    return {"labels": dict(template.labels), "annotations": dict(template.annotations), "spec": template.spec}


def diff_size(old: PodTemplate | None, new: PodTemplate | None) -> int:
    """How many leaf values of the pod template were added, removed or changed (capped)."""
    a, b = _leaves(_template_doc(old)), _leaves(_template_doc(new))
    return min(sum(1 for k in a.keys() | b.keys() if a.get(k) != b.get(k)), _DIFF_CAP)


def max_unavailable_all(obj: Mapping[str, Any] | None) -> bool:
    """A rolling update that may take every pod down at once (maxUnavailable 100%), or Recreate."""
    spec = obj.get("spec") if isinstance(obj, Mapping) else None
    strategy = spec.get("strategy") if isinstance(spec, Mapping) else None
    if not isinstance(strategy, Mapping):
        return False
    if strategy.get("type") == "Recreate":
        return True
    rolling = strategy.get("rollingUpdate")
    value = rolling.get("maxUnavailable") if isinstance(rolling, Mapping) else None
    if value == "100%":
        return True
    replicas = spec.get("replicas") if isinstance(spec, Mapping) else None
    return isinstance(value, int) and isinstance(replicas, int) and replicas > 0 and value >= replicas


def local_time_facts(now: datetime, zone_name: str, settings: ChangeSettings) -> dict[str, Any]:
    """The team's local weekday and hour (an hour bucket) and whether that is off-hours."""
    try:
        zone = ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        zone_name = settings.default_time_zone
        zone = ZoneInfo(zone_name)
    local = now.astimezone(zone)
    start, end = settings.business_hours
    off = local.weekday() not in settings.business_days or not start <= local.hour < end
    return {"zone": zone_name, "weekday": _WEEKDAYS[local.weekday()], "hour": local.hour, "off_hours": off}


_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")  # strftime("%a") in the C locale, without its cost


NO_LABELS: Mapping[str, str] = MappingProxyType({})  # labels not read (no Kubernetes API), or none


def criticality(workload: str, namespace: str, levels: tuple[str, ...]) -> str:
    """The higher of the workload's and the namespace's criticality (by ``levels``), so that a
    workload's own label can raise it but never lower what its namespace says."""
    known = [c for c in (workload, namespace) if c in levels]
    if known:
        return max(known, key=levels.index)
    return workload or namespace


def change_facts(
    old_obj: Mapping[str, Any] | None,
    new_obj: Mapping[str, Any] | None,
    old: PodTemplate | None,
    new: PodTemplate | None,
    *,
    labels: Mapping[str, str],
    now: datetime,
    settings: ChangeSettings,
    namespace_labels: Mapping[str, str] | None = NO_LABELS,
) -> dict[str, Any]:
    """``input.facts.change``: what the risk score weighs. ``old_obj`` is None on create.

    ``namespace_labels`` None: the namespace's labels could not be read (its criticality
    is then "unknown" and the workload's label alone counts)."""
    old_c, new_c = _containers(old), _containers(new)
    images_changed = sorted(n for n, c in new_c.items() if old_c.get(n, {}).get("image") != c.get("image"))
    major_jumps = []
    for name in images_changed:
        if name not in old_c:
            continue
        before, after = parse_image(str(old_c[name].get("image", ""))), parse_image(str(new_c[name].get("image", "")))
        a, b = major_version(before.tag), major_version(after.tag)
        if a is not None and b is not None and a != b and before.name == after.name:
            major_jumps.append({"container": name, "from": before.tag, "to": after.tag})
    resources_changed = sorted(
        n for n, c in new_c.items() if n in old_c and old_c[n].get("resources") != c.get("resources")
    )
    probes_removed = sorted(
        f"{probe} of {n}"
        for n, c in old_c.items()
        for probe in ("livenessProbe", "readinessProbe", "startupProbe")
        if c.get(probe) and not new_c.get(n, {}).get(probe)
    )
    privileged_added = sorted(n for n, c in new_c.items() if _privileged(c) and not _privileged(old_c.get(n, {})))
    host_added = sorted(_host_settings(new) - _host_settings(old))
    old_replicas = _replicas(old_obj)
    new_replicas = _replicas(new_obj)
    percent = 0  # an integer: rego-cpp prints floats with all their digits
    if old_obj is not None and old_replicas is not None and new_replicas is not None:
        percent = round(100 * abs(new_replicas - old_replicas) / max(old_replicas, 1))
    zone = labels.get(settings.time_zone_label) or settings.default_time_zone
    return {
        "status": "ok",
        "create": old_obj is None,
        "images_changed": images_changed,
        "major_version_jumps": major_jumps,
        "replicas": {"old": old_replicas, "new": new_replicas, "change_percent": percent},
        "resources_changed": resources_changed,
        "probes_removed": probes_removed,
        "max_unavailable_all": max_unavailable_all(new_obj),
        "privileged_added": privileged_added,
        "host_settings_added": host_added,
        "criticality": criticality(
            labels.get(settings.criticality_label, ""),
            (namespace_labels or {}).get(settings.criticality_label, ""),
            settings.criticality_levels,
        ),
        "namespace_criticality": "unknown"
        if namespace_labels is None
        else namespace_labels.get(settings.criticality_label, ""),
        "diff_size": diff_size(old, new) if old_obj is not None else 0,
        "local_time": local_time_facts(now, zone, settings),
    }


def _replicas(obj: Mapping[str, Any] | None) -> int | None:
    spec = obj.get("spec") if isinstance(obj, Mapping) else None
    value = spec.get("replicas") if isinstance(spec, Mapping) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None
