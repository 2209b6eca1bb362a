"""Rotating the webhook's certificate (with a new CA) under a running control plane, without a restart.

deployguard reloads tls.crt/tls.key when they change on disk; the operator then updates
the caBundle. With a new CA the old caBundle cannot verify the new certificate, so
this also proves the API server really uses the caBundle we give it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.controlplane import CALL_FAILED_MARK, DeployguardServer, Kubectl, LocalControlPlane
from tests.e2e.denials import TAG_ONLY, assert_digest_denial
from tests.factories import workload
from tests.processes import http_ok

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("restore_registration")]


def test_rotated_certificate_and_new_ca_bundle_keep_answers_coming(
    control_plane: LocalControlPlane, deployguard: DeployguardServer, kubectl: Kubectl, namespace: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    assert deployguard.process is not None
    pid = deployguard.process.pid
    old_ca = shutil.copy(deployguard.ca_file, tmp_path / "old-ca.crt")
    readyz = f"https://127.0.0.1:{deployguard.port}/readyz"
    control_plane.wait_until_enforced()

    deployguard.generate_certificates(new_ca=True)

    # deployguard picks the new pair up from disk (polling every 0.5 s here) ...
    deployguard.process.wait_until(lambda: http_ok(readyz, cafile=deployguard.ca_file), 30, "serving the new cert")
    assert not http_ok(readyz, cafile=Path(old_ca)), "the old CA still verifies the served certificate"
    # ... so the API server, still holding the old caBundle, can no longer verify it once
    # it opens a new connection (an idle keep-alive connection closes after 5 s).
    control_plane.wait_for_probe(
        lambda r: CALL_FAILED_MARK in r.stderr and "x509: certificate signed by unknown authority" in r.stderr,
        "the API server (old caBundle) rejecting the new certificate",
        interval=6,
    )

    control_plane.register(deployguard)  # the new caBundle
    control_plane.wait_until_enforced()
    result = kubectl.apply(workload("Deployment", TAG_ONLY, namespace=namespace))

    assert result.denied_by_deployguard, result
    assert_digest_denial(result.stderr, subject=f"Deployment {namespace}/web")
    assert deployguard.process.pid == pid and deployguard.process.alive(), "deployguard was restarted"
    assert "serving certificate reloaded" in deployguard.process.log_path.read_text()
