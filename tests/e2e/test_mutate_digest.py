"""The optional mutating webhook through the real control plane: with deployguard's
MutatingWebhookConfiguration registered (``deployguard render webhook-config --mutating``),
a tag-only, signed image is admitted and stored as ``tag@digest``; an unsigned tag-only
image is left alone and the validating webhook denies it.

Isolated: its own deployguard (images + ``mutate_enabled``), its own registrations; the
MutatingWebhookConfiguration is deleted and the session's validating registration
restored afterwards (``restore_registration``). The registry runs on loopback, which the
settings allow explicitly.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.controlplane import DeployguardServer, Kubectl, LocalControlPlane
from tests.e2e.test_image_signatures import policies_allowing
from tests.factories import workload
from tests.oci import KeyPair, LocalRegistry, push_image, push_signed_image, signed_images_config

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("restore_registration")]

MUTATING_NAME = "deployguard-mutate-e2e"
IMAGE_PATH = "{.spec.template.spec.containers[0].image}"


@pytest.fixture
def mutating_deployguard(
    control_plane: LocalControlPlane, registry: LocalRegistry, release_key: KeyPair, tmp_path: Path
) -> Iterator[DeployguardServer]:
    images = signed_images_config(registry.host, release_key, mutate_enabled=True)
    server = DeployguardServer(
        control_plane.tools.deployguard, tmp_path, tmp_path / "logs", name="deployguard-mutate",
        extra_config={"images": images, "policy": {"directory": str(policies_allowing(registry.host, tmp_path / "p"))}},
    )  # fmt: skip
    server.start()
    kubectl = control_plane.kubectl
    try:
        control_plane.switch_to(server, "mutating deployguard's validating webhook")
        argv = [
            *control_plane.tools.deployguard, "render", "webhook-config", "--mutating",
            "--url", server.url.replace("/validate", "/mutate"), "--ca-file", str(server.ca_file),
            "--namespace", "deployguard-system", "--failure-policy", "Ignore", "--name", MUTATING_NAME,
        ]  # fmt: skip
        manifest = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True).stdout
        assert "kind: MutatingWebhookConfiguration" in manifest and "/mutate" in manifest
        registered = kubectl.apply(manifest)
        assert registered.ok, registered
        yield server
    finally:
        kubectl("delete", "mutatingwebhookconfiguration", MUTATING_NAME, "--ignore-not-found")
        server.stop()


def image_after_dry_run(kubectl: Kubectl, obj: dict[str, object]) -> str:
    result = kubectl.apply(obj, "--dry-run=server", "-o", f"jsonpath={IMAGE_PATH}")
    return result.stdout if result.ok else ""


def test_signed_tag_only_image_is_stored_as_tag_at_digest(
    mutating_deployguard: DeployguardServer,
    registry: LocalRegistry,
    release_key: KeyPair,
    kubectl: Kubectl,
    namespace: str,
    tmp_path: Path,
) -> None:
    digest = push_signed_image(registry, "shop/mutate", "1.0", tmp_path, release_key)
    tagged = f"{registry.host}/shop/mutate:1.0"
    obj = workload("Deployment", tagged, name="mutated", namespace=namespace)

    # The API server picks the new MutatingWebhookConfiguration up asynchronously: wait
    # until a server-side dry-run comes back pinned.
    deadline = time.monotonic() + 60
    while image_after_dry_run(kubectl, obj) != f"{tagged}@{digest}":
        assert time.monotonic() < deadline, f"never mutated; last: {kubectl.apply(obj, '--dry-run=server')}"
        time.sleep(0.25)

    created = kubectl.apply(obj)
    assert created.ok, created
    stored = kubectl("get", "deployment", "mutated", "-n", namespace, "-o", f"jsonpath={IMAGE_PATH}")
    assert stored.stdout == f"{tagged}@{digest}", stored
    # The rewrite is in deployguard's decision log, beside the validating webhook's records.
    records = [json.loads(line) for line in mutating_deployguard.decision_log.read_text().splitlines()]
    mutated = [r for r in records if r.get("webhook") == "mutate" and r["name"] == "mutated" and not r["dry_run"]]
    assert mutated and mutated[-1]["outcome"] == "mutated", mutated
    assert mutated[-1]["patched"] == [
        {"path": "/spec/template/spec/containers/0/image", "from": tagged, "to": f"{tagged}@{digest}"}
    ]

    # Unsigned and tag-only: not pinned by the mutating webhook, denied by the validating one.
    unsigned = f"{registry.host}/shop/unsigned-mutate:1.0"
    push_image(registry, "shop/unsigned-mutate", "1.0", tmp_path)
    denied = kubectl.apply(workload("Deployment", unsigned, name="unsigned", namespace=namespace))
    assert denied.denied_by_deployguard, denied
    assert f'image "{unsigned}" is not pinned by digest' in denied.stderr, denied
