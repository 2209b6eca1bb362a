"""Builders for AdmissionReviews and workloads used across the tiers."""

from __future__ import annotations

import copy
import uuid
from typing import Any

DIGEST = "sha256:" + "2c1e9d4b0b1e5c3e2f0a8d6c4b2a09e7f5d3c1b9a7e5c3a1f9e7d5c3b1a9f7e5"[:64]
PINNED = f"nginx@{DIGEST}"

GROUPS = {
    "Pod": ("", "v1"), "Deployment": ("apps", "v1"), "StatefulSet": ("apps", "v1"), "DaemonSet": ("apps", "v1"),
    "ReplicaSet": ("apps", "v1"), "Job": ("batch", "v1"), "CronJob": ("batch", "v1"),
    "ReplicationController": ("", "v1"), "Rollout": ("argoproj.io", "v1alpha1"),
}


def pod_spec(*images: str) -> dict[str, Any]:
    return {"containers": [{"name": f"c{i}" if i else "web", "image": image} for i, image in enumerate(images)]}


def workload(kind: str = "Deployment", *images: str, name: str = "web", namespace: str = "shop",
             version_label: bool = True) -> dict[str, Any]:
    images = images or (PINNED,)
    labels = {"app": name}
    if version_label:
        labels["app.kubernetes.io/version"] = "1.0.0"
    template = {"metadata": {"labels": labels}, "spec": pod_spec(*images)}
    group, version = GROUPS[kind]
    obj: dict[str, Any] = {
        "apiVersion": f"{group}/{version}" if group else version,
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
    }
    # Shapes a real kube-apiserver accepts too (the e2e tier sends them through kubectl).
    if kind == "Pod":
        obj["spec"] = template["spec"]
    elif kind in ("Job", "CronJob"):
        template["spec"]["restartPolicy"] = "Never"
        job_spec = {"template": template}
        obj["spec"] = job_spec if kind == "Job" else {"schedule": "0 * * * *", "jobTemplate": {"spec": job_spec}}
    elif kind == "DaemonSet":
        obj["spec"] = {"selector": {"matchLabels": {"app": name}}, "template": template}
    else:
        obj["spec"] = {"replicas": 2, "selector": {"matchLabels": {"app": name}}, "template": template}
    return obj


def admission_review(obj: dict[str, Any] | None, *, operation: str = "CREATE", old: dict[str, Any] | None = None,
                     dry_run: bool = False, kind: str | None = None, uid: str | None = None) -> dict[str, Any]:
    subject = obj if obj is not None else old
    assert subject is not None
    kind = kind or subject["kind"]
    group, version = GROUPS.get(kind, ("example.com", "v1"))
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid or str(uuid.uuid4()),
            "kind": {"group": group, "version": version, "kind": kind},
            "namespace": subject["metadata"].get("namespace", ""),
            "name": subject["metadata"]["name"],
            "operation": operation,
            "userInfo": {"username": "alice", "groups": ["devs"]},
            "dryRun": dry_run,
            "object": copy.deepcopy(obj),
            "oldObject": copy.deepcopy(old),
        },
    }
