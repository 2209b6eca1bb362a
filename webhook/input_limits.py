"""Limits on the size and shape of untrusted input: JSON nesting, containers per pod, labels and
annotations per map, string length. Pure.

orjson refuses nesting deeper than 1024 on ``loads`` but only 254 on ``dumps``, and
every later stage (memo keys, engines, the decision log) walks the document again. A
workload does not need more than a few dozen levels, so the adapter refuses deeper
bodies up front with a 400 that names the setting (``admission.max_json_depth``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from webhook.admission import AdmissionRequest
from webhook.decision import Finding
from webhook.workloads import PodTemplate, metadata

ORJSON_MAX_DEPTH = 1024  # orjson.loads raises "depth limit exceeded" beyond this
_WORST_BYTES_PER_CHAR = 6  # a control character escapes to \u00XX


def exceeds_depth(doc: Any, limit: int, *, body: bytes | None = None) -> bool:
    """Whether ``doc`` nests objects/arrays deeper than ``limit`` levels.

    Iterative (no recursion to blow up). When ``body`` is given and holds no more
    brackets than ``limit``, the walk is skipped: that is the common, cheap case.
    """
    if body is not None and body.count(b"{") + body.count(b"[") <= limit:
        return False
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def template_over_limits(template: PodTemplate | None, *, max_containers: int, max_image_chars: int) -> Finding | None:
    """A deny finding when a pod template is beyond what deployguard evaluates safely, else None.

    Policy evaluation grows faster than linearly with the number of containers
    (rego-cpp: 100 containers 0.55 s, 400 containers 6.7 s, on the event loop), and an
    image reference is at most a few hundred characters when valid (longer strings of any
    kind are also held to ``string_over_limit``, which keeps rego-cpp from crashing). So
    outsized templates are denied before evaluation. A denial, not an HTTP error, so
    ``failurePolicy: Ignore`` cannot admit them.
    """
    if template is None:
        return None
    containers = template.containers
    if 0 < max_containers < len(containers):
        return Finding(
            rule="input_limits",
            message=f"the pod template has {len(containers)} containers (init and ephemeral included); "
            f"deployguard checks at most {max_containers}",
            fix="split the workload, or raise admission.max_containers if such pods are intended",
        )
    for container in containers:
        if len(container.image) > max_image_chars > 0:
            return Finding(
                rule="input_limits",
                message=f"{container.container_type} {container.name[:63]!s} has an image reference of "
                f"{len(container.image)} characters; a valid reference is far shorter (limit {max_image_chars})",
                fix="use a valid image reference (registry/repository:tag@sha256:digest)",
            )
    return None


def entries_over_limit(request: AdmissionRequest, template: PodTemplate | None, max_entries: int) -> Finding | None:
    """A deny finding when the new object's or its pod template's labels or annotations, or the
    requester's groups, hold more than ``max_entries`` entries, else None. O(1): lengths only.

    Each entry costs about 15 µs of a memo miss, all of it blocking the event loop (the policy
    input, the memo key, the string check, the engine's input, the engine's lookups), so a
    3 MiB body of tiny annotations blocked it for seconds. The API server limits annotations
    to 256 KiB in all (some 20,000 tiny ones) and labels not by count; workloads carry tens.
    Only the new object counts: an update that removes entries from an oversized object passes.
    """
    if max_entries <= 0 or request.obj is None:
        return None
    meta = metadata(request.obj)
    # Lengths first (this runs for every request); the place is named only for a finding.
    counts = (
        _count(meta.get("labels")),
        _count(meta.get("annotations")),
        _count(template.labels) if template else 0,
        _count(template.annotations) if template else 0,
        len(request.user.groups),
    )
    if max(counts) <= max_entries:
        return None
    places = (f"the {request.kind}'s labels", f"the {request.kind}'s annotations", "the pod template's labels",
              "the pod template's annotations", "the requester's groups")  # fmt: skip
    count, what = max(zip(counts, places, strict=True))
    return Finding(
        rule="input_limits",
        message=f"{what} hold {count:,} entries; deployguard evaluates at most {max_entries:,} "
        "(admission.max_map_entries), so the request was not evaluated",
        fix="remove entries nothing reads, or raise admission.max_map_entries if so many are intended",
    )


def _count(entries: Any) -> int:
    return len(entries) if isinstance(entries, dict | Mapping) else 0


def string_over_limit(policy_input: Any, max_bytes: int) -> Finding | None:
    """A deny finding naming the first string (key or value) of the policy input whose escaped
    JSON form is longer than ``max_bytes``, else None.

    rego-cpp 1.5.2 keeps strings in that form and matches regexes (``regex.match``, and so
    ``lib.quoted`` in every message) recursively: about 26,000 bytes overflow an 8 MiB stack
    (SIGSEGV: the whole process). Any string may meet a regex in some policy, so all are held
    to the limit (config.MAX_STRING_BYTES_CEILING keeps it well below the crash). Iterative;
    a string that cannot reach the limit even if every character escaped to six bytes is not
    encoded at all."""
    if max_bytes <= 0 or len(orjson.dumps(policy_input)) <= max_bytes:
        return None  # the usual case (a Deployment's input is ~1.5 KB): no string can be longer
    stack: list[tuple[Any, str]] = [(policy_input, "input")]
    while stack:
        node, where = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(key, str) and _escaped_bytes(key, max_bytes) > max_bytes:
                    return _too_long(f"a key of {where}", _escaped_bytes(key, max_bytes), max_bytes)
                stack.append((value, f"{where}.{key}" if key.isidentifier() else f"{where}[{key[:63]!r}]"))
        elif isinstance(node, list):
            stack.extend((item, f"{where}[{i}]") for i, item in enumerate(node))
        elif isinstance(node, str) and _escaped_bytes(node, max_bytes) > max_bytes:
            return _too_long(where, _escaped_bytes(node, max_bytes), max_bytes)
    return None


def _escaped_bytes(text: str, max_bytes: int) -> int:
    if len(text) * _WORST_BYTES_PER_CHAR <= max_bytes:
        return len(text)
    return len(orjson.dumps(text)) - 2


def _too_long(where: str, size: int, max_bytes: int) -> Finding:
    return Finding(
        rule="input_limits",
        message=f"{where} is {size:,} bytes long (as JSON); deployguard evaluates strings of at most "
        f"{max_bytes:,} bytes (admission.max_string_bytes), so the request was not evaluated",
        fix="shorten it; the policy engine cannot safely match patterns on much longer strings",
    )
