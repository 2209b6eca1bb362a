"""The failurePolicy trade-off, observed: with deployguard down, Fail rejects everything, Ignore admits everything.

A second deployguard is registered, proven to answer, then stopped, so the API server
really calls a webhook that has gone away. ``restore_registration`` points the API
server back at the session's deployguard afterwards, whatever happened.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.controlplane import CALL_FAILED_MARK, DeployguardServer, Kubectl, KubectlResult, LocalControlPlane
from tests.factories import PINNED, workload

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("restore_registration")]


def take_webhook_down(control_plane: LocalControlPlane, tmp_path: Path, failure_policy: str) -> None:
    spare = DeployguardServer(control_plane.tools.deployguard, tmp_path, tmp_path / "logs", name="deployguard-spare")
    spare.start()
    try:
        control_plane.switch_to(spare, "spare deployguard", failure_policy=failure_policy)
    finally:
        spare.stop()


def test_fail_closed_rejects_even_a_compliant_deployment(
    control_plane: LocalControlPlane, kubectl: Kubectl, namespace: str, tmp_path: Path
) -> None:
    take_webhook_down(control_plane, tmp_path, "Fail")
    control_plane.wait_for_probe(lambda r: CALL_FAILED_MARK in r.stderr, "the API server failing the call")

    result = kubectl.apply(workload("Deployment", PINNED, namespace=namespace))

    assert result.returncode == 1, result
    assert result.stderr.startswith('Error from server (InternalError): error when creating "STDIN"'), result
    assert CALL_FAILED_MARK in result.stderr
    assert "connection refused" in result.stderr
    assert not kubectl.exists("deployment", "web", namespace)


def test_fail_open_admits_even_a_tag_only_image(
    control_plane: LocalControlPlane, kubectl: Kubectl, namespace: str, tmp_path: Path
) -> None:
    take_webhook_down(control_plane, tmp_path, "Ignore")

    def admitted(result: KubectlResult) -> bool:
        return result.ok

    control_plane.wait_for_probe(admitted, "the API server ignoring the failed call")

    result = kubectl.apply(workload("Deployment", "nginx:1.27", namespace=namespace))

    assert result.ok, result
    assert result.stdout.strip() == "deployment.apps/web created"
    assert result.stderr == "", "kubectl shows no sign that nothing checked the change"
    assert kubectl.exists("deployment", "web", namespace)
    assert control_plane.apiserver.process is not None
    apiserver_log = control_plane.apiserver.process.log_path.read_text()
    assert "Failed calling webhook, failing open validate.deployguard.io: failed calling webhook" in apiserver_log
