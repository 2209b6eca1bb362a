"""Build the small document Rego sees as ``input``. Pure.

Policies get facts, not whole objects: evaluation cost grows with input size
(DESIGN.md section 4), and whole objects may carry secrets (env values).
The contract is documented in ``policies/README.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from webhook.admission import AdmissionRequest
from webhook.images import parse_image
from webhook.workloads import ChangeType, PodTemplate, metadata, replicas


@dataclass(frozen=True)
class Subject:
    """What a request is about, as deployguard understood it."""

    request: AdmissionRequest
    change: ChangeType
    template: PodTemplate | None


def build_policy_input(subject: Subject) -> dict[str, Any]:
    """The ``input`` document for ``data.deployguard.decision``."""
    req = subject.request
    obj = req.subject
    meta = metadata(obj)
    template = subject.template
    images = []
    if template is not None and subject.change is not ChangeType.DELETE:
        for container in template.containers:
            images.append(
                {
                    "container": container.name,
                    "container_type": container.container_type,
                    "image": container.image,
                    "ref": parse_image(container.image).as_policy_input(),
                }
            )
    return {
        # No uid: it is unique per request and would defeat the decision memo.
        "request": {
            "operation": req.operation,
            "dry_run": req.dry_run,
            "group": req.group,
            "version": req.version,
            "kind": req.kind,
            "namespace": req.namespace,
            "name": req.name,
            "user": {"username": req.user.username, "groups": list(req.user.groups)},
        },
        "workload": {
            "kind": req.kind,
            "labels": dict(_strings(meta.get("labels"))),
            "annotations": _annotations(meta.get("annotations")),
            "template_labels": dict(template.labels) if template else {},
            "template_annotations": dict(template.annotations) if template else {},
            "replicas": replicas(obj),
        },
        "change": {"type": subject.change.value},
        "images": images,
    }


# Annotations that copy the whole object (and so may carry secrets) never reach policies.
_DROPPED_ANNOTATIONS = frozenset({"kubectl.kubernetes.io/last-applied-configuration"})


def _annotations(value: Any) -> dict[str, str]:
    return {k: v for k, v in _strings(value).items() if k not in _DROPPED_ANNOTATIONS}


def _strings(value: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}
