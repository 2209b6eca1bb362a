"""Where pod templates live in each workload kind, and what kind of change an update is.

Pure: takes decoded Kubernetes objects (dicts), returns values. This is the one place
that knows the shapes of Pods, Deployments, StatefulSets, DaemonSets, ReplicaSets,
ReplicationControllers, Jobs, CronJobs, Argo Rollouts and configured CRDs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from typing import Any

from webhook.config import CustomKind

# (API group, kind) -> path of the pod template inside the object. () means the
# object is itself a pod.
BUILTIN_TEMPLATE_PATHS: dict[tuple[str, str], tuple[str, ...]] = {
    ("", "Pod"): (),
    ("apps", "Deployment"): ("spec", "template"),
    ("apps", "StatefulSet"): ("spec", "template"),
    ("apps", "DaemonSet"): ("spec", "template"),
    ("apps", "ReplicaSet"): ("spec", "template"),
    ("", "ReplicationController"): ("spec", "template"),
    ("batch", "Job"): ("spec", "template"),
    ("batch", "CronJob"): ("spec", "jobTemplate", "spec", "template"),
    ("argoproj.io", "Rollout"): ("spec", "template"),
}
CONTAINER_FIELDS = (
    ("initContainers", "initContainer"),
    ("containers", "container"),
    ("ephemeralContainers", "ephemeralContainer"),
)
# Fields that only scale a workload; changing nothing else makes the change a "scale".
SCALE_FIELDS = ("replicas",)


class ChangeType(StrEnum):
    """What an admission request does to the workload's running pods."""

    CREATE = "create"
    ROLLOUT = "rollout"  # the pod template changed: new pods will roll out
    REPLICA = "replica"  # a controller creates an owned object from a template admitted at its owner
    SCALE = "scale"  # only the replica count changed
    UPDATE = "update"  # other spec fields changed (strategy, schedule, ...), template unchanged
    METADATA_ONLY = "metadata-only"
    NO_OP = "no-op"
    ROLLBACK = "rollback"  # a rollout back to a recent revision's template (set from the rollback fact)
    DELETE = "delete"


@dataclass(frozen=True)
class Container:
    """One container of a pod template, with the list it came from."""

    name: str
    container_type: str
    image: str


@dataclass(frozen=True)
class PodTemplate:
    """The pod a workload will run: its labels, annotations and spec."""

    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    spec: Mapping[str, Any]

    @cached_property
    def containers(self) -> tuple[Container, ...]:
        """Init, regular and ephemeral containers; computed once (policy input, limits, facts all ask)."""
        found = []
        for key, container_type in CONTAINER_FIELDS:
            for item in _as_list(self.spec.get(key)):
                if isinstance(item, Mapping):
                    found.append(
                        Container(
                            name=str(item.get("name", "")),
                            container_type=container_type,
                            image=str(item.get("image", "")),
                        )
                    )
        return tuple(found)


@dataclass(frozen=True)
class WorkloadKinds:
    """The kinds deployguard can inspect: the built-ins plus configured CRDs."""

    template_paths: Mapping[tuple[str, str], tuple[str, ...]]

    @classmethod
    def with_custom(cls, custom: Iterable[CustomKind] = ()) -> WorkloadKinds:
        paths = dict(BUILTIN_TEMPLATE_PATHS)
        for kind in custom:
            paths[(kind.group, kind.kind)] = tuple(p for p in kind.template_path.split(".") if p)
        return cls(paths)

    def knows(self, group: str, kind: str) -> bool:
        return (group, kind) in self.template_paths

    def pod_template(self, group: str, kind: str, obj: Mapping[str, Any] | None) -> PodTemplate | None:
        """The pod template of ``obj``, or None when the kind is unknown or it has none."""
        if obj is None or (group, kind) not in self.template_paths:
            return None
        path = self.template_paths[(group, kind)]
        node: Any = obj
        for key in path:
            node = node.get(key) if isinstance(node, Mapping) else None
        if not isinstance(node, Mapping):
            return None
        meta = _mapping(node.get("metadata"))
        return PodTemplate(
            labels=_str_map(meta.get("labels")),
            annotations=_str_map(meta.get("annotations")),
            spec=_mapping(node.get("spec")),
        )


def unsupported_features(group: str, kind: str, obj: Mapping[str, Any] | None) -> list[str]:
    """Parts of an object deployguard cannot inspect, to be reported as warnings."""
    notes = []
    spec = obj.get("spec") if isinstance(obj, Mapping) else None
    if (group, kind) == ("argoproj.io", "Rollout") and isinstance(spec, Mapping) and spec.get("workloadRef"):
        notes.append(
            "deployguard: this Rollout uses spec.workloadRef, which deployguard does not follow yet; "
            "the referenced workload's pod template is checked when that workload is admitted, "
            "so use spec.template to have this Rollout checked directly"
        )
    return notes


def classify_change(
    operation: str,
    kinds: WorkloadKinds,
    group: str,
    kind: str,
    obj: Mapping[str, Any] | None,
    old: Mapping[str, Any] | None,
) -> ChangeType:
    """Tell a rollout from a scale, a metadata edit or a no-op by comparing old and new."""
    if operation == "DELETE":
        return ChangeType.DELETE
    if operation != "UPDATE" or old is None or obj is None:
        return ChangeType.CREATE
    new_template = kinds.pod_template(group, kind, obj)
    old_template = kinds.pod_template(group, kind, old)
    if new_template != old_template:
        return ChangeType.ROLLOUT
    new_spec, old_spec = _spec_without(obj, SCALE_FIELDS), _spec_without(old, SCALE_FIELDS)
    if new_spec != old_spec:
        return ChangeType.UPDATE
    if _field(obj, "spec", "replicas") != _field(old, "spec", "replicas"):
        return ChangeType.SCALE
    if _comparable_metadata(obj) != _comparable_metadata(old):
        return ChangeType.METADATA_ONLY
    return ChangeType.NO_OP


def created_by_controller(
    operation: str, username: str, obj: Mapping[str, Any] | None, controller_users: Iterable[str]
) -> bool:
    """A controller (by API-server identity) creating an object it owns.

    The ownerReference alone proves nothing (anyone can write one); the requesting
    identity comes from the API server's authentication, so a workload cannot claim it.
    """
    if operation != "CREATE" or username not in controller_users:
        return False
    refs = metadata(obj).get("ownerReferences")
    return any(isinstance(ref, Mapping) and ref.get("controller") is True for ref in _as_list(refs))


def replicas(obj: Mapping[str, Any] | None) -> int | None:
    value = _field(obj, "spec", "replicas")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def metadata(obj: Mapping[str, Any] | None) -> Mapping[str, Any]:
    meta = obj.get("metadata") if isinstance(obj, Mapping) else None
    return meta if isinstance(meta, Mapping) else {}


def _field(obj: Mapping[str, Any] | None, *path: str) -> Any:
    node: Any = obj
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
    return node


def _spec_without(obj: Mapping[str, Any], drop: tuple[str, ...]) -> dict[str, Any]:
    spec = obj.get("spec")
    if not isinstance(spec, Mapping):
        return {}
    return {k: v for k, v in spec.items() if k not in drop}


# Server-managed metadata changes on every write and says nothing about intent.
_VOLATILE_METADATA = ("resourceVersion", "generation", "managedFields", "creationTimestamp", "uid")


def _comparable_metadata(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metadata(obj).items() if k not in _VOLATILE_METADATA}


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str_map(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): str(v) for k, v in value.items()}
