"""The wasm engine (``policy.engine: wasm``) behind a real kube-apiserver, read through kubectl.

The integration tier holds the wasm engine's decisions to OPA's and serves it over HTTPS;
this is the rest of the path a cluster takes: the API server's AdmissionReviews (its JSON,
its Content-Type, its timeouts), the controllers' own requests, and the answer as kubectl
prints it. deployguard is registered on a second server whose policies run as compiled
WebAssembly; the session's registration is put back afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import tool
from tests.controlplane import DeployguardServer, Kubectl, LocalControlPlane
from tests.e2e.denials import TAG_ONLY, assert_admitted_quietly, assert_digest_denial
from tests.e2e.test_kubectl_admission import records_for, wait_for_record
from tests.factories import PINNED, workload

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def on_wasm(control_plane: LocalControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeployguardServer]:
    """deployguard with policy.engine wasm (OPA compiles the shipped policies), registered."""
    work = tmp_path_factory.mktemp("wasm")
    extra: dict[str, Any] = {"policy": {"engine": "wasm", "opa_binary": str(tool("opa"))}}
    server = DeployguardServer(control_plane.tools.deployguard, work, work / "logs", name="deployguard-wasm",
                               extra_config=extra)  # fmt: skip
    try:
        with control_plane.serving(server, "deployguard on the wasm engine"):
            yield server
    finally:
        control_plane.restore_session_registration()


def test_a_tag_only_deployment_is_denied_with_the_actionable_reason(
    kubectl: Kubectl, on_wasm: DeployguardServer, namespace: str
) -> None:
    result = kubectl.apply(workload("Deployment", TAG_ONLY, namespace=namespace))

    assert result.returncode == 1, result
    assert_digest_denial(result.stderr, subject=f"Deployment {namespace}/web")
    assert not kubectl.exists("deployment", "web", namespace)
    [record] = records_for(on_wasm, namespace, "web")
    assert record["engine"] == "wasm" and record["allowed"] is False, record


def test_a_pinned_deployment_and_what_its_controllers_create_pass_on_wasm(
    kubectl: Kubectl, on_wasm: DeployguardServer, namespace: str
) -> None:
    result = kubectl.apply(workload("Deployment", PINNED, namespace=namespace))

    assert_admitted_quietly(result, "deployment.apps/web")
    replica_set = wait_for_record(on_wasm, lambda r: r["namespace"] == namespace and r["kind"] == "ReplicaSet")
    pod = wait_for_record(on_wasm, lambda r: r["namespace"] == namespace and r["kind"] == "Pod")
    for record in (replica_set, pod):
        assert record["engine"] == "wasm" and record["allowed"] is True, record
        assert record["user"] == "system:kube-controller-manager", record


def test_a_warn_mode_rule_reaches_kubectl_as_a_warning_on_wasm(
    kubectl: Kubectl, on_wasm: DeployguardServer, namespace: str
) -> None:
    result = kubectl.apply(workload("Deployment", PINNED, namespace=namespace, version_label=False))

    assert result.ok, result
    warnings = [line for line in result.stderr.splitlines() if line.startswith("Warning: ")]
    assert len(warnings) == 1, result
    assert warnings[0].startswith(f"Warning: [release_id] Deployment {namespace}/web has no release id"), result
    [record] = records_for(on_wasm, namespace, "web")
    assert record["engine"] == "wasm", record
