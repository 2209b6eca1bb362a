"""Artifact trust against a real registry, real crane-pushed images and real cosign signatures.

Every test goes through the real reviewer (embedded engine, shipped policies) with the
real ``images`` gatherer; the registry is on loopback, which the settings allow
explicitly (``tests.oci.image_settings``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import subprocess
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.conftest import POLICIES
from tests.controlplane import deployguard_command
from tests.counters import CounterDeltas
from tests.factories import admission_review, workload
from tests.faults import FaultProxy
from tests.oci import (
    FIXTURE_BUNDLE,
    LocalRegistry,
    attach_referrer,
    cosign_sign,
    crane_tag,
    generate_key,
    image_settings,
    push_image,
    push_signed_image,
    put_manifest,
    upload_blob,
)
from tests.processes import free_port
from tests.unit.conftest import CapturedLog
from webhook.admission import parse_review
from webhook.config import AdmissionSettings, ImagePolicy, ImageSettings, PolicySettings, SigningAuthority
from webhook.engines.embedded import EmbeddedEngine
from webhook.facts.images import ImageFacts
from webhook.policy_store import PolicyStore
from webhook.reviewer import Outcome, Reviewer
from webhook.trust.signatures import SIMPLE_SIGNING

pytestmark = pytest.mark.integration

ROUND_TRIPS = "deployguard_registry_requests_total"
VERIFICATIONS = "deployguard_signature_verifications_total"
CACHE = "deployguard_cache_requests_total"
UPSTREAM_ERRORS = "deployguard_upstream_errors_total"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("keys")
    return {name: generate_key(work, name) for name in ("release", "other", "k1", "k2", "k3")}


@pytest.fixture
async def engine() -> AsyncIterator[EmbeddedEngine]:
    eng = EmbeddedEngine()
    store = PolicyStore(POLICIES, eng)
    assert await store.reload(), store.last_error
    yield eng


async def review(engine: EmbeddedEngine, settings: ImageSettings, *images: str, deadline: float = 8.0) -> Outcome:
    admission = AdmissionSettings(deadline_seconds=deadline)
    budget = deadline - min(1.0, deadline / 4) - 0.25
    gatherer = ImageFacts(settings, budget_seconds=budget)
    reviewer = Reviewer(engine, admission=admission, policy=PolicySettings(), log=CapturedLog(), gatherers=[gatherer])
    try:
        return await reviewer.review(parse_review(admission_review(workload("Deployment", *images))))
    finally:
        await gatherer.client.aclose()


def signature_findings(outcome: Outcome) -> list[str]:
    return [f.message for f in outcome.decision.findings if f.rule == "signatures" and f.mode == "deny"]


def policy(authorities: tuple[str, ...], threshold: int = 1, glob: str = "*") -> tuple[ImagePolicy, ...]:
    return (ImagePolicy(name="shop", images=(glob,), authorities=authorities, threshold=threshold),)


def key_authorities(keys: dict[str, Any], *names: str) -> tuple[SigningAuthority, ...]:
    return tuple(SigningAuthority(name=n, key=keys[n].public) for n in names)


def release_settings(host: str, keys: dict[str, Any], **registry_overrides: object) -> ImageSettings:
    """Settings whose one image policy (shop, every image) requires a signature by the ``release`` key."""
    return image_settings(host, key_authorities(keys, "release"), policy(("release",)), **registry_overrides)


async def test_signed_with_trusted_key_is_allowed_by_the_signature_rule(
    registry: LocalRegistry, keys: dict[str, Any], engine: EmbeddedEngine, tmp_path: Path
) -> None:
    digest = push_signed_image(registry, "shop/signed", "v1", tmp_path, keys["release"])
    settings = release_settings(registry.host, keys)
    deltas = CounterDeltas()
    outcome = await review(engine, settings, f"{registry.host}/shop/signed@{digest}")
    assert signature_findings(outcome) == []
    fact = outcome.policy_input["facts"]["images"]["by_image"][f"{registry.host}/shop/signed@{digest}"]  # type: ignore[index]
    assert fact["policies"][0]["verified"] == ["release"]
    # The .sig manifest and its simple-signing layer, labelled with the registry host only.
    assert deltas(ROUND_TRIPS, registry=registry.host, operation="signature", result="ok") >= 2
    assert deltas(ROUND_TRIPS, result="error") == 0 and deltas(UPSTREAM_ERRORS, upstream="registry") == 0
    assert deltas(VERIFICATIONS, result="verified") == 1 and deltas(VERIFICATIONS) == 1
    assert deltas(CACHE, cache="image_verdict", result="miss") == 1


async def test_signed_with_another_key_is_denied_naming_the_expected_authority(
    registry: LocalRegistry, keys: dict[str, Any], engine: EmbeddedEngine, tmp_path: Path
) -> None:
    digest = push_signed_image(registry, "shop/other", "v1", tmp_path, keys["other"])
    settings = release_settings(registry.host, keys)
    deltas = CounterDeltas()
    outcome = await review(engine, settings, f"{registry.host}/shop/other@{digest}")
    assert deltas(VERIFICATIONS, result="failed") == 1 and deltas(VERIFICATIONS) == 1
    assert not outcome.decision.allowed
    [message] = signature_findings(outcome)
    assert "0 of 1 required signatures verified; release: no signature verifies with this key (1 found)" in message
    [finding] = [f for f in outcome.decision.findings if f.rule == "signatures"]
    assert finding.fix.endswith("with the trusted authority: release")


async def test_unsigned_is_denied(
    registry: LocalRegistry, keys: dict[str, Any], engine: EmbeddedEngine, tmp_path: Path
) -> None:
    digest = push_image(registry, "shop/unsigned", "v1", tmp_path)
    settings = release_settings(registry.host, keys)
    deltas = CounterDeltas()
    outcome = await review(engine, settings, f"{registry.host}/shop/unsigned@{digest}")
    assert not outcome.decision.allowed
    assert deltas(VERIFICATIONS, result="unsigned") == 1 and deltas(VERIFICATIONS) == 1
    # The registry's 404 for the .sig tag is an answer, not a registry failure.
    assert deltas(ROUND_TRIPS, registry=registry.host, operation="signature", result="ok") == 1
    assert deltas(ROUND_TRIPS, result="error") == 0
    [message] = signature_findings(outcome)
    assert message.endswith("release: no cosign signature found")


async def test_signature_made_for_a_different_digest_is_denied(
    registry: LocalRegistry, keys: dict[str, Any], engine: EmbeddedEngine, tmp_path: Path
) -> None:
    signed = push_image(registry, "shop/copy", "a", tmp_path)
    victim = push_image(registry, "shop/copy", "b", tmp_path)
    cosign_sign(keys["release"], f"{registry.host}/shop/copy@{signed}")
    # Copy the valid signature manifest of `signed` to the signature tag of `victim`.
    crane_tag(f"{registry.host}/shop/copy:{signed.replace(':', '-')}.sig", f"{victim.replace(':', '-')}.sig")
    settings = release_settings(registry.host, keys)
    outcome = await review(engine, settings, f"{registry.host}/shop/copy@{victim}")
    [message] = signature_findings(outcome)
    assert f"release: the signature was made for a different digest ({signed})" in message


async def test_tag_moved_to_an_unsigned_image_after_signing_is_denied(
    registry: LocalRegistry, keys: dict[str, Any], engine: EmbeddedEngine, tmp_path: Path
) -> None:
    first = push_signed_image(registry, "shop/moving", "v1", tmp_path, keys["release"])
    settings = release_settings(registry.host, keys)
    before = await review(engine, settings, f"{registry.host}/shop/moving:v1")
    assert signature_findings(before) == []
    moved = push_image(registry, "shop/moving", "v1", tmp_path)
    after = await review(engine, settings, f"{registry.host}/shop/moving:v1")
    [message] = signature_findings(after)
    assert f"(digest {moved})" in message and "release: no cosign signature found" in message
    # digest_pinning names the exact reference the tag resolves to now.
    [pin] = [f for f in after.decision.findings if f.rule == "digest_pinning"]
    assert pin.fix.startswith(f"pin it as {registry.host}/shop/moving@{moved} ")
    # And a tag@digest reference to the first image, whose tag has moved, is reported.
    pinned = await review(engine, settings, f"{registry.host}/shop/moving:v1@{first}")
    assert signature_findings(pinned) == []
    [drift] = [f for f in pinned.decision.findings if f.rule == "tag_moved"]
    assert drift.mode == "warn" and f"now points to {moved}" in drift.message


async def test_two_of_three_threshold(
    registry: LocalRegistry, keys: dict[str, Any], engine: EmbeddedEngine, tmp_path: Path
) -> None:
    one = push_image(registry, "shop/quorum", "one", tmp_path)
    two = push_image(registry, "shop/quorum", "two", tmp_path)
    cosign_sign(keys["k1"], f"{registry.host}/shop/quorum@{one}")
    for name in ("k1", "k3"):
        cosign_sign(keys[name], f"{registry.host}/shop/quorum@{two}")
    settings = image_settings(
        registry.host, key_authorities(keys, "k1", "k2", "k3"), policy(("k1", "k2", "k3"), threshold=2)
    )
    outcome_one = await review(engine, settings, f"{registry.host}/shop/quorum@{one}")
    [message] = signature_findings(outcome_one)
    assert "1 of 2 required signatures verified" in message
    outcome_two = await review(engine, settings, f"{registry.host}/shop/quorum@{two}")
    assert signature_findings(outcome_two) == []


async def test_images_no_policy_matches_are_not_judged(
    registry: LocalRegistry, keys: dict[str, Any], engine: EmbeddedEngine, tmp_path: Path
) -> None:
    digest = push_image(registry, "team/unsigned", "v1", tmp_path)
    settings = image_settings(registry.host, key_authorities(keys, "release"), policy(("release",), glob="*/shop/*"))
    outcome = await review(engine, settings, f"{registry.host}/team/unsigned@{digest}")
    assert signature_findings(outcome) == []


async def test_registry_unreachable_is_denied_with_could_not_verify(
    keys: dict[str, Any], engine: EmbeddedEngine
) -> None:
    host = f"127.0.0.1:{free_port()}"  # nothing listens there
    settings = release_settings(host, keys)
    deltas = CounterDeltas()
    outcome = await review(engine, settings, f"{host}/shop/app@sha256:{'a' * 64}")
    [message] = signature_findings(outcome)
    assert f"could not verify its signature for image policy shop: registry {host} is unreachable" in message
    # Tried twice (retries: 1), both failed round trips and upstream errors; no verdict but "error".
    assert deltas(ROUND_TRIPS, registry=host, operation="signature", result="error") == 2
    assert deltas(ROUND_TRIPS, registry=host, result="ok") == 0
    assert deltas(UPSTREAM_ERRORS, upstream="registry") == 2
    assert deltas(VERIFICATIONS, result="error") == 1 and deltas(VERIFICATIONS) == 1


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP server that accepts connections and never answers: a hung registry."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


async def test_slow_registry_is_unknown_within_the_deadline_and_denied(
    silent_server: str, keys: dict[str, Any], engine: EmbeddedEngine
) -> None:
    settings = release_settings(silent_server, keys, timeout_seconds=30.0)
    outcome = await review(engine, settings, f"{silent_server}/shop/app@sha256:{'b' * 64}", deadline=2.0)
    assert outcome.decision.error == ""  # the policy answered: not an engine failure
    [message] = signature_findings(outcome)
    assert "could not verify its signature for image policy shop: not verified within the" in message


async def test_keyless_bundle_found_as_referrer_is_checked_by_sigstore(
    registry: LocalRegistry, engine: EmbeddedEngine, tmp_path: Path
) -> None:
    if not FIXTURE_BUNDLE.exists():
        pytest.skip(f"the shared Sigstore fixture is absent ({FIXTURE_BUNDLE})")
    digest = push_image(registry, "shop/keyless", "v1", tmp_path)
    attach_referrer(
        registry,
        "shop/keyless",
        digest,
        "application/vnd.dev.sigstore.bundle.v0.3+json",
        "application/vnd.dev.sigstore.bundle.v0.3+json",
        FIXTURE_BUNDLE.read_bytes(),
    )
    ci = SigningAuthority(
        name="ci",
        identity="https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2",
        issuer="https://token.actions.githubusercontent.com",
    )
    settings = image_settings(registry.host, (ci,), policy(("ci",)))
    outcome = await review(engine, settings, f"{registry.host}/shop/keyless@{digest}")
    # A real bundle, found through the referrers API, verified offline, but made for the
    # wheel's digest, not this image's: rejected with sigstore's reason.
    [message] = signature_findings(outcome)
    assert "ci: Sigstore bundle rejected: Bundle message digest mismatch" in message


class HostileRegistry(BaseHTTPRequestHandler):
    """Answers every manifest request with what its path asks for: garbage, huge, wrong type."""

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        body, media_type = b"", "application/vnd.oci.image.manifest.v1+json"
        if "/garbage/" in self.path:
            body = b"\x00\xffnot json at all"
        elif "/huge/" in self.path:
            body = b'{"x": "' + b"a" * (8 * 1024 * 1024) + b'"}'
        elif "/wrongtype/" in self.path:
            body, media_type = json.dumps({"schemaVersion": 2, "mediaType": "text/html"}).encode(), "text/html"
        self.send_response(200)
        self.send_header("Content-Type", media_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def hostile_registry() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), HostileRegistry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    ("repository", "reason"),
    [
        ("garbage", "is not JSON"),
        ("huge", "exceeds the 4194304-byte limit"),
        ("wrongtype", "has unsupported media type 'text/html'"),
    ],
)
async def test_hostile_registry_answers_are_clear_findings(
    hostile_registry: str, keys: dict[str, Any], engine: EmbeddedEngine, repository: str, reason: str
) -> None:
    settings = release_settings(hostile_registry, keys)
    outcome = await review(engine, settings, f"{hostile_registry}/{repository}/app:v1")
    [message] = signature_findings(outcome)
    assert "could not verify its signature" in message and reason in message


async def test_signature_layer_that_is_not_json_is_a_clear_finding(
    registry: LocalRegistry, engine: EmbeddedEngine, tmp_path: Path
) -> None:
    digest = push_image(registry, "shop/badsig", "v1", tmp_path)
    key = ec.generate_private_key(ec.SECP256R1())
    public = tmp_path / "raw.pub"
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    payload = b"this is not a simple-signing document"
    signature = base64.b64encode(key.sign(payload, ec.ECDSA(hashes.SHA256()))).decode()
    layer = upload_blob(registry, "shop/badsig", payload)
    config = upload_blob(registry, "shop/badsig", b"{}")
    put_manifest(
        registry,
        "shop/badsig",
        f"{digest.replace(':', '-')}.sig",
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
            "layers": [
                {
                    "mediaType": SIMPLE_SIGNING,
                    "digest": layer,
                    "size": len(payload),
                    "annotations": {"dev.cosignproject.cosign/signature": signature},
                }
            ],
        },
    )
    settings = image_settings(registry.host, (SigningAuthority(name="raw", key=public),), policy(("raw",)))
    outcome = await review(engine, settings, f"{registry.host}/shop/badsig@{digest}")
    [message] = signature_findings(outcome)
    assert "raw: the signed payload is not a cosign simple-signing JSON document" in message


async def test_loopback_registry_is_refused_unless_configured(
    registry: LocalRegistry, keys: dict[str, Any], engine: EmbeddedEngine, tmp_path: Path
) -> None:
    digest = push_image(registry, "shop/ssrf", "v1", tmp_path)
    settings = release_settings(registry.host, keys)
    refused = replace(settings, registry=replace(settings.registry, private_registries=()))
    outcome = await review(engine, refused, f"{registry.host}/shop/ssrf@{digest}")
    [message] = signature_findings(outcome)
    assert "resolves to the internal address 127.0.0.1; list it in images.registry.private_registries" in message


async def test_concurrent_requests_share_one_verification(
    registry: LocalRegistry, keys: dict[str, Any], tmp_path: Path
) -> None:
    digest = push_signed_image(registry, "shop/flight", "v1", tmp_path, keys["release"])
    settings = release_settings(registry.host, keys)
    gatherer = ImageFacts(settings, budget_seconds=10)
    image = f"{registry.host}/shop/flight@{digest}"
    deltas = CounterDeltas()
    try:
        results = await asyncio.gather(*(gatherer.facts_for([image]) for _ in range(20)))
        assert all(r[image]["policies"][0]["verified"] == ["release"] for r in results)
        assert gatherer.flights.calls == 1
        assert deltas(CACHE, cache="image_verdict", result="miss") == 20  # all asked before the first answer
        await gatherer.facts_for([image])  # warm: from the cache, no new call
        assert gatherer.flights.calls == 1
        assert deltas(CACHE, cache="image_verdict", result="hit") == 1
        assert deltas(VERIFICATIONS, result="verified") == 1  # one verification served all 21
    finally:
        await gatherer.client.aclose()


async def test_a_repeated_tag_lookup_is_a_cache_hit_and_no_round_trip(
    registry: LocalRegistry, keys: dict[str, Any], tmp_path: Path
) -> None:
    push_signed_image(registry, "shop/tagged", "v1", tmp_path, keys["release"])
    settings = replace(release_settings(registry.host, keys), tag_cache_ttl_seconds=60.0)
    gatherer = ImageFacts(settings, budget_seconds=10)
    image = f"{registry.host}/shop/tagged:v1"
    try:
        deltas = CounterDeltas()
        first = await gatherer.facts_for([image])
        assert first[image]["policies"][0]["verified"] == ["release"]
        assert deltas(CACHE, cache="image_tag", result="miss") == 1
        resolves = deltas(ROUND_TRIPS, registry=registry.host, operation="resolve", result="ok")
        assert resolves >= 1
        second = await gatherer.facts_for([image])
        assert second[image]["digest"] == first[image]["digest"]
        assert deltas(CACHE, cache="image_tag", result="hit") == 1
        assert deltas(CACHE, cache="image_verdict", result="hit") == 1
        assert deltas(ROUND_TRIPS, registry=registry.host, operation="resolve") == resolves
    finally:
        await gatherer.client.aclose()


async def test_a_registry_answering_503_counts_failed_round_trips(
    registry: LocalRegistry, keys: dict[str, Any], tmp_path: Path
) -> None:
    digest = push_signed_image(registry, "shop/flaky", "v1", tmp_path, keys["release"])
    host, port = registry.host.split(":")
    proxy = FaultProxy(host, int(port), free_port())  # the registry, behind a proxy that answers 503
    await proxy.start()
    await proxy.set_mode("error")
    gatherer = ImageFacts(release_settings(proxy.host, keys), budget_seconds=10)
    image = f"{proxy.host}/shop/flaky@{digest}"
    try:
        deltas = CounterDeltas()
        fact = (await gatherer.facts_for([image]))[image]
        assert fact["status"] == "unknown" and "answered HTTP 503" in fact["error"]
        assert deltas(ROUND_TRIPS, registry=proxy.host, operation="signature", result="error") == 2  # retried once
        assert deltas(UPSTREAM_ERRORS, upstream="registry") == 2
        assert deltas(VERIFICATIONS, result="error") == 1
        await proxy.set_mode("pass")
        again = (await gatherer.facts_for([image]))[image]  # the failure is cached briefly: not asked again
        assert again["status"] == "unknown" and deltas(CACHE, cache="image_verdict", result="hit") == 1
        assert deltas(ROUND_TRIPS, registry=proxy.host, result="ok") == 0
    finally:
        await gatherer.client.aclose()
        await proxy.close()


def test_image_inspect_cli_reports_digest_and_verdicts(
    registry: LocalRegistry, keys: dict[str, Any], tmp_path: Path
) -> None:
    digest = push_signed_image(registry, "shop/inspect", "v1", tmp_path, keys["release"])
    config = tmp_path / "deployguard.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "images": {
                    "registry": {"private_registries": [registry.host], "plain_http_registries": [registry.host]},
                    "authorities": [
                        {"name": "release", "key": str(keys["release"].public)},
                        {"name": "other", "key": str(keys["other"].public)},
                    ],
                    "policies": [{"name": "shop", "images": ["*/shop/*"], "authorities": ["release", "other"]}],
                }
            }
        )
    )
    argv = [*deployguard_command(), "image", "inspect", f"{registry.host}/shop/inspect:v1", "--config", str(config)]
    text = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True).stdout
    assert f"resolves to: {digest}  (pin it as {registry.host}/shop/inspect@{digest})" in text
    assert "policy shop (enforce): 1 of 1 required verified: OK" in text
    assert (
        "  release: verified" in text and "  other: not verified: no signature verifies with this key (1 found)" in text
    )
    report = json.loads(
        subprocess.run([*argv, "--output", "json"], capture_output=True, text=True, timeout=60, check=True).stdout
    )
    assert report["parsed"]["tag"] == "v1" and report["registry"]["resolved_digest"] == digest
    assert report["registry"]["policies"][0]["verified"] == ["release"]
