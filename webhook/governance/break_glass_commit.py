"""Single use of break-glass approvals: the used-token ledger (Leases) and its committer. I/O.

A use is a Lease per token id in ``break_glass.state_namespace``, created if absent:
the API server lets exactly one create win, so every replica sees the same answer.
Leases (not ConfigMaps) because the chart grants deployguard exactly those there.

Validating webhooks are called in parallel, and a change we admit may still be refused
by another one; its token would then be spent on a change that never happened. So a use
records the resourceVersion of the object the change applied to: the same token on an
update of the object at that same version is the same change tried again (a persisted
change gives the object a new resourceVersion), not a replay. A create has no such
version, so its token stays strictly single use.

The break_glass gatherer only *reads* the ledger (is this token used already?); the
committer *writes* it after the decision, and only for an allowed, non-dry-run
decision that the policy says relied on the token (the ``break-glass-token``
annotation of rule break_glass_notice). So a change denied for another reason does
not burn the approval, and two replicas racing with one token cannot both admit different
changes: the loser's create gets 409 and its answer flips to deny.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from webhook.admission import AdmissionRequest
from webhook.decision import ANNOTATE, Decision
from webhook.governance.break_glass import BreakGlassError
from webhook.kube_api import AlreadyExists, KubeApi, KubeApiError, NotFound
from webhook.workloads import metadata

log = logging.getLogger("deployguard.break_glass")
_USED = "deployguard.io/break-glass-"  # annotation prefix on the Lease that records a use
LEDGER_LABELS = {"app.kubernetes.io/managed-by": "deployguard", "deployguard.io/ledger": "break-glass"}
TOKEN_ANNOTATION = "break-glass-token"  # the decision annotation naming the token it relied on


@dataclass(frozen=True)
class Use:
    """A recorded use of a token: by which request, for which object, when, from which version of it."""

    request_uid: str
    what: str
    used_at: str
    from_version: str = ""  # the object's resourceVersion before the admitted update ("" for a create)

    def same_change(self, request_uid: str, from_version: str) -> bool:
        """Whether a request is this use again rather than a replay: the API server retrying the
        request (same uid), or the same update of the object at the same version (the admitted
        attempt did not persist). Only an update has a version; the token binds object and template."""
        return request_uid == self.request_uid or (bool(from_version) and from_version == self.from_version)


def from_version(request: AdmissionRequest) -> str:
    """The stored object's resourceVersion an update applies to (from the API server, not the user); "" otherwise."""
    version = metadata(request.old_obj).get("resourceVersion") if request.operation == "UPDATE" else None
    return version if isinstance(version, str) else ""


def _now() -> datetime:
    return datetime.now(UTC)


class BreakGlassLedger:
    """Reads and records token uses as Leases through the Kubernetes API."""

    def __init__(self, kube: KubeApi, namespace: str, clock: Callable[[], datetime] = _now) -> None:
        self._kube, self._namespace, self._clock = kube, namespace, clock
        self._path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"

    @staticmethod
    def lease_name(token_id: str) -> str:
        return "deployguard-break-glass-" + hashlib.sha256(token_id.encode()).hexdigest()[:20]

    async def use_of(self, token_id: str) -> Use | None:
        """The recorded use of ``token_id``, or None; KubeApiError when the API cannot say."""
        try:
            lease = await self._kube.get(f"{self._path}/{self.lease_name(token_id)}")
        except NotFound:
            return None
        data = (lease.get("metadata") or {}).get("annotations") or {}
        return Use(
            request_uid=str(data.get(_USED + "request-uid", "")),
            what=str(data.get(_USED + "object", "?")),
            used_at=str(data.get(_USED + "used-at", "?")),
            from_version=str(data.get(_USED + "from-resource-version", "")),
        )

    async def record(
        self, token_id: str, request_uid: str, what: str, expires_at: str = "", from_version: str = ""
    ) -> None:
        """Record the use; BreakGlassError if another change used it or it cannot be recorded.

        The same change again is not a replay (``Use.same_change``). ``expires_at`` (the
        token's expiry, ISO 8601) tells ``sweep`` when the record may go."""
        annotations = {
            _USED + "token-id": token_id,
            _USED + "request-uid": request_uid,
            _USED + "object": what,
            _USED + "used-at": self._clock().isoformat(),
        }
        if expires_at:
            annotations[_USED + "expires-at"] = expires_at
        if from_version:
            annotations[_USED + "from-resource-version"] = from_version
        record = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self.lease_name(token_id),
                "namespace": self._namespace,
                "labels": dict(LEDGER_LABELS),
                "annotations": annotations,
            },
            "spec": {"holderIdentity": request_uid},
        }
        try:
            await self._kube.create(self._path, record)
        except AlreadyExists:
            try:
                use = await self.use_of(token_id)
            except KubeApiError as exc:
                raise BreakGlassError(f"single use cannot be recorded, so the token is not accepted: {exc}") from None
            if use is None or not use.same_change(request_uid, from_version):
                raise BreakGlassError(replay_reason(token_id, use)) from None
            if use.request_uid != request_uid:
                log.warning("break-glass token %s: %s tried again from the same version (%s) by request %s; the "
                            "first admission did not persist", token_id, what, from_version, request_uid)  # fmt: skip
        except KubeApiError as exc:
            raise BreakGlassError(f"single use cannot be recorded, so the token is not accepted: {exc}") from None

    async def sweep(self, *, keep_after_expiry: timedelta, max_ttl: timedelta) -> int:
        """Delete the records of tokens that expired more than ``keep_after_expiry`` ago; how many went.

        A record's token expiry is its ``expires-at``, or at the latest ``used-at`` plus the
        longest lifetime a token may have (``max_ttl``). A record that cannot be read is kept:
        deleting one too early would let its token be replayed."""
        selector = ",".join(f"{k}={v}" for k, v in LEDGER_LABELS.items())
        leases = await self._kube.get(self._path, params={"labelSelector": selector})
        now, deleted = self._clock(), 0
        for lease in leases.get("items") or []:
            meta = lease.get("metadata") or {}
            expiry = _expiry(meta.get("annotations") or {}, max_ttl)
            if expiry is None or now < expiry + keep_after_expiry:
                continue
            try:
                await self._kube.delete(
                    f"{self._path}/{meta.get('name')}", resource_version=meta.get("resourceVersion", "")
                )
                deleted += 1
            except KubeApiError as exc:  # gone already (another replica swept it) or changed: next sweep
                log.info("break-glass ledger: %s not deleted: %s", meta.get("name"), exc)
        return deleted

    async def sweep_forever(self, *, interval: float, keep_after_expiry: timedelta, max_ttl: timedelta) -> None:
        """Sweep every ``interval`` seconds (each replica: a lost race is a 404, nothing more)."""
        while True:
            try:
                deleted = await self.sweep(keep_after_expiry=keep_after_expiry, max_ttl=max_ttl)
                if deleted:
                    log.info("break-glass ledger: deleted %d record(s) of expired tokens", deleted)
            except KubeApiError as exc:
                log.warning("break-glass ledger: cannot sweep expired records: %s", exc)
            await asyncio.sleep(interval)


def _expiry(annotations: Mapping[str, Any], max_ttl: timedelta) -> datetime | None:
    """When the recorded token expires (at the latest), or None when the record cannot say."""
    for key, extra in ((_USED + "expires-at", timedelta(0)), (_USED + "used-at", max_ttl)):
        value = annotations.get(key)
        if not isinstance(value, str) or not value:
            continue
        try:
            stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return (stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)) + extra
    return None


def replay_reason(token_id: str, use: Use | None) -> str:
    """The words for a token someone else used first."""
    when, what = (use.used_at, use.what) if use is not None else ("?", "?")
    return f"the token {token_id} was already used at {when} for {what} (break-glass approvals are single use)"


@dataclass(frozen=True)
class LedgerSweep:
    """How often the ledger drops records of expired tokens (break_glass settings)."""

    interval_seconds: float
    keep_after_expiry_seconds: float
    max_ttl_seconds: float


class BreakGlassCommitter:
    """Records the break-glass token an allowed decision relied on (a ``DecisionCommitter``)."""

    name = "break_glass"

    def __init__(self, ledger: BreakGlassLedger | None, sweep: LedgerSweep | None = None) -> None:
        self._ledger, self._sweep = ledger, sweep

    async def maintain(self) -> None:
        """While serving: delete the ledger's records of expired tokens now and then."""
        if self._ledger is None or self._sweep is None or self._sweep.interval_seconds <= 0:
            return
        await self._ledger.sweep_forever(
            interval=self._sweep.interval_seconds,
            keep_after_expiry=timedelta(seconds=self._sweep.keep_after_expiry_seconds),
            max_ttl=timedelta(seconds=self._sweep.max_ttl_seconds),
        )

    async def commit(self, request: AdmissionRequest, decision: Decision, policy_input: dict[str, Any]) -> str | None:
        token_id = next((f.message for f in decision.by_mode(ANNOTATE) if f.rule == TOKEN_ANNOTATION), "")
        if not token_id:
            return None  # the policy did not rely on a break-glass approval
        fact = (policy_input.get("facts") or {}).get("break_glass")
        if not isinstance(fact, Mapping) or fact.get("valid") is not True or fact.get("id") != token_id:
            return f"the policy relied on break-glass token {token_id!r}, which is not the verified one"
        if self._ledger is None:
            return "single use cannot be enforced: deployguard has no Kubernetes API access (kube_api)"
        what = f"{request.kind} {request.namespace}/{request.name}"
        try:
            await self._ledger.record(
                token_id, request.uid, what, str(fact.get("expires") or ""), from_version=from_version(request)
            )
        except BreakGlassError as exc:
            log.warning("break-glass token %s on %s not admitted: %s", token_id, what, exc)
            return f"the break-glass approval on {what} was rejected: {exc}"
        log.warning("BREAK-GLASS USED: token %s recorded as used by request %s for %s", token_id, request.uid, what)
        return None
