"""Turn the policy's answer into a decision and words for people. Pure.

The engine's raw output is checked here: a decision document of the wrong shape is
an engine error (fail closed), not an empty list of findings.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from webhook.errors import EngineError

MODES = ("deny", "warn", "dryrun")
# The decision document's optional ``annotations`` object (e.g. the risk score) travels
# with the findings, as findings of this mode, so the decision memo keeps it too; they
# never block and end up in the response's auditAnnotations.
ANNOTATE = "annotate"


@dataclass(frozen=True)
class Finding:
    """One rule that fired, with what to do about it."""

    rule: str
    message: str
    fix: str = ""
    mode: str = "deny"  # deny | warn | dryrun: where the policy sorted it

    def text(self) -> str:
        fix = f" Fix: {self.fix}" if self.fix else ""
        return f"[{self.rule}] {self.message.rstrip('.')}.{fix}"


@dataclass(frozen=True)
class Decision:
    """What deployguard answers, and everything needed to explain and log it."""

    decision_id: str
    allowed: bool
    subject: str  # e.g. 'Deployment shop/web'
    findings: tuple[Finding, ...] = ()
    notes: tuple[str, ...] = ()  # deployguard's own remarks (unknown kind, unsupported field)
    error: str = ""  # engine failure, when there was one
    revision: str = ""
    engine: str = ""
    extra_annotations: Mapping[str, str] = field(default_factory=dict)

    def by_mode(self, mode: str) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.mode == mode)

    @property
    def warnings(self) -> list[str]:
        """Lines kubectl prints as ``Warning: …``."""
        return [f.text() for f in self.by_mode("warn")] + list(self.notes)

    @property
    def message(self) -> str:
        """The deny text kubectl prints after 'denied the request:'."""
        if self.allowed:
            return ""
        head = f"deployguard denied {self.subject} (decision {self.decision_id}"
        head += f", policy revision {self.revision})" if self.revision else ")"
        if self.error:
            return (
                f"{head}: the policies could not be evaluated, so the change is refused rather than "
                f"let through unchecked: {self.error}. Retry; if it persists, the platform team can "
                "look this decision id up in the deployguard decision log."
            )
        lines = [f.text() for f in self.by_mode("deny")]
        return head + ":\n" + "\n".join(lines) if len(lines) > 1 else f"{head}: {lines[0]}"

    @property
    def audit_annotations(self) -> dict[str, str]:
        annotations = {"decision-id": self.decision_id, "policy-revision": self.revision or "none"}
        annotations.update({f.rule: f.message for f in self.by_mode(ANNOTATE)})
        annotations.update(self.extra_annotations)
        return annotations


def parse_findings(raw: Any) -> tuple[Finding, ...]:
    """Validate ``data.deployguard.decision`` and return its findings in order."""
    if not isinstance(raw, Mapping):
        raise EngineError(f"data.deployguard.decision must be an object, got {type(raw).__name__}")
    findings = []
    for mode in MODES:
        items = raw.get(mode, [])
        if not isinstance(items, list):
            raise EngineError(f"data.deployguard.decision.{mode} must be an array, got {type(items).__name__}")
        for item in items:
            if not isinstance(item, Mapping) or not isinstance(item.get("message"), str):
                raise EngineError(f"a finding in decision.{mode} has no 'message' string: {item!r:.200}")
            findings.append(
                Finding(
                    rule=str(item.get("rule") or "unnamed"),
                    message=item["message"],
                    fix=str(item.get("fix") or ""),
                    mode=mode,
                )
            )
    extra = raw.get("annotations", {})
    if not isinstance(extra, Mapping):
        raise EngineError(f"data.deployguard.decision.annotations must be an object, got {type(extra).__name__}")
    for key, value in sorted(extra.items()):
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))
        findings.append(Finding(rule=str(key), message=text, mode=ANNOTATE))
    return tuple(findings)


def decide(
    *,
    decision_id: str,
    subject: str,
    findings: tuple[Finding, ...],
    notes: tuple[str, ...] = (),
    revision: str = "",
    engine: str = "",
) -> Decision:
    """Deny if any finding is in deny mode; warn and dryrun findings never block."""
    return Decision(
        decision_id=decision_id,
        allowed=not any(f.mode == "deny" for f in findings),
        subject=subject,
        findings=findings,
        notes=notes,
        revision=revision,
        engine=engine,
    )


def engine_failure(
    *, decision_id: str, subject: str, error: str, fail_open: bool, revision: str, engine: str
) -> Decision:
    """An evaluation that failed: denied, unless an operator chose the unsafe fail-open mode."""
    notes: tuple[str, ...] = ()
    if fail_open:
        notes = (
            f"deployguard could not evaluate its policies ({error}); admitted unchecked because "
            "policy.unsafe_fail_open is set",
        )
    return Decision(
        decision_id=decision_id,
        allowed=fail_open,
        subject=subject,
        notes=notes,
        error=error,
        revision=revision,
        engine=engine,
    )
