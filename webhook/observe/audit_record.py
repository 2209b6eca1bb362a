"""The decision record: one JSON object per answer, for the audit trail. Pure.

It answers "who deployed what, when, and which rule let it through": identity,
object, change type, release id, images with digests and verified authorities,
findings with rule and mode, risk, break-glass claims, policy revision, latency.
Facts from other gatherers (``images``, ``risk``, ``exceptions``) are read
defensively: a fact that is absent, unknown or shaped differently leaves its
field empty rather than breaking the log line.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from webhook.admission import AdmissionRequest
from webhook.decision import Decision

# Where a release id may be declared (the release_id rule's defaults).
RELEASE_LABELS = ("app.kubernetes.io/version",)
RELEASE_ANNOTATIONS = ("deployguard.io/release-id",)


def utc_now() -> str:
    """Now as 2026-11-27T20:44:00.123Z (one call per decision, hence the cached second)."""
    now = time.time()
    second = int(now)
    return f"{_utc_second(second)}.{int((now - second) * 1000):03d}Z"


@functools.lru_cache(maxsize=4)
def _utc_second(second: int) -> str:
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _known(fact: Any) -> dict[str, Any]:
    """A fact's value, or {} when absent, not a mapping, or unknown."""
    fact = _dict(fact)
    return {} if fact.get("status") == "unknown" else fact


def release_id(policy_input: Mapping[str, Any]) -> str | None:
    """The first release label/annotation set on the workload or its pod template."""
    workload = _dict(policy_input.get("workload"))
    for key in ("labels", "template_labels"):
        for label in RELEASE_LABELS:
            value = _dict(workload.get(key)).get(label)
            if value:
                return str(value)
    for key in ("annotations", "template_annotations"):
        for annotation in RELEASE_ANNOTATIONS:
            value = _dict(workload.get(key)).get(annotation)
            if value:
                return str(value)
    return None


def _image_facts(facts: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per-image entries of the images fact, whatever container it comes in."""
    fact = facts.get("images")
    if isinstance(fact, list):
        return [e for e in fact if isinstance(e, dict)]
    fact = _known(fact)
    for key in ("images", "results", "entries"):
        if isinstance(fact.get(key), list):
            return [e for e in fact[key] if isinstance(e, dict)]
    entries = []
    for name, value in fact.items():
        if isinstance(value, dict):
            entries.append({"image": name, **value})
    return entries


def _authorities(entry: Mapping[str, Any]) -> list[str]:
    found: list[str] = []
    for key in ("verified_authorities", "authorities", "verified_by"):
        value = entry.get(key)
        if isinstance(value, list):
            found += [str(v.get("name", v)) if isinstance(v, dict) else str(v) for v in value]
    signatures = _dict(entry.get("signatures")).get("verified") if isinstance(entry.get("signatures"), dict) else None
    if isinstance(signatures, list):
        found += [str(v.get("authority", v)) if isinstance(v, dict) else str(v) for v in signatures]
    if isinstance(entry.get("signatures"), list):
        for sig in entry["signatures"]:
            if isinstance(sig, dict) and sig.get("verified") is True:
                found.append(str(sig.get("authority") or sig.get("identity") or sig.get("key") or "verified"))
    return list(dict.fromkeys(found))


def images(policy_input: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each container's image, its digest (pinned or resolved) and who verified it."""
    facts = _dict(policy_input.get("facts"))
    by_image: dict[str, dict[str, Any]] = {}
    by_container: dict[str, dict[str, Any]] = {}
    for entry in _image_facts(facts):
        if entry.get("image"):
            by_image[str(entry["image"])] = entry
        if entry.get("container"):
            by_container[str(entry["container"])] = entry
    result = []
    for image in policy_input.get("images") or []:
        if not isinstance(image, dict):
            continue
        ref = _dict(image.get("ref"))
        fact = by_container.get(str(image.get("container"))) or by_image.get(str(image.get("image"))) or {}
        digest = ref.get("digest") or fact.get("digest") or fact.get("resolved_digest") or ref.get("resolved_digest")
        result.append(
            {
                "container": image.get("container"),
                "image": image.get("image"),
                "name": ref.get("name") or None,
                "digest": digest or None,
                "verified_authorities": _authorities(fact),
            }
        )
    return result


def risk(facts: Mapping[str, Any]) -> dict[str, Any] | None:
    """Risk score and factors, from a ``risk`` fact (or ``change.risk``) when present."""
    for fact in (_known(facts.get("risk")), _dict(_known(facts.get("change")).get("risk"))):
        if "score" in fact:
            return {"score": fact.get("score"), "factors": fact.get("factors", [])}
    return None


def break_glass(facts: Mapping[str, Any]) -> dict[str, Any] | None:
    """The break-glass claims a request carried (verified or not), when any."""
    for name in ("exceptions", "break_glass", "breakglass"):
        fact = _dict(facts.get(name))
        if fact and fact.get("status") != "absent" and fact.get("present", True) is not False:
            return fact
    return None


def freezes_active(facts: Mapping[str, Any]) -> list[str] | None:
    """Names of the freezes in force, from the ``windows`` fact; None when there is no such fact."""
    fact = _known(facts.get("windows"))
    if not fact:
        return None
    for key in ("active_freezes", "freezes_active"):
        if isinstance(fact.get(key), list):
            return [str(f.get("name", f)) if isinstance(f, dict) else str(f) for f in fact[key]]
    if isinstance(fact.get("freezes"), list):
        return [str(f.get("name", "")) for f in fact["freezes"] if isinstance(f, dict) and f.get("active") is True]
    return None


def request_fields(request: AdmissionRequest) -> dict[str, Any]:
    """Who asked for what: the part of a record every webhook's answer shares."""
    return {
        "uid": request.uid,
        "user": request.user.username,
        "groups": list(request.user.groups),
        "operation": request.operation,
        "kind": request.kind,
        "group": request.group,
        "version": request.version,
        "namespace": request.namespace,
        "name": request.name,
        "dry_run": request.dry_run,
    }


def decision_record(
    *,
    request: AdmissionRequest,
    decision: Decision,
    policy_input: Mapping[str, Any] | None,
    change_type: str | None,
    elapsed: float,
    memo_hit: bool = False,
) -> dict[str, Any]:
    """The audit line for one answered request."""
    policy_input = policy_input or {}
    facts = _dict(policy_input.get("facts"))
    return {
        "time": utc_now(),
        "decision_id": decision.decision_id,
        **request_fields(request),
        "change_type": change_type,
        "release_id": release_id(policy_input),
        "images": images(policy_input),
        "findings": [{"rule": f.rule, "mode": f.mode, "message": f.message} for f in decision.findings],
        "risk": risk(facts),
        "break_glass": break_glass(facts),
        "freezes_active": freezes_active(facts),
        "unknown_facts": sorted(n for n, f in facts.items() if isinstance(f, dict) and f.get("status") == "unknown"),
        "notes": list(decision.notes),
        "allowed": decision.allowed,
        "outcome": outcome_of(decision),
        "error": decision.error or None,
        "engine": decision.engine,
        "policy_revision": decision.revision,
        "memo_hit": memo_hit,
        "latency_ms": round(elapsed * 1000, 3),
    }


def mutation_record(
    *, request: AdmissionRequest, decision_id: str, ops: list[dict[str, Any]], reason: str, elapsed: float
) -> dict[str, Any]:
    """The audit line for one /mutate answer: which image references deployguard rewrote.

    ``webhook: mutate`` tells it from the validating webhook's record of the same change;
    it is always allowed (the validating webhook judges), and carries no ``images`` so that
    "deploys of a digest" counts only what the validating webhook admitted."""
    replaced = [op for op in ops if op.get("op") == "replace"]
    tested = {op["path"]: op.get("value") for op in ops if op.get("op") == "test"}
    return {
        "time": utc_now(),
        "decision_id": decision_id,
        "webhook": "mutate",
        **request_fields(request),
        "patched": [{"path": op["path"], "from": tested.get(op["path"]), "to": op.get("value")} for op in replaced],
        "reason": reason or None,
        "allowed": True,
        "outcome": "mutated" if replaced else "unchanged",
        "latency_ms": round(elapsed * 1000, 3),
    }


def outcome_of(decision: Decision) -> str:
    """allowed | warned | denied | error: the label metrics and queries group by."""
    if decision.error:
        return "error"
    if not decision.allowed:
        return "denied"
    return "warned" if decision.warnings else "allowed"


def rejection_record(*, decision_id: str, reason: str, status: int, engine: str, revision: str) -> dict[str, Any]:
    """The audit line for a malformed call (answered with an HTTP error)."""
    return {
        "time": utc_now(),
        "decision_id": decision_id,
        "rejected": True,
        "http_status": status,
        "error": reason,
        "allowed": None,
        "outcome": "error",
        "engine": engine,
        "policy_revision": revision,
    }
