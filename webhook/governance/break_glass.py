"""Signed, expiring break-glass approvals: tokens, signing and verification. Pure (crypto only).

A token is a compact JWS (``header.payload.signature``, alg EdDSA / Ed25519) whose
claims bind it to one change: namespace, kind, name and the hash of the new pod
template, with reason, ticket, issue and expiry times and a token id (``jti``).
k-of-n approval: every approver signs the same claims with their own key; the
annotation holds the tokens separated by whitespace. Verification keys come from
configuration only, never from the object. Single use is enforced by the caller
(webhook/facts/break_glass.py records ``jti`` through the Kubernetes API).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from webhook.errors import DeployguardError
from webhook.workloads import PodTemplate

TYP = "deployguard-break-glass+jws"
_CLAIMS = ("jti", "namespace", "kind", "name", "template_hash", "reason", "ticket", "iat", "exp")


class BreakGlassError(DeployguardError):
    """A break-glass token that does not admit this change; the message says why."""


@dataclass(frozen=True)
class Approval:
    """A verified approval: the claims, and who signed them."""

    claims: Mapping[str, Any]
    approvers: tuple[str, ...]

    @property
    def token_id(self) -> str:
        return str(self.claims["jti"])


def template_hash(template: PodTemplate | None) -> str:
    """sha256 over the canonical JSON of the pod template (labels, annotations, spec)."""
    doc: dict[str, Any] = {}
    if template is not None:
        doc = {"labels": dict(template.labels), "annotations": dict(template.annotations), "spec": template.spec}
    try:  # orjson: ~20x faster than json.dumps, and this runs on every review
        canonical = orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # e.g. an integer beyond 64 bits: still a stable, canonical form
        canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return "sha256:" + hashlib.sha256(canonical).hexdigest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_claims(
    *,
    namespace: str,
    kind: str,
    name: str,
    template_hash: str,
    reason: str,
    ticket: str,
    ttl_seconds: int,
    now: datetime,
) -> dict[str, Any]:
    """Claims for a new approval, valid from ``now`` for ``ttl_seconds``."""
    issued = int(now.timestamp())
    return {
        "jti": secrets.token_hex(8),
        "namespace": namespace,
        "kind": kind,
        "name": name,
        "template_hash": template_hash,
        "reason": reason,
        "ticket": ticket,
        "iat": issued,
        "exp": issued + ttl_seconds,
    }


def sign(claims: Mapping[str, Any], key: Ed25519PrivateKey, key_id: str) -> str:
    """One approver's compact JWS over ``claims``."""
    header = _b64(json.dumps({"alg": "EdDSA", "typ": TYP, "kid": key_id}, separators=(",", ":")).encode())
    payload = _b64(json.dumps(dict(claims), sort_keys=True, separators=(",", ":")).encode())
    signature = key.sign(f"{header}.{payload}".encode())
    return f"{header}.{payload}.{_b64(signature)}"


def decode(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """(header, claims, signed bytes, signature) of one token, without verifying it."""
    parts = token.split(".")
    if len(parts) != 3:
        raise BreakGlassError("the token is not a compact JWS (header.payload.signature)")
    try:
        header, claims = json.loads(_unb64(parts[0])), json.loads(_unb64(parts[1]))
        signature = _unb64(parts[2])
    except (ValueError, UnicodeDecodeError):
        raise BreakGlassError("the token is not valid base64url JSON") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise BreakGlassError("the token's header and payload must be JSON objects")
    if header.get("typ") != TYP or header.get("alg") != "EdDSA":
        raise BreakGlassError(f"the token is not a deployguard break-glass token (typ {TYP}, alg EdDSA)")
    missing = [c for c in _CLAIMS if c not in claims]
    if missing:
        raise BreakGlassError(f"the token lacks the claim(s) {missing}")
    return header, claims, f"{parts[0]}.{parts[1]}".encode(), signature


def verify(
    annotation: str,
    *,
    keys: Mapping[str, Ed25519PublicKey],
    required: int,
    namespace: str,
    kind: str,
    name: str,
    template_hash: str,
    now: datetime,
    max_ttl_seconds: int,
) -> Approval:
    """The approval in ``annotation`` if ``required`` distinct configured keys signed the
    same claims for exactly this object and template and it has not expired; else
    BreakGlassError with the first reason that applies."""
    tokens = annotation.split()
    if not tokens:
        raise BreakGlassError("the annotation is empty")
    if not keys:
        raise BreakGlassError("no break-glass keys are configured (break_glass.public_keys), so none can be valid")
    claims: dict[str, Any] | None = None
    approvers: list[str] = []
    for token in tokens:
        header, token_claims, signed, signature = decode(token)
        kid = str(header.get("kid", ""))
        key = keys.get(kid)
        if key is None:
            raise BreakGlassError(
                f"the token is signed with key id {kid or '(none)'}, which is not a configured approver"
            )
        try:
            key.verify(signature, signed)
        except InvalidSignature:
            raise BreakGlassError(
                f"the signature of approver {kid} does not verify (badly signed or altered)"
            ) from None
        if claims is not None and token_claims != claims:
            raise BreakGlassError("the approvers signed different claims")
        claims = token_claims
        if kid not in approvers:
            approvers.append(kid)
    assert claims is not None
    expected = {"namespace": namespace, "kind": kind, "name": name, "template_hash": template_hash}
    for field, value in expected.items():
        if claims.get(field) != value:
            raise BreakGlassError(
                f"the token is for another {'pod template' if field == 'template_hash' else 'object'}: "
                f"{field} is {claims.get(field)!s:.80}, this change has {value}"
            )
    exp, iat = claims.get("exp"), claims.get("iat")
    if not isinstance(exp, int) or not isinstance(iat, int):
        raise BreakGlassError("the token's iat and exp must be integers (seconds since the epoch)")
    if exp - iat > max_ttl_seconds:
        raise BreakGlassError(f"the token lives {exp - iat} s, longer than the allowed {max_ttl_seconds} s")
    if now.timestamp() >= exp:
        expired = datetime.fromtimestamp(exp, UTC).isoformat().replace("+00:00", "Z")
        raise BreakGlassError(f"the token expired at {expired}")
    if len(approvers) < required:
        raise BreakGlassError(f"{len(approvers)} of the required {required} approvers signed ({', '.join(approvers)})")
    return Approval(claims=claims, approvers=tuple(approvers))
