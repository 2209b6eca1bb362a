"""Signature verification for one image digest against configured authorities.

Two verifiers, one per signature format:
  * cosign key-based signatures in the classic format: a manifest at tag
    ``sha256-<hex>.sig`` whose simple-signing layers carry a base64 signature
    annotation; the signed payload's ``critical.image.docker-manifest-digest`` must be
    the image digest (otherwise a signature made for another image would count);
  * Sigstore bundles attached as OCI referrers (what current cosign writes), checked by
    sigstore-python: certificate chain to the trusted root (offline), transparency-log
    inclusion, and the certificate identity and OIDC issuer (exact or regex).
Each authority ends with verified or a reason a person can act on. The registry I/O
goes through ``RegistryClient``; the cryptography here is pure.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509 import Certificate, OtherName, RFC822Name, SubjectAlternativeName, UniformResourceIdentifier

from webhook.config import SigningAuthority
from webhook.errors import DeployguardError
from webhook.trust.identity_patterns import full_match
from webhook.trust.registry import NotFound, RegistryClient, RegistryError

SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
BUNDLE_ARTIFACT_TYPES = ("application/vnd.dev.sigstore.bundle.v0.3+json", "application/vnd.dev.sigstore.bundle+json")
_MAX_SIGNATURES = 16  # layers / referrers looked at per image
_OIDC_ISSUER_OID = "1.3.6.1.4.1.57264.1.1"
_OIDC_ISSUER_V2_OID = "1.3.6.1.4.1.57264.1.8"


class SignatureError(DeployguardError):
    """A signature, key or bundle could not be used; the message says which and why."""


@dataclass(frozen=True)
class AuthorityResult:
    """Whether one authority's signature was found and verified for a digest."""

    authority: str
    verified: bool
    reason: str = ""
    unsigned: bool = field(default=False, compare=False)  # no signature of the authority's kind at all

    @property
    def outcome(self) -> Literal["verified", "failed", "unsigned"]:
        """The label of ``deployguard_signature_verifications_total``: an unsigned image is
        not a failed check (nothing was tampered with, nobody signed it)."""
        return "verified" if self.verified else "unsigned" if self.unsigned else "failed"

    def as_fact(self) -> dict[str, Any]:
        return {"name": self.authority, "verified": self.verified, "reason": self.reason}


@dataclass(frozen=True)
class ClassicSignature:
    """One simple-signing layer of a ``.sig`` manifest: payload and raw signature."""

    payload: bytes
    signature: bytes


@lru_cache(maxsize=64)
def load_public_key(path: Path) -> Any:
    """A cosign public key (PEM): ECDSA P-256, Ed25519 or RSA."""
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise SignatureError(f"cannot load public key {path}: {exc}") from None
    if isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey):
        return key
    raise SignatureError(f"public key {path} is a {type(key).__name__}; use ECDSA P-256, Ed25519 or RSA")


def signature_valid(key: Any, signature: bytes, payload: bytes) -> bool:
    """Cosign's signature schemes: ECDSA/SHA-256, Ed25519 (pure), RSA PKCS#1 v1.5 or PSS with SHA-256."""
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, payload, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, payload)
        elif isinstance(key, rsa.RSAPublicKey):
            try:
                key.verify(signature, payload, padding.PKCS1v15(), hashes.SHA256())
            except InvalidSignature:
                pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
                key.verify(signature, payload, pss, hashes.SHA256())
        else:
            return False
    except (InvalidSignature, ValueError):
        return False
    return True


def signed_digest(payload: bytes) -> str:
    """``critical.image.docker-manifest-digest`` of a simple-signing payload."""
    try:
        document = json.loads(payload)
        digest = document["critical"]["image"]["docker-manifest-digest"]
    except (ValueError, TypeError, KeyError):
        raise SignatureError("the signed payload is not a cosign simple-signing JSON document") from None
    if not isinstance(digest, str):
        raise SignatureError("the signed payload names no image digest")
    return digest


def check_classic(key: Any, signatures: Sequence[ClassicSignature], digest: str) -> str:
    """'' when one signature verifies with ``key`` and was made for ``digest``; else why not."""
    if not signatures:
        return "no cosign signature found"
    wrong_digest = ""
    for sig in signatures:
        if not signature_valid(key, sig.signature, sig.payload):
            continue
        try:
            payload_digest = signed_digest(sig.payload)
        except SignatureError as exc:
            return str(exc)
        if payload_digest == digest:
            return ""
        wrong_digest = payload_digest
    if wrong_digest:
        return f"the signature was made for a different digest ({wrong_digest})"
    return f"no signature verifies with this key ({len(signatures)} found)"


async def classic_signatures(
    client: RegistryClient, registry: str, repository: str, digest: str
) -> list[ClassicSignature]:
    """The simple-signing layers at ``sha256-<hex>.sig``; none when the tag does not exist."""
    try:
        manifest = await client.manifest(registry, repository, digest.replace(":", "-") + ".sig", operation="signature")
    except NotFound:
        return []
    layers = manifest.document.get("layers")
    if not isinstance(layers, list):
        raise SignatureError(f"the signature manifest of {digest} has no layers list")
    out = []
    for layer in layers[:_MAX_SIGNATURES]:
        if not isinstance(layer, dict) or layer.get("mediaType") != SIMPLE_SIGNING:
            continue
        annotations = layer.get("annotations")
        encoded = annotations.get(SIGNATURE_ANNOTATION) if isinstance(annotations, dict) else None
        if not isinstance(encoded, str):
            continue
        try:
            signature = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        payload = await client.blob(registry, repository, str(layer.get("digest", "")), operation="signature")
        out.append(ClassicSignature(payload=payload, signature=signature))
    return out


async def referrer_bundles(client: RegistryClient, registry: str, repository: str, digest: str) -> list[bytes]:
    """Sigstore bundles attached to ``digest`` as OCI referrers (each manifest's first layer)."""
    bundles = []
    for descriptor in (await client.referrers(registry, repository, digest, operation="signature"))[:_MAX_SIGNATURES]:
        if descriptor.get("artifactType") not in BUNDLE_ARTIFACT_TYPES:
            continue
        manifest = await client.manifest(registry, repository, str(descriptor.get("digest", "")), operation="signature")
        layers = manifest.document.get("layers")
        if isinstance(layers, list) and layers and isinstance(layers[0], dict):
            layer = str(layers[0].get("digest", ""))
            bundles.append(await client.blob(registry, repository, layer, operation="signature"))
    return bundles


# ---- Sigstore (keyless) ------------------------------------------------------------


class _IdentityPolicy:
    """sigstore-python VerificationPolicy: SAN and OIDC issuer, each exact or a full-match regex."""

    def __init__(self, authority: SigningAuthority) -> None:
        self.authority = authority

    def verify(self, cert: Certificate) -> None:
        from sigstore.errors import VerificationError

        a = self.authority
        issuer = _issuer(cert)
        if a.issuer and issuer != a.issuer:
            raise VerificationError(f"OIDC issuer is {issuer}, expected {a.issuer}")
        if a.issuer_regex and not full_match(a.issuer_regex, issuer):
            raise VerificationError(f"OIDC issuer {issuer} does not match {a.issuer_regex}")
        sans = _sans(cert)
        if a.identity and a.identity not in sans:
            raise VerificationError(f"certificate identity is {', '.join(sorted(sans))}, expected {a.identity}")
        if a.identity_regex and not any(full_match(a.identity_regex, s) for s in sans):
            raise VerificationError(f"certificate identity {', '.join(sorted(sans))} does not match {a.identity_regex}")


def _issuer(cert: Certificate) -> str:
    from cryptography.x509 import ExtensionNotFound, ObjectIdentifier

    for oid, der in ((_OIDC_ISSUER_V2_OID, True), (_OIDC_ISSUER_OID, False)):
        try:
            value: Any = cert.extensions.get_extension_for_oid(ObjectIdentifier(oid)).value
        except ExtensionNotFound:
            continue
        raw = bytes(value.value)
        if der and len(raw) >= 2 and raw[0] == 0x0C:
            return raw[2:].decode(errors="replace")
        return raw.decode(errors="replace")
    return ""


def _sans(cert: Certificate) -> set[str]:
    san = cert.extensions.get_extension_for_class(SubjectAlternativeName).value
    out = set(san.get_values_for_type(RFC822Name)) | set(san.get_values_for_type(UniformResourceIdentifier))
    out |= {o.value.decode(errors="replace") for o in san.get_values_for_type(OtherName)}
    return out


class SigstoreVerifier:
    """sigstore-python's Verifier with a trusted root from a file (air-gapped) or the bundled one."""

    def __init__(self, trusted_root: Path | None = None) -> None:
        self.trusted_root = trusted_root
        self._verifier: Any = None

    def _get(self) -> Any:
        if self._verifier is None:
            from sigstore.models import TrustedRoot
            from sigstore.verify import Verifier

            try:
                if self.trusted_root is not None:
                    self._verifier = Verifier(trusted_root=TrustedRoot.from_file(str(self.trusted_root)))
                else:
                    self._verifier = Verifier.production(offline=True)
            except Exception as exc:  # sigstore raises many kinds; translate at the boundary
                raise SignatureError(f"cannot load the Sigstore trusted root: {exc}") from None
        return self._verifier

    def check(self, bundle_json: bytes, digest: str, authority: SigningAuthority) -> str:
        """'' when the bundle verifies for ``digest`` and the authority's identity; else why not."""
        from sigstore.errors import Error as SigstoreError
        from sigstore.hashes import Hashed
        from sigstore.models import Bundle
        from sigstore_models.common.v1 import HashAlgorithm

        algorithm, _, hex_digest = digest.partition(":")
        if algorithm != "sha256":
            return f"digest algorithm {algorithm} is not supported for Sigstore bundles"
        try:
            bundle = Bundle.from_json(bundle_json)
        except Exception as exc:
            return f"the Sigstore bundle is not valid: {_short(exc)}"
        verifier = self._get()
        policy = _IdentityPolicy(authority)
        try:
            if bundle._dsse_envelope is not None:
                payload_type, payload = verifier.verify_dsse(bundle, policy)
                return _statement_subject_reason(payload_type, payload, hex_digest)
            verifier.verify_artifact(
                Hashed(algorithm=HashAlgorithm.SHA2_256, digest=bytes.fromhex(hex_digest)), bundle, policy
            )
        except SigstoreError as exc:
            return f"Sigstore bundle rejected: {_short(exc)}"
        except Exception as exc:  # malformed bundles raise assorted errors inside sigstore
            return f"Sigstore bundle rejected: {_short(exc)}"
        return ""


def _statement_subject_reason(payload_type: str, payload: bytes, hex_digest: str) -> str:
    if payload_type != "application/vnd.in-toto+json":
        return f"the Sigstore bundle carries {payload_type}, not an in-toto statement"
    try:
        subjects = json.loads(payload).get("subject") or []
        digests = {s["digest"]["sha256"] for s in subjects}
    except (ValueError, TypeError, KeyError, AttributeError):
        return "the in-toto statement in the bundle has no readable subject"
    if hex_digest in digests:
        return ""
    return "the Sigstore bundle was made for a different digest"


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:300]


async def verify_digest(
    client: RegistryClient,
    registry: str,
    repository: str,
    digest: str,
    authorities: Sequence[SigningAuthority],
    sigstore: SigstoreVerifier,
) -> list[AuthorityResult]:
    """Every authority's verdict on ``digest``; signatures are fetched once for all of them."""
    results = []
    classic: list[ClassicSignature] | None = None
    bundles: list[bytes] | None = None
    for authority in authorities:
        unsigned = False
        try:
            if authority.key is not None:
                if classic is None:
                    classic = await classic_signatures(client, registry, repository, digest)
                unsigned = not classic
                reason = check_classic(load_public_key(authority.key), classic, digest)
            else:
                if bundles is None:
                    bundles = await referrer_bundles(client, registry, repository, digest)
                unsigned = not bundles
                reason = "no Sigstore bundle found" if not bundles else ""
                for bundle in bundles:
                    reason = sigstore.check(bundle, digest, authority)
                    if not reason:
                        break
        except (SignatureError, RegistryError) as exc:
            if isinstance(exc, RegistryError):
                raise
            reason, unsigned = str(exc), False
        results.append(AuthorityResult(authority.name, not reason, reason, unsigned=unsigned))
    return results
