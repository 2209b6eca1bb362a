"""Limits on the size and shape of untrusted input: JSON nesting, containers per pod. Pure.

orjson refuses nesting deeper than 1024 on ``loads`` but only 254 on ``dumps``, and
every later stage (memo keys, engines, the decision log) walks the document again. A
workload does not need more than a few dozen levels, so the adapter refuses deeper
bodies up front with a 400 that names the setting (``admission.max_json_depth``).
"""

from __future__ import annotations

from typing import Any

from webhook.decision import Finding
from webhook.workloads import PodTemplate

ORJSON_MAX_DEPTH = 1024  # orjson.loads raises "depth limit exceeded" beyond this


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
    (rego-cpp: 100 containers 0.55 s, 400 containers 6.7 s, on the event loop), and
    rego-cpp 1.5.2 crashes the process (SIGSEGV) matching regexes on image strings of
    about 30,000 characters. So outsized templates are denied before evaluation. A
    denial, not an HTTP error, so ``failurePolicy: Ignore`` cannot admit them.
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
