"""Signature checks, caches, the address guard and the images settings, without a registry."""

from __future__ import annotations

import asyncio
import base64
import gc
import json
from pathlib import Path
from typing import Any

import pytest
import sigstore
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from tests.oci import FIXTURE_BUNDLE, FIXTURE_DIGEST, FIXTURE_IDENTITY, FIXTURE_ISSUER
from webhook.config import ImagePolicy, RegistrySettings, SigningAuthority, load_settings
from webhook.errors import ConfigError
from webhook.facts.images import SingleFlight, TtlCache, matching_policies
from webhook.images import parse_image
from webhook.trust.registry import RefusedAddress, RegistryClient, credentials_from_auths
from webhook.trust.signatures import ClassicSignature, SigstoreVerifier, check_classic, load_public_key

DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32


def payload(digest: str) -> bytes:
    return json.dumps(
        {
            "critical": {
                "identity": {"docker-reference": "r/app"},
                "image": {"docker-manifest-digest": digest},
                "type": "cosign container image signature",
            },
            "optional": None,
        }
    ).encode()


def write_public(tmp_path: Path, key: Any, name: str) -> Path:
    path = tmp_path / f"{name}.pub"
    path.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    load_public_key.cache_clear()
    return path


@pytest.mark.parametrize("kind", ["ecdsa-p256", "ed25519", "rsa"])
def test_classic_signature_per_key_type(tmp_path: Path, kind: str) -> None:
    data = payload(DIGEST)
    if kind == "ecdsa-p256":
        key: Any = ec.generate_private_key(ec.SECP256R1())
        signature = key.sign(data, ec.ECDSA(hashes.SHA256()))
    elif kind == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
        signature = key.sign(data)
    else:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        signature = key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    public = load_public_key(write_public(tmp_path, key, kind))
    assert check_classic(public, [ClassicSignature(data, signature)], DIGEST) == ""
    assert check_classic(public, [ClassicSignature(data, signature)], OTHER) == (
        f"the signature was made for a different digest ({DIGEST})"
    )
    tampered = ClassicSignature(payload(OTHER), signature)
    assert check_classic(public, [tampered], OTHER) == "no signature verifies with this key (1 found)"
    assert check_classic(public, [], DIGEST) == "no cosign signature found"


def test_signed_payload_that_is_not_json(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    data = b"\x00not json"
    public = load_public_key(write_public(tmp_path, key, "k"))
    sig = ClassicSignature(data, key.sign(data, ec.ECDSA(hashes.SHA256())))
    assert check_classic(public, [sig], DIGEST) == "the signed payload is not a cosign simple-signing JSON document"


def needs_fixture() -> None:
    if not FIXTURE_BUNDLE.exists():
        pytest.skip(f"the shared Sigstore fixture is absent ({FIXTURE_BUNDLE}); CI has ../shared beside the checkout")


def ci(**overrides: str) -> SigningAuthority:
    return SigningAuthority(**{"name": "ci", "identity": FIXTURE_IDENTITY, "issuer": FIXTURE_ISSUER, **overrides})


def bundled_trusted_root() -> Path:
    """The public-good trusted root shipped inside sigstore-python, used as an air-gapped root file."""
    return Path(sigstore.__file__).parent / "_store" / "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev" / "trusted_root.json"


def test_keyless_bundle_verifies_offline_with_a_configured_trusted_root() -> None:
    needs_fixture()
    verifier = SigstoreVerifier(trusted_root=bundled_trusted_root())
    assert verifier.check(FIXTURE_BUNDLE.read_bytes(), FIXTURE_DIGEST, ci()) == ""


def test_keyless_identity_and_issuer_as_regex() -> None:
    needs_fixture()
    authority = SigningAuthority(
        name="ci",
        identity_regex=r"https://github\.com/trailofbits/[^/]+/\.github/workflows/release\.yml@refs/tags/v.*",
        issuer_regex=r"https://token\.actions\.githubusercontent\.com",
    )
    assert SigstoreVerifier(bundled_trusted_root()).check(FIXTURE_BUNDLE.read_bytes(), FIXTURE_DIGEST, authority) == ""


@pytest.mark.parametrize(
    ("authority", "digest", "reason"),
    [
        (
            ci(identity="https://github.com/evil/repo/.github/workflows/x.yml@refs/heads/main"),
            FIXTURE_DIGEST,
            "expected https://github.com/evil/repo",
        ),
        (ci(issuer="https://accounts.google.com"), FIXTURE_DIGEST, "expected https://accounts.google.com"),
        (ci(), OTHER, "Bundle message digest mismatch"),
        (SigningAuthority(name="ci", identity_regex=r"https://github\.com/evil/.*"), FIXTURE_DIGEST, "does not match"),
    ],
)
def test_keyless_wrong_identity_issuer_or_digest_is_rejected(
    authority: SigningAuthority, digest: str, reason: str
) -> None:
    needs_fixture()
    result = SigstoreVerifier(bundled_trusted_root()).check(FIXTURE_BUNDLE.read_bytes(), digest, authority)
    assert result.startswith("Sigstore bundle rejected: ") and reason in result


def test_bundle_that_is_not_a_bundle() -> None:
    assert SigstoreVerifier().check(b"{not json", DIGEST, ci()).startswith("the Sigstore bundle is not valid")


def test_unusable_trusted_root_is_a_clear_error(tmp_path: Path) -> None:
    needs_fixture()
    bad = tmp_path / "root.json"
    bad.write_text("{}")
    with pytest.raises(Exception, match="cannot load the Sigstore trusted root"):
        SigstoreVerifier(bad).check(FIXTURE_BUNDLE.read_bytes(), FIXTURE_DIGEST, ci())


def test_ttl_cache_expires_on_the_injected_clock() -> None:
    now = [100.0]
    cache = TtlCache(clock=lambda: now[0])
    cache.put("k", "v", ttl=10)
    assert cache.get("k") == "v"
    now[0] = 111.0
    assert cache.get("k") is None
    cache.put("zero", "v", ttl=0)
    assert cache.get("zero") is None


async def test_single_flight_shares_one_call_and_survives_a_cancelled_waiter() -> None:
    flights = SingleFlight()
    release = asyncio.Event()

    async def call() -> str:
        await release.wait()
        return "digest"

    waiters = [asyncio.ensure_future(flights.do("k", call)) for _ in range(5)]
    await asyncio.sleep(0)
    waiters[0].cancel()  # one request hit its deadline; the others still get the answer
    release.set()
    results = await asyncio.gather(*waiters[1:])
    assert results == ["digest"] * 4 and flights.calls == 1


async def test_a_flight_that_fails_after_every_waiter_gave_up_is_not_reported_as_unretrieved() -> None:
    """The registry answered with an error after the budget: nobody awaits the flight any more,
    and asyncio logged "Task exception was never retrieved" with a traceback for each one."""
    flights = SingleFlight()
    release = asyncio.Event()
    reported: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))

    async def call() -> str:
        await release.wait()
        raise RuntimeError("registry answered 500")

    waiter = asyncio.ensure_future(flights.do("k", call))
    await asyncio.sleep(0)
    waiter.cancel()  # the request's budget ran out, well before the registry answered
    for _ in range(3):
        await asyncio.sleep(0)
    release.set()
    for _ in range(3):
        await asyncio.sleep(0)
    del waiter
    gc.collect()  # an unretrieved exception is reported when its task is collected
    loop.set_exception_handler(None)
    assert [c.get("message") for c in reported] == []


def test_policies_match_by_glob_on_name_or_reference() -> None:
    policies = (
        ImagePolicy(name="acme", images=("ghcr.io/acme/*",), authorities=("k",)),
        ImagePolicy(name="prod-tags", images=("*:prod-*",), authorities=("k",)),
    )
    assert [p.name for p in matching_policies(parse_image("ghcr.io/acme/api:prod-1"), policies)] == [
        "acme",
        "prod-tags",
    ]
    assert matching_policies(parse_image("ghcr.io/other/api:1"), policies) == []


@pytest.mark.parametrize("host", ["127.0.0.1:5000", "localhost:5000", "10.0.0.7", "169.254.169.254", "[::1]:5000"])
async def test_internal_addresses_are_refused(host: str) -> None:
    client = RegistryClient(RegistrySettings())
    try:
        with pytest.raises(RefusedAddress, match="internal address"):
            await client.check_destination(host)
    finally:
        await client.aclose()


async def test_allowlist_refuses_other_registries_and_private_registries_opt_in() -> None:
    client = RegistryClient(
        RegistrySettings(allowed_registries=("127.0.0.1:5000",), private_registries=("127.0.0.1:5000",))
    )
    try:
        await client.check_destination("127.0.0.1:5000")
        with pytest.raises(RefusedAddress, match=r"not in images\.registry\.allowed_registries"):
            await client.check_destination("ghcr.io")
    finally:
        await client.aclose()


def test_docker_config_credentials() -> None:
    auth = base64.b64encode(b"robot:s3cret").decode()
    creds = credentials_from_auths(
        {"https://index.docker.io/v1/": {"auth": auth}, "ghcr.io": {"username": "u", "password": "p"}, "bad": "x"}
    )
    assert creds["docker.io"].username == "robot" and creds["docker.io"].password == "s3cret"
    assert creds["ghcr.io"].password == "p" and "bad" not in creds


def test_images_settings_from_yaml(tmp_path: Path) -> None:
    config = tmp_path / "deployguard.yaml"
    config.write_text(
        """
images:
  enabled: true
  registry: {private_registries: ["127.0.0.1:5000"], timeout_seconds: 2}
  authorities:
    - {name: release, key: /keys/release.pub}
    - {name: ci, identity_regex: "https://github.com/acme/.*", issuer: "https://token.actions.githubusercontent.com"}
  policies:
    - {name: acme, images: ["ghcr.io/acme/*"], authorities: [release, ci], threshold: 2, mode: warn}
"""
    )
    images = load_settings(config).images
    assert images.enabled and images.registry.private_registries == ("127.0.0.1:5000",)
    assert images.authorities[0].key == Path("/keys/release.pub")
    assert images.policies[0].threshold == 2 and images.policies[0].mode == "warn"


@pytest.mark.parametrize(
    ("policies", "error"),
    [
        ("[{name: p, images: ['*'], authorities: [nobody]}]", "unknown authorities"),
        ("[{name: p, images: ['*'], authorities: [release], threshold: 2}]", "threshold must be 1..1"),
        ("[{name: p, images: ['*'], authorities: [release], mode: audit}]", "mode must be enforce or warn"),
    ],
)
def test_images_settings_are_validated(tmp_path: Path, policies: str, error: str) -> None:
    config = tmp_path / "deployguard.yaml"
    config.write_text(f"images:\n  authorities: [{{name: release, key: /k.pub}}]\n  policies: {policies}\n")
    with pytest.raises(ConfigError, match=error):
        load_settings(config)
