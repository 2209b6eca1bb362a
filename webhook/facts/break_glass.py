"""The ``break_glass`` fact: is there a valid, unused approval for exactly this change?

Verification is webhook/break_glass.py; single use is a Lease per token id in
``break_glass.state_namespace``, created with create-if-absent semantics through the
Kubernetes API, so a replay is refused by every replica. A dry-run request verifies
but does not use the token. A valid use is logged at WARNING, loudly.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from webhook.break_glass import BreakGlassError, template_hash, verify
from webhook.config import BreakGlassSettings
from webhook.errors import ConfigError
from webhook.kube_api import AlreadyExists, KubeApi, KubeApiError
from webhook.policy_input import Subject
from webhook.workloads import ChangeType, metadata

log = logging.getLogger("deployguard.break_glass")
_USED = "deployguard.io/break-glass-"  # annotation prefix on the Lease that records a use


def load_public_keys(settings: BreakGlassSettings) -> dict[str, Ed25519PublicKey]:
    """The configured approver keys; a bad key file is a start-up error."""
    keys: dict[str, Ed25519PublicKey] = {}
    for key_id, path in settings.public_keys:
        try:
            key = load_pem_public_key(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"break_glass.public_keys[{key_id}]: cannot load {path}: {exc}") from None
        if not isinstance(key, Ed25519PublicKey):
            raise ConfigError(f"break_glass.public_keys[{key_id}]: {path} is not an Ed25519 public key")
        keys[key_id] = key
    return keys


def _clean(text: str) -> str:
    return text.replace('"', "'").replace("\\", "/")[:300]


def _now() -> datetime:
    return datetime.now(UTC)


class BreakGlassGatherer:
    """``input.facts.break_glass`` for creates and rollouts that carry the annotation."""

    name = "break_glass"

    def __init__(
        self,
        settings: BreakGlassSettings,
        keys: Mapping[str, Ed25519PublicKey],
        kube: KubeApi | None,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._settings, self._keys, self._kube, self._clock = settings, dict(keys), kube, clock

    async def gather(self, subject: Subject) -> Any:
        req = subject.request
        annotations = metadata(req.obj).get("annotations")
        token = annotations.get(self._settings.annotation) if isinstance(annotations, Mapping) else None
        digest = template_hash(subject.template)
        if not isinstance(token, str) or subject.change not in (ChangeType.CREATE, ChangeType.ROLLOUT):
            return {"present": isinstance(token, str), "valid": False, "template_hash": digest, "error": "not used"}
        try:
            approval = verify(
                token,
                keys=self._keys,
                required=self._settings.required_approvals,
                namespace=req.namespace,
                kind=req.kind,
                name=req.name,
                template_hash=digest,
                now=self._clock(),
                max_ttl_seconds=self._settings.max_ttl_seconds,
            )
            if not req.dry_run:
                await self._use(approval.token_id, req.uid, f"{req.kind} {req.namespace}/{req.name}")
        except BreakGlassError as exc:
            log.warning("break-glass token on %s %s/%s rejected: %s", req.kind, req.namespace, req.name, exc)
            return {"present": True, "valid": False, "template_hash": digest, "error": _clean(str(exc))}
        claims = approval.claims
        expires = datetime.fromtimestamp(int(claims["exp"]), UTC).isoformat().replace("+00:00", "Z")
        log.warning(
            "BREAK-GLASS USED: token %s admits %s %s/%s (reason %r, ticket %r, approvers %s, expires %s, dry run %s)",
            approval.token_id, req.kind, req.namespace, req.name, claims["reason"], claims["ticket"],
            ",".join(approval.approvers), expires, req.dry_run,
        )  # fmt: skip
        return {
            "present": True,
            "valid": True,
            "template_hash": digest,
            "id": approval.token_id,
            "reason": _clean(str(claims["reason"])),
            "ticket": _clean(str(claims["ticket"])),
            "approvers": list(approval.approvers),
            "approved_by": ", ".join(approval.approvers),
            "expires": expires,
        }

    async def _use(self, token_id: str, request_uid: str, what: str) -> None:
        """Record the token id as a Lease; a token id recorded by another request is a replay.

        A Lease per token id in ``state_namespace``, created if absent: the API server
        lets exactly one create win, so every replica sees the same answer. Leases
        (not ConfigMaps) because the chart grants deployguard exactly those there."""
        if self._kube is None:
            raise BreakGlassError("single use cannot be enforced: deployguard has no Kubernetes API access (kube_api)")
        ns = self._settings.state_namespace
        name = "deployguard-break-glass-" + hashlib.sha256(token_id.encode()).hexdigest()[:20]
        record = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": name,
                "namespace": ns,
                "labels": {"app.kubernetes.io/managed-by": "deployguard"},
                "annotations": {
                    _USED + "token-id": token_id,
                    _USED + "request-uid": request_uid,
                    _USED + "object": what,
                    _USED + "used-at": self._clock().isoformat(),
                },
            },
            "spec": {"holderIdentity": request_uid},
        }
        path = f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"
        try:
            await self._kube.create(path, record)
        except AlreadyExists:
            existing = await self._kube.get(f"{path}/{name}")
            data = (existing.get("metadata") or {}).get("annotations") or {}
            if data.get(_USED + "request-uid") != request_uid:  # the API server retrying one request is not a replay
                raise BreakGlassError(
                    f"the token {token_id} was already used at {data.get(_USED + 'used-at', '?')} "
                    f"for {data.get(_USED + 'object', '?')} (break-glass approvals are single use)"
                ) from None
        except KubeApiError as exc:
            raise BreakGlassError(f"single use cannot be recorded, so the token is not accepted: {exc}") from None
