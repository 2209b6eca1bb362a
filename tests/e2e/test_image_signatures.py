"""Signatures through the real control plane: kubectl apply of an unsigned image is denied
with our message; a signed, pinned one is created.

A second deployguard with an ``images`` section (trusted cosign key, an image policy for
the test registry) is registered for these tests; ``restore_registration`` points the
API server back at the session's deployguard afterwards. The registry runs on loopback,
which its settings allow explicitly (private_registries / plain_http_registries).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import POLICIES
from tests.controlplane import DeployguardServer, Kubectl, LocalControlPlane
from tests.factories import workload
from tests.oci import KeyPair, LocalRegistry, push_image, push_signed_image, signed_images_config

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("restore_registration")]


def policies_allowing(registry_host: str, target: Path) -> Path:
    """The shipped policies, with the test registry added to allowed_registries."""
    shutil.copytree(POLICIES, target)
    data_file = target / "data.yaml"
    data: Any = yaml.safe_load(data_file.read_text())
    data["deployguard"]["config"]["allowed_registries"]["registries"].append(registry_host)
    data_file.write_text(yaml.safe_dump(data))
    return target


@pytest.fixture
def signing_deployguard(
    control_plane: LocalControlPlane, registry: LocalRegistry, release_key: KeyPair, tmp_path: Path
) -> Iterator[DeployguardServer]:
    images = signed_images_config(registry.host, release_key)
    policy = {"directory": str(policies_allowing(registry.host, tmp_path / "policies"))}
    server = DeployguardServer(
        control_plane.tools.deployguard, tmp_path, tmp_path / "logs", name="deployguard-images",
        extra_config={"images": images, "policy": policy},
    )  # fmt: skip
    with control_plane.serving(server, "images deployguard"):
        yield server


def test_unsigned_image_is_denied_and_signed_pinned_image_is_created(
    signing_deployguard: DeployguardServer,
    registry: LocalRegistry,
    release_key: KeyPair,
    kubectl: Kubectl,
    namespace: str,
    tmp_path: Path,
) -> None:
    unsigned = push_image(registry, "shop/unsigned", "1.0", tmp_path)
    signed = push_signed_image(registry, "shop/signed", "1.0", tmp_path, release_key)

    denied = kubectl.apply(workload("Deployment", f"{registry.host}/shop/unsigned@{unsigned}", name="unsigned",
                                    namespace=namespace))  # fmt: skip
    assert denied.denied_by_deployguard, denied
    assert "is not signed as image policy shop-images requires" in denied.stderr, denied
    assert "release-key: no cosign signature found" in denied.stderr, denied

    created = kubectl.apply(workload("Deployment", f"{registry.host}/shop/signed@{signed}", name="signed",
                                     namespace=namespace))  # fmt: skip
    assert created.ok, created
    assert kubectl("get", "deployment", "signed", "-n", namespace).ok
