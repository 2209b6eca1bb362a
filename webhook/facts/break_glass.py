"""The ``break_glass`` fact: is there a valid, unused approval for exactly this change?

Verification is webhook/governance/break_glass.py. Gathering only *reads* whether the token was
used (webhook/governance/break_glass_commit.py's ledger of Leases); the use is recorded after the
decision, by the break-glass committer, and only when the change is admitted and not a
dry run, so a change denied for another reason does not burn the approval. "Used
already" is part of the fact, hence of the decision memo's key: a replay is a
different input. A valid token is logged at WARNING, loudly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from webhook.config import BreakGlassSettings
from webhook.errors import ConfigError
from webhook.governance.break_glass import BreakGlassError, template_hash, verify
from webhook.governance.break_glass_commit import BreakGlassLedger, from_version, replay_reason
from webhook.kube_api import KubeApi, KubeApiError
from webhook.policy_input import Subject
from webhook.workloads import ChangeType, metadata

log = logging.getLogger("deployguard.break_glass")


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
        self._settings, self._keys, self._clock = settings, dict(keys), clock
        self._ledger = BreakGlassLedger(kube, settings.state_namespace, clock) if kube is not None else None

    def _token(self, subject: Subject) -> Any:
        annotations = metadata(subject.request.obj).get("annotations")
        return annotations.get(self._settings.annotation) if isinstance(annotations, Mapping) else None

    def _applies(self, subject: Subject, token: Any) -> bool:
        return isinstance(token, str) and subject.change in (ChangeType.CREATE, ChangeType.ROLLOUT)

    def needs_io(self, subject: Subject) -> bool:
        """Only a token to check against the ledger of used tokens means I/O (most requests carry none)."""
        return self._ledger is not None and self._applies(subject, self._token(subject))

    async def gather(self, subject: Subject) -> Any:
        req = subject.request
        token = self._token(subject)
        digest = template_hash(subject.template)
        if not self._applies(subject, token):
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
            await self._unused(approval.token_id, req.uid, from_version(req))
        except BreakGlassError as exc:
            log.warning("break-glass token on %s %s/%s rejected: %s", req.kind, req.namespace, req.name, exc)
            return {"present": True, "valid": False, "template_hash": digest, "error": _clean(str(exc))}
        claims = approval.claims
        expires = datetime.fromtimestamp(int(claims["exp"]), UTC).isoformat().replace("+00:00", "Z")
        log.warning(
            "BREAK-GLASS: valid token %s for %s %s/%s (reason %r, ticket %r, approvers %s, expires %s, dry run %s)",
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

    async def _unused(self, token_id: str, request_uid: str, version: str) -> None:
        """Raise BreakGlassError when another change already used the token, or nobody can tell.

        Only a read: the use is recorded after an allowed decision (BreakGlassCommitter).
        The same change again is not a replay (``Use.same_change``)."""
        if self._ledger is None:
            raise BreakGlassError("single use cannot be enforced: deployguard has no Kubernetes API access (kube_api)")
        try:
            use = await self._ledger.use_of(token_id)
        except KubeApiError as exc:
            raise BreakGlassError(f"single use cannot be checked, so the token is not accepted: {exc}") from None
        if use is not None and not use.same_change(request_uid, version):
            raise BreakGlassError(replay_reason(token_id, use))
