"""Private images through the real control plane: deployguard reads the workload's
``imagePullSecrets`` (and its service account's) through the Kubernetes API and uses them
against a real registry that requires credentials (Debian's docker-registry, htpasswd).

A deployguard with an ``images`` section and a kubeconfig (so it can read Secrets) is
registered for these tests; ``restore_registration`` puts the session's one back. The
registry runs on loopback, which its settings allow explicitly.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.controlplane import DeployguardServer, Kubectl, LocalControlPlane
from tests.e2e.test_image_signatures import policies_allowing
from tests.factories import workload
from tests.oci import AuthRegistry, KeyPair, auth_registry, generate_key, push_signed_image

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("restore_registration")]

USER, PASSWORD = "puller", "pull-s3cret"


@pytest.fixture(scope="module")
def private_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthRegistry]:
    yield from auth_registry(tmp_path_factory, "private-registry", user=USER, password=PASSWORD)


@pytest.fixture(scope="module")
def signed_image(private_registry: AuthRegistry, tmp_path_factory: pytest.TempPathFactory) -> tuple[KeyPair, str]:
    work = tmp_path_factory.mktemp("private-image")
    key = generate_key(work, "release")
    digest = push_signed_image(private_registry, "private/web", "1.0", work, key)
    return key, digest


@pytest.fixture
def pull_deployguard(
    control_plane: LocalControlPlane,
    private_registry: AuthRegistry,
    signed_image: tuple[KeyPair, str],
    tmp_path: Path,
) -> Iterator[DeployguardServer]:
    host = private_registry.host
    images = {
        "enabled": True,
        "registry": {"private_registries": [host], "plain_http_registries": [host], "retries": 0},
        "authorities": [{"name": "release-key", "key": str(signed_image[0].public)}],
        "policies": [{"name": "private-images", "images": [f"{host}/private/*"], "authorities": ["release-key"]}],
    }
    server = DeployguardServer(
        control_plane.tools.deployguard, tmp_path, tmp_path / "logs", name="deployguard-pull-secrets",
        kubeconfig=control_plane.kubeconfig,
        extra_config={"images": images, "policy": {"directory": str(policies_allowing(host, tmp_path / "pol"))}},
    )  # fmt: skip
    with control_plane.serving(server, "pull-secret deployguard"):
        yield server


def with_pull(obj: dict[str, Any], *, secret: str = "", account: str = "") -> dict[str, Any]:
    spec = obj["spec"]["template"]["spec"]
    if secret:
        spec["imagePullSecrets"] = [{"name": secret}]
    if account:
        spec["serviceAccountName"] = account
    return obj


def create_pull_secret(kubectl: Kubectl, namespace: str, host: str, name: str = "regcred") -> None:
    result = kubectl(
        "create", "secret", "docker-registry", name, "-n", namespace, f"--docker-server={host}",
        f"--docker-username={USER}", f"--docker-password={PASSWORD}",
    )  # fmt: skip
    assert result.ok, result


def test_pull_secret_lets_deployguard_resolve_and_verify_a_private_image(
    pull_deployguard: DeployguardServer,
    private_registry: AuthRegistry,
    signed_image: tuple[KeyPair, str],
    kubectl: Kubectl,
    namespace: str,
) -> None:
    host, digest = private_registry.host, signed_image[1]
    create_pull_secret(kubectl, namespace, host)

    # Tag-only, with the secret: the deny names the digest the tag resolves to (read with the
    # secret), and the signature verified, so digest pinning is the only complaint.
    tagged = kubectl.apply(with_pull(workload("Deployment", f"{host}/private/web:1.0", name="tagged",
                                              namespace=namespace), secret="regcred"))  # fmt: skip
    assert tagged.denied_by_deployguard, tagged
    assert f"pin it as {host}/private/web@{digest}" in tagged.stderr, tagged
    assert "[signatures]" not in tagged.stderr, tagged

    # Pinned, with the secret: signed by the trusted key, created.
    pinned = f"{host}/private/web@{digest}"
    created = kubectl.apply(with_pull(workload("Deployment", pinned, name="pinned", namespace=namespace),
                                      secret="regcred"))  # fmt: skip
    assert created.ok, created

    # Pinned, without any secret: deployguard cannot read the registry; unknown is denied.
    refused = kubectl.apply(workload("Deployment", pinned, name="nosecret", namespace=namespace))
    assert refused.denied_by_deployguard, refused
    assert "could not verify its signature for image policy private-images" in refused.stderr, refused
    assert f"registry {host} requires credentials" in refused.stderr, refused


def test_service_account_pull_secrets_are_used(
    pull_deployguard: DeployguardServer,
    private_registry: AuthRegistry,
    signed_image: tuple[KeyPair, str],
    kubectl: Kubectl,
    namespace: str,
) -> None:
    create_pull_secret(kubectl, namespace, private_registry.host, "sa-regcred")
    account = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "builder", "namespace": namespace},
        "imagePullSecrets": [{"name": "sa-regcred"}],
    }
    assert kubectl.apply(account).ok
    pinned = f"{private_registry.host}/private/web@{signed_image[1]}"
    created = kubectl.apply(with_pull(workload("Deployment", pinned, name="via-sa", namespace=namespace),
                                      account="builder"))  # fmt: skip
    assert created.ok, created
