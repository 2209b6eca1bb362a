from __future__ import annotations

import copy
from typing import Any

import pytest

from webhook.config import CustomKind
from webhook.workloads import ChangeType, WorkloadKinds, classify_change, unsupported_features

KINDS = WorkloadKinds.with_custom([CustomKind(group="example.com", kind="App", template_path="spec.pod")])
POD_SPEC = {
    "initContainers": [{"name": "init", "image": "busybox:1"}],
    "containers": [{"name": "web", "image": "nginx:1"}, {"name": "side", "image": "envoy:1"}],
    "ephemeralContainers": [{"name": "debug", "image": "debug:1"}],
}
TEMPLATE = {"metadata": {"labels": {"app": "web"}}, "spec": POD_SPEC}


def workload(kind: str) -> tuple[str, dict[str, Any]]:
    shapes: dict[str, tuple[str, dict[str, Any]]] = {
        "Pod": ("", {"metadata": {"labels": {"app": "web"}}, "spec": POD_SPEC}),
        "Deployment": ("apps", {"spec": {"replicas": 2, "template": TEMPLATE}}),
        "StatefulSet": ("apps", {"spec": {"template": TEMPLATE}}),
        "DaemonSet": ("apps", {"spec": {"template": TEMPLATE}}),
        "ReplicaSet": ("apps", {"spec": {"template": TEMPLATE}}),
        "ReplicationController": ("", {"spec": {"template": TEMPLATE}}),
        "Job": ("batch", {"spec": {"template": TEMPLATE}}),
        "CronJob": ("batch", {"spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": TEMPLATE}}}}),
        "Rollout": ("argoproj.io", {"spec": {"template": TEMPLATE}}),
        "App": ("example.com", {"spec": {"pod": TEMPLATE}}),
    }
    return shapes[kind]


@pytest.mark.parametrize(
    "kind",
    ["Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController", "Job", "CronJob",
     "Rollout", "App"],
)
def test_every_kind_yields_all_container_lists(kind: str) -> None:
    group, obj = workload(kind)
    template = KINDS.pod_template(group, kind, obj)
    assert template is not None
    assert template.labels == {"app": "web"}
    assert [(c.name, c.container_type, c.image) for c in template.containers] == [
        ("init", "initContainer", "busybox:1"),
        ("web", "container", "nginx:1"),
        ("side", "container", "envoy:1"),
        ("debug", "ephemeralContainer", "debug:1"),
    ]


def test_unknown_kind_and_missing_template() -> None:
    assert not KINDS.knows("example.com", "Other")
    assert KINDS.pod_template("example.com", "Other", {"spec": {}}) is None
    assert KINDS.pod_template("apps", "Deployment", {"spec": {}}) is None
    template = KINDS.pod_template("apps", "Deployment", {"spec": {"template": {"spec": {"containers": "oops"}}}})
    assert template is not None and template.containers == ()


def test_argo_workload_ref_is_reported() -> None:
    notes = unsupported_features("argoproj.io", "Rollout", {"spec": {"workloadRef": {"name": "web"}}})
    assert notes and "workloadRef" in notes[0]
    assert unsupported_features("apps", "Deployment", {"spec": {"workloadRef": {}}}) == []


def _deployment() -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "labels": {"a": "1"}, "resourceVersion": "1", "generation": 1},
        "spec": {"replicas": 2, "strategy": {"type": "RollingUpdate"}, "template": copy.deepcopy(TEMPLATE)},
    }


def classify(new: dict[str, Any] | None, old: dict[str, Any] | None, operation: str = "UPDATE") -> ChangeType:
    return classify_change(operation, KINDS, "apps", "Deployment", new, old)


def test_change_classification() -> None:
    old = _deployment()
    assert classify(old, None, "CREATE") is ChangeType.CREATE
    assert classify(None, old, "DELETE") is ChangeType.DELETE

    image = _deployment()
    image["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:2"
    assert classify(image, old) is ChangeType.ROLLOUT

    template_label = _deployment()
    template_label["spec"]["template"]["metadata"]["labels"]["rev"] = "2"
    assert classify(template_label, old) is ChangeType.ROLLOUT

    scaled = _deployment()
    scaled["spec"]["replicas"] = 5
    assert classify(scaled, old) is ChangeType.SCALE

    strategy = _deployment()
    strategy["spec"]["strategy"] = {"type": "Recreate"}
    assert classify(strategy, old) is ChangeType.UPDATE

    labelled = _deployment()
    labelled["metadata"]["labels"]["team"] = "x"
    assert classify(labelled, old) is ChangeType.METADATA_ONLY

    bumped = _deployment()
    bumped["metadata"]["resourceVersion"] = "2"
    bumped["metadata"]["generation"] = 2
    assert classify(bumped, old) is ChangeType.NO_OP


def test_scale_plus_image_is_a_rollout() -> None:
    old = _deployment()
    both = _deployment()
    both["spec"]["replicas"] = 9
    both["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:2"
    assert classify(both, old) is ChangeType.ROLLOUT


def test_created_by_controller_needs_identity_and_controller_reference() -> None:
    from webhook.workloads import created_by_controller

    owned = {"metadata": {"ownerReferences": [{"kind": "ReplicaSet", "controller": True}]}}
    users = ("system:kube-controller-manager",)
    assert created_by_controller("CREATE", "system:kube-controller-manager", owned, users)
    assert not created_by_controller("CREATE", "alice", owned, users)
    assert not created_by_controller("UPDATE", "system:kube-controller-manager", owned, users)
    not_controller = {"metadata": {"ownerReferences": [{"kind": "ReplicaSet"}]}}
    assert not created_by_controller("CREATE", "system:kube-controller-manager", not_controller, users)
