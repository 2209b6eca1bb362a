"""Registry authentication against a REAL registry that requires it: Debian's docker-registry
(distribution 2.8) with htpasswd (Basic) and with a token service (Bearer, ES256 JWTs the
registry verifies against the signer's certificate). Images are pushed by crane and signed
by cosign with the same credentials (a DOCKER_CONFIG directory).

The registries run on loopback; the settings allow that explicitly (``image_settings``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.oci import (
    AuthRegistry,
    TokenServer,
    auth_registry,
    generate_key,
    image_settings,
    push_image,
    push_signed_image,
)
from webhook.config import ImagePolicy, ImageSettings, SigningAuthority
from webhook.facts.images import ImageFacts
from webhook.trust.registry import Credentials, RefusedAddress, RegistryClient, RegistryError, load_docker_config

pytestmark = pytest.mark.integration

USER, PASSWORD = "alice", "s3cret-pull"


@pytest.fixture(scope="module")
def basic_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthRegistry]:
    yield from auth_registry(tmp_path_factory, "basic-registry", user=USER, password=PASSWORD)


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenServer]:
    server = TokenServer(tmp_path_factory.mktemp("token"), {USER: PASSWORD})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def bearer_registry(tmp_path_factory: pytest.TempPathFactory, token_server: TokenServer) -> Iterator[AuthRegistry]:
    yield from auth_registry(tmp_path_factory, "bearer-registry", user=USER, password=PASSWORD,
                             token_server=token_server)  # fmt: skip


def docker_config_of(registry: AuthRegistry) -> Path:
    return Path(registry.client_env["DOCKER_CONFIG"]) / "config.json"


def loopback_settings(registry: AuthRegistry, request: pytest.FixtureRequest, *args: Any) -> ImageSettings:
    """The registry (and, for Bearer, its token service) explicitly allowed on loopback."""
    settings = image_settings(registry.host, *args)
    if registry.token_realm:
        token_host = urlsplit(registry.token_realm).netloc
        private = (*settings.registry.private_registries, token_host)
        settings = replace(settings, registry=replace(settings.registry, private_registries=private))
    return settings


@pytest.mark.parametrize("flavour", ["basic", "bearer"])
async def test_resolves_with_credentials_and_says_why_without(
    flavour: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    registry: AuthRegistry = request.getfixturevalue(f"{flavour}_registry")
    digest = push_image(registry, "private/app", "1.0", tmp_path)
    settings = loopback_settings(registry, request).registry

    anonymous = RegistryClient(settings, credentials={})
    with_config = RegistryClient(settings, credentials=load_docker_config(docker_config_of(registry)))
    wrong = RegistryClient(settings, credentials={registry.host: Credentials(USER, "wrong")})
    try:
        assert await with_config.resolve(registry.host, "private/app", "1.0") == digest
        manifest = await with_config.manifest(registry.host, "private/app", digest)
        assert manifest.digest == digest
        with pytest.raises(RegistryError, match="requires credentials") as no_creds:
            await anonymous.resolve(registry.host, "private/app", "1.0")
        assert "imagePullSecrets" in str(no_creds.value)
        with pytest.raises(RegistryError, match="rejected the credentials"):
            await wrong.resolve(registry.host, "private/app", "1.0")
    finally:
        for client in (anonymous, with_config, wrong):
            await client.aclose()
    if flavour == "bearer":
        token_server: TokenServer = request.getfixturevalue("token_server")
        assert USER in token_server.requests  # the Bearer flow really went through the token service
        # The token realm is an address too: on loopback and not listed, it is refused.
        guarded = RegistryClient(image_settings(registry.host).registry, credentials={})
        try:
            with pytest.raises(RefusedAddress, match=r"internal address 127\.0\.0\.1"):
                await guarded.resolve(registry.host, "private/app", "1.0")
        finally:
            await guarded.aclose()


@pytest.mark.parametrize("flavour", ["basic", "bearer"])
async def test_signature_verified_only_with_the_pull_credentials(
    flavour: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    registry: AuthRegistry = request.getfixturevalue(f"{flavour}_registry")
    key = generate_key(tmp_path / "keys", "release")
    digest = push_signed_image(registry, "private/signed", "1.0", tmp_path, key)
    settings = loopback_settings(
        registry,
        request,
        (SigningAuthority(name="release", key=key.public),),
        (ImagePolicy(name="private", images=(f"{registry.host}/private/*",), authorities=("release",)),),
    )
    facts = ImageFacts(settings, budget_seconds=20.0, client=RegistryClient(settings.registry, credentials={}))
    image = f"{registry.host}/private/signed:1.0"
    try:
        pulled = facts.client.with_credentials({registry.host: Credentials(USER, PASSWORD)})
        fact: dict[str, Any] = (await facts.facts_for([image], pulled))[image]
        assert fact["status"] == "ok", fact
        assert fact["resolved_digest"] == digest
        assert fact["policies"][0]["verified"] == ["release"]

        # The same image without credentials, right after: the cached verdict (made with
        # credentials) must not be reused; the registry's refusal is the reason.
        anonymous: dict[str, Any] = (await facts.facts_for([image]))[image]
        assert anonymous["status"] == "unknown", anonymous
        assert f"registry {registry.host}" in anonymous["error"] and "credentials" in anonymous["error"]
    finally:
        await facts.client.aclose()
