"""The audit trail and Kubernetes Events through a real kube-apiserver and kubectl."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.controlplane import DeployguardServer, Kubectl, LocalControlPlane
from tests.e2e.denials import TAG_ONLY
from tests.factories import workload

pytestmark = pytest.mark.e2e

DECISION_ID = re.compile(r"\(decision ([0-9a-f]+)")


def denied_decision_id(kubectl: Kubectl, namespace: str) -> str:
    """Apply a tag-only Deployment ``web``: deployguard denies it; the decision id its message shows."""
    result = kubectl.apply(workload("Deployment", TAG_ONLY, namespace=namespace))
    assert result.denied_by_deployguard, result
    match = DECISION_ID.search(result.stderr)
    assert match, f"no decision id in kubectl's stderr:\n{result.stderr}"
    return match.group(1)


def test_the_decision_id_in_kubectls_deny_message_is_in_the_decision_log(
    kubectl: Kubectl, deployguard: DeployguardServer, namespace: str
) -> None:
    decision_id = denied_decision_id(kubectl, namespace)

    [record] = [r for r in deployguard.decisions() if r["decision_id"] == decision_id]

    assert record["allowed"] is False and record["namespace"] == namespace and record["name"] == "web"
    assert record["user"] == "admin" and record["operation"] == "CREATE" and not record["dry_run"]
    assert any(f["rule"] == "digest_pinning" and f["mode"] == "deny" for f in record["findings"]), record


@pytest.fixture
def deployguard_with_events(
    control_plane: LocalControlPlane, tmp_path: Path, restore_registration: None
) -> Iterator[DeployguardServer]:
    """A second deployguard that may talk to the API server (kube_api.kubeconfig), registered instead."""
    server = DeployguardServer(control_plane.tools.deployguard, tmp_path, tmp_path / "logs",
                               name="deployguard-events", kubeconfig=control_plane.kubeconfig)  # fmt: skip
    with control_plane.serving(server, "Events-enabled deployguard"):
        yield server


def test_a_denial_leaves_a_kubernetes_event_on_the_workload(
    kubectl: Kubectl, deployguard_with_events: DeployguardServer, namespace: str
) -> None:
    decision_id = denied_decision_id(kubectl, namespace)

    deadline = time.monotonic() + 30
    events: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        listed = kubectl("get", "events", "-n", namespace, "-o", "json")
        assert listed.ok, listed
        events = [e for e in json.loads(listed.stdout)["items"] if e.get("reason") == "DeployDenied"]
        if events:
            break
        time.sleep(0.3)

    assert len(events) == 1, f"expected one DeployDenied Event in {namespace}; got {events}"
    [event] = events
    assert event["involvedObject"] == {"apiVersion": "apps/v1", "kind": "Deployment", "namespace": namespace,
                                       "name": "web"}  # fmt: skip
    assert event["type"] == "Warning"
    assert f"(decision {decision_id})" in str(event["message"]) and "[digest_pinning]" in str(event["message"])
