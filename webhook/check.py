"""``deployguard check``: evaluate manifests offline exactly as the webhook would.

Each YAML document becomes the AdmissionRequest the API server would send (CREATE,
or UPDATE when ``--old`` holds the same object) and goes through the same reviewer.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from webhook import yaml_limits
from webhook.admission import AdmissionRequest, UserInfo
from webhook.decision import ANNOTATE, Decision
from webhook.errors import DeployguardError
from webhook.reviewer import Outcome, Reviewer


class ManifestError(DeployguardError):
    """A manifest file that cannot be read as Kubernetes objects."""


def read_manifests(path: Path) -> list[dict[str, Any]]:
    """Kubernetes objects from a (multi-document) YAML or JSON file; ``-`` is stdin."""
    try:
        text = path.read_text() if str(path) != "-" else sys.stdin.read()
    except OSError as exc:
        raise ManifestError(f"cannot read {path}: {exc.strerror}") from None
    try:
        docs = [d for d in yaml_limits.safe_load_all(text) if d is not None]
    except yaml_limits.YAMLTooLarge as exc:
        raise ManifestError(f"{path} is refused: {exc}") from None
    except yaml.YAMLError as exc:
        raise ManifestError(f"{path} is not valid YAML: {exc}") from None
    objects: list[dict[str, Any]] = []
    for index, doc in enumerate(docs):
        items = doc.get("items") if isinstance(doc, dict) and str(doc.get("kind", "")).endswith("List") else [doc]
        for item in items or []:
            if not isinstance(item, dict) or not item.get("kind") or not item.get("apiVersion"):
                raise ManifestError(f"{path}: document {index + 1} is not a Kubernetes object (no kind/apiVersion)")
            objects.append(item)
    return objects


def _identity(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    meta = obj.get("metadata") or {}
    return str(obj.get("kind")), str(meta.get("namespace") or "default"), str(meta.get("name") or "")


def admission_request(obj: dict[str, Any], old: dict[str, Any] | None, index: int) -> AdmissionRequest:
    group, _, version = str(obj["apiVersion"]).rpartition("/")
    kind, namespace, name = _identity(obj)
    return AdmissionRequest(
        uid=f"check-{index}",
        operation="UPDATE" if old is not None else "CREATE",
        group=group,
        version=version,
        kind=kind,
        namespace=namespace if kind != "Namespace" else "",
        name=name,
        dry_run=True,
        user=UserInfo(username="deployguard-check"),
        obj=obj,
        old_obj=old,
    )


async def check_objects(
    reviewer: Reviewer, objects: Iterable[dict[str, Any]], old_objects: Iterable[dict[str, Any]] = ()
) -> list[Outcome]:
    olds = {_identity(o): o for o in old_objects}
    return [
        await reviewer.review(admission_request(obj, olds.get(_identity(obj)), n))
        for n, obj in enumerate(objects, start=1)
    ]


def outcome_json(outcome: Outcome) -> dict[str, Any]:
    d = outcome.decision
    return {
        "subject": d.subject,
        "allowed": d.allowed,
        "decision_id": d.decision_id,
        "policy_revision": d.revision,
        "engine": d.engine,
        "change_type": (outcome.policy_input or {}).get("change", {}).get("type"),
        "findings": [
            {"rule": f.rule, "mode": f.mode, "message": f.message, "fix": f.fix}
            for f in d.findings
            if f.mode != ANNOTATE
        ],
        "annotations": decision_annotations(d),
        "notes": list(d.notes),
        "error": d.error or None,
        "message": d.message or None,
    }


def decision_annotations(decision: Decision) -> dict[str, str]:
    """What the policy attached for the audit trail (e.g. risk-score), not findings."""
    return {f.rule: f.message for f in decision.by_mode(ANNOTATE)}


# How each mode reads in text; a mode added later falls back to its own name, never a crash.
MARKS = {"deny": "✗ deny  ", "warn": "! warn  ", "dryrun": "· dryrun"}


def risk_line(notes: Mapping[str, str]) -> str | None:
    """The risk score in one line (rule risk's annotations), if the policy scored the change."""
    if "risk-score" not in notes:
        return None
    level = notes.get("risk-level", "")
    factors = notes.get("risk-factors", "")
    line = f"  risk score {notes['risk-score']}" + (f" ({level})" if level else "")
    return line + (f"; top factors: {factors}" if factors else "")


def outcome_text(outcome: Outcome) -> str:
    d = outcome.decision
    verdict = "ALLOW" if d.allowed else "DENY "
    lines = [f"{verdict} {d.subject}"]
    if d.error:
        lines.append(f"  error: {d.error}")
    for finding in d.findings:
        if finding.mode == ANNOTATE:
            continue
        mark = MARKS.get(finding.mode, f"{finding.mode:8}")
        lines.append(f"  {mark} [{finding.rule}] {finding.message}")
        if finding.fix:
            lines.append(f"           fix: {finding.fix}")
    for note in d.notes:
        lines.append(f"  ! note    {note}")
    notes = decision_annotations(d)
    risk = risk_line(notes)
    if risk:
        lines.append(risk)
    for key, value in notes.items():
        if not key.startswith("risk-"):
            lines.append(f"  · {key}: {value}")
    return "\n".join(lines)
