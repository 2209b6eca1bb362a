"""What a developer sees from kubectl when a real kube-apiserver asks deployguard.

Every test reads kubectl's own output (exit code, stdout, stderr), as a person would,
and checks the cluster's state afterwards with kubectl too.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from tests.controlplane import WEBHOOK_NAMESPACE, DeployguardServer, Kubectl
from tests.e2e.denials import TAG_ONLY, assert_admitted_quietly, assert_digest_denial, reason
from tests.factories import PINNED, workload

pytestmark = pytest.mark.e2e


def records_for(deployguard: DeployguardServer, namespace: str, name: str) -> list[dict[str, Any]]:
    return [r for r in deployguard.decisions() if r["namespace"] == namespace and r["name"] == name]


def wait_for_record(
    deployguard: DeployguardServer, match: Callable[[dict[str, Any]], bool], timeout: float = 60
) -> dict[str, Any]:
    """The first decision record matching; for requests the controllers make on their own schedule."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [r for r in deployguard.decisions() if match(r)]
        if found:
            return found[0]
        time.sleep(0.2)
    pytest.fail(f"no matching decision within {timeout:.0f} s (is kube-controller-manager running?)")


def test_tag_only_image_is_denied_with_an_actionable_reason(kubectl: Kubectl, namespace: str) -> None:
    result = kubectl.apply(workload("Deployment", TAG_ONLY, namespace=namespace))

    assert result.returncode == 1, result
    assert result.stderr.startswith('Error from server (Forbidden): error when creating "STDIN"'), result
    assert_digest_denial(result.stderr, subject=f"Deployment {namespace}/web")
    assert not kubectl.exists("deployment", "web", namespace)


def test_a_deployment_with_too_many_annotations_is_denied_naming_the_limit(kubectl: Kubectl, namespace: str) -> None:
    """admission.max_map_entries (512), checked before anything else: the API server lets
    thousands of small annotations through (256 KiB in all)."""
    manifest = workload("Deployment", PINNED, namespace=namespace)
    manifest["metadata"]["annotations"] = {f"note-{i}.example.com/x": "seen" for i in range(600)}
    result = kubectl("create", "-f", "-", stdin=yaml.safe_dump(manifest))  # apply would add one more

    assert result.returncode == 1, result
    assert "[input_limits] the Deployment's annotations hold 600 entries; deployguard evaluates at most 512 " in (
        result.stderr
    ), result
    assert "Fix: remove entries nothing reads, or raise admission.max_map_entries" in result.stderr, result
    assert not kubectl.exists("deployment", "web", namespace)


def test_the_same_deployment_pinned_by_digest_is_created(
    kubectl: Kubectl, deployguard: DeployguardServer, namespace: str
) -> None:
    result = kubectl.apply(workload("Deployment", PINNED, namespace=namespace))

    assert_admitted_quietly(result, "deployment.apps/web")
    assert kubectl.exists("deployment", "web", namespace)
    [record] = [r for r in records_for(deployguard, namespace, "web") if r["operation"] == "CREATE"]
    assert record["allowed"] is True and record["kind"] == "Deployment" and record["user"] == "admin"


def test_the_controller_made_replicaset_is_checked_too(
    kubectl: Kubectl, deployguard: DeployguardServer, namespace: str
) -> None:
    """kube-controller-manager creates the ReplicaSet; that request reaches deployguard as well."""
    assert kubectl.apply(workload("Deployment", PINNED, namespace=namespace)).ok

    replica_set = wait_for_record(deployguard, lambda r: r["namespace"] == namespace and r["kind"] == "ReplicaSet")

    assert replica_set["allowed"] is True and replica_set["operation"] == "CREATE"
    assert replica_set["user"] == "system:kube-controller-manager", replica_set


def test_warn_mode_rule_admits_and_kubectl_prints_our_warning(kubectl: Kubectl, namespace: str) -> None:
    """release_id is a warn-mode rule: a pinned Deployment without a version label gets a Warning."""
    result = kubectl.apply(workload("Deployment", PINNED, namespace=namespace, version_label=False))

    assert result.ok, result
    assert result.stdout.strip() == "deployment.apps/web created"
    warnings = [line for line in result.stderr.splitlines() if line.startswith("Warning: ")]
    assert len(warnings) == 1, result
    assert warnings[0].startswith(f"Warning: [release_id] Deployment {namespace}/web has no release id"), result
    assert "Fix: label the pod template" in warnings[0]
    assert kubectl.exists("deployment", "web", namespace)


def test_server_dry_run_gets_the_same_decision_and_leaves_no_trace(
    kubectl: Kubectl, deployguard: DeployguardServer, namespace: str
) -> None:
    bad = workload("Deployment", TAG_ONLY, name="bad", namespace=namespace)
    good = workload("Deployment", PINNED, name="good", namespace=namespace)

    dry_bad = kubectl.apply(bad, "--dry-run=server")
    dry_good = kubectl.apply(good, "--dry-run=server")

    assert dry_bad.denied_by_deployguard, dry_bad
    assert_digest_denial(dry_bad.stderr, subject=f"Deployment {namespace}/bad")
    assert dry_good.ok, dry_good
    assert dry_good.stdout.strip() == "deployment.apps/good created (server dry run)"
    assert not kubectl.exists("deployment", "bad", namespace)
    assert not kubectl.exists("deployment", "good", namespace)

    real_bad = kubectl.apply(bad)
    assert real_bad.denied_by_deployguard, real_bad
    assert reason(real_bad.stderr) == reason(dry_bad.stderr)

    bad_records = records_for(deployguard, namespace, "bad")
    assert [(r["dry_run"], r["allowed"]) for r in bad_records] == [(True, False), (False, False)]
    assert [(r["dry_run"], r["allowed"]) for r in records_for(deployguard, namespace, "good")] == [(True, True)]


def test_set_image_to_a_tag_is_denied_and_scale_is_allowed(
    kubectl: Kubectl, deployguard: DeployguardServer, namespace: str
) -> None:
    assert kubectl.apply(workload("Deployment", PINNED, namespace=namespace)).ok
    image_path = "jsonpath={.spec.template.spec.containers[0].image}"

    set_image = kubectl("set", "image", "deployment/web", f"web={TAG_ONLY}", "-n", namespace)
    assert set_image.denied_by_deployguard, set_image
    assert_digest_denial(set_image.stderr, subject=f"Deployment {namespace}/web")
    assert kubectl("get", "deployment", "web", "-n", namespace, "-o", image_path).stdout == PINNED

    scale = kubectl("scale", "deployment/web", "--replicas=3", "-n", namespace)
    assert scale.ok, scale
    assert scale.stdout.strip() == "deployment.apps/web scaled"
    replicas = kubectl("get", "deployment", "web", "-n", namespace, "-o", "jsonpath={.spec.replicas}")
    assert replicas.stdout == "3"
    # `kubectl scale` goes to the scale subresource, which is not registered; the
    # controller's resulting ReplicaSet update is, and deployguard sees it as a scale.
    scaled = wait_for_record(
        deployguard, lambda r: r["namespace"] == namespace and r["kind"] == "ReplicaSet" and r["operation"] == "UPDATE"
    )
    assert scaled["change_type"] == "scale" and scaled["allowed"] is True, scaled


@pytest.mark.parametrize("kind", ["StatefulSet", "DaemonSet", "CronJob", "Pod"])
def test_every_workload_kind_is_checked(kubectl: Kubectl, namespace: str, kind: str) -> None:
    result = kubectl.apply(workload(kind, TAG_ONLY, namespace=namespace))

    assert result.denied_by_deployguard, result
    assert_digest_denial(result.stderr, subject=f"{kind} {namespace}/web")
    assert result.stderr.count("[digest_pinning]") == 1, result
    assert not kubectl.exists(kind.lower(), "web", namespace)


@pytest.mark.parametrize("exempt", [WEBHOOK_NAMESPACE, "kube-system"])
def test_exempt_namespaces_are_not_sent_to_deployguard(
    kubectl: Kubectl, deployguard: DeployguardServer, exempt: str
) -> None:
    """The namespaceSelector exempts the webhook's own namespace and kube-system at the API server."""
    name = f"web-{uuid.uuid4().hex[:8]}"
    result = kubectl.apply(workload("Deployment", TAG_ONLY, name=name, namespace=exempt))
    try:
        assert result.ok, result
        assert result.stdout.strip() == f"deployment.apps/{name} created"
        assert kubectl.exists("deployment", name, exempt)
        assert records_for(deployguard, exempt, name) == []
    finally:
        kubectl("delete", "deployment", name, "-n", exempt, "--wait=false")
