"""The ``rollback`` fact: does a rollout bring back a recent revision's pod template?

Reads the workload's history through the Kubernetes API: a Deployment's ReplicaSets,
a StatefulSet's or DaemonSet's ControllerRevisions (owned by the workload's uid). An
UPDATE whose new template equals one of them (the controller's own
``pod-template-hash`` label aside) is a rollback: the reviewer then classifies the
change as ``rollback``, the emergency path that freezes and budgets leave open.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webhook.kube_api import KubeApi, namespaced_path
from webhook.policy_input import Subject
from webhook.workloads import ChangeType, PodTemplate, metadata

_HISTORY = {
    ("apps", "Deployment"): ("replicasets", "deployment.kubernetes.io/revision"),
    ("apps", "StatefulSet"): ("controllerrevisions", ""),
    ("apps", "DaemonSet"): ("controllerrevisions", ""),
}
_CONTROLLER_LABELS = ("pod-template-hash", "controller-revision-hash")


def _normal(template: Mapping[str, Any] | None) -> dict[str, Any]:
    """A template as comparable data: controller-added labels and patch markers dropped."""
    if not isinstance(template, Mapping):
        return {}
    meta = template.get("metadata") if isinstance(template.get("metadata"), Mapping) else {}
    assert isinstance(meta, Mapping)
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k not in _CONTROLLER_LABELS}
    return {"labels": labels, "annotations": dict(meta.get("annotations") or {}), "spec": template.get("spec") or {}}


def _template_doc(template: PodTemplate) -> dict[str, Any]:
    labels = {k: v for k, v in template.labels.items() if k not in _CONTROLLER_LABELS}
    return {"labels": labels, "annotations": dict(template.annotations), "spec": dict(template.spec)}


def matching_revision(new: PodTemplate, history: list[Mapping[str, Any]], kind: str) -> str | None:
    """The revision (number or name) of a history object whose template equals ``new``. Pure."""
    wanted = _template_doc(new)
    for item in history:
        if kind == "replicasets":
            template = (item.get("spec") or {}).get("template")
            revision = (metadata(item).get("annotations") or {}).get("deployment.kubernetes.io/revision")
        else:
            template = ((item.get("data") or {}).get("spec") or {}).get("template")
            revision = item.get("revision")
        if _normal(template) == wanted:
            return str(revision or metadata(item).get("name", "?"))
    return None


class RollbackGatherer:
    """``input.facts.rollback``: ``{"rollback": bool, "revision": ...}`` for rollouts of known kinds."""

    name = "rollback"

    def __init__(self, kube: KubeApi) -> None:
        self._kube = kube

    async def gather(self, subject: Subject) -> Any:
        req = subject.request
        history_kind = _HISTORY.get((req.group, req.kind))
        if subject.change is not ChangeType.ROLLOUT or history_kind is None or subject.template is None:
            return {"rollback": False}
        uid = metadata(req.old_obj).get("uid")
        selector = ((req.old_obj or {}).get("spec") or {}).get("selector") or {}
        labels = selector.get("matchLabels") or {}
        params = {"labelSelector": ",".join(f"{k}={v}" for k, v in sorted(labels.items()))} if labels else {}
        listing = await self._kube.get(namespaced_path("/apis/apps/v1", req.namespace, history_kind[0]), params)
        owned = [
            item
            for item in listing.get("items") or []
            if any(ref.get("uid") == uid for ref in metadata(item).get("ownerReferences") or [])
        ]
        revision = matching_revision(subject.template, owned, history_kind[0])
        if revision is None:
            return {"rollback": False}
        return {"rollback": True, "revision": revision}
