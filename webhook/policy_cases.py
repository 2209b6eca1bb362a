"""Policy case files: an object (and optional old object and recorded facts) → expected decision.

Rego unit tests check one rule on a hand-built input. A case checks the whole path a
real request takes (classification, policy input, every rule, the decision) on a
manifest as people write it, so a security team can change a policy and see which
real deploys it would now deny, with no cluster and no registry or Prometheus: the
case's ``facts`` replace what the gatherers would have found (no gatherer runs).

A case file is YAML (``*.yaml``/``*.yml``, one case per document, or one document
``cases: [...]`` so that YAML anchors can share an object between cases) or JSON::

    name: a tag-only image is denied
    object: {apiVersion: apps/v1, kind: Deployment, ...}
    old_object: {...}            # optional: the request is an UPDATE
    operation: DELETE            # optional: CREATE (or UPDATE with old_object) by default
    user: {username: alice, groups: [devs]}   # optional
    facts: {images: {...}, budgets: {...}}    # optional: input.facts, as recorded
    expect:
      allowed: false
      deny: [digest_pinning]     # optional: exactly these rules deny
      warn: [release_id]         # optional: exactly these rules warn (dryrun likewise)
      annotations: {risk-level: low}   # optional: these auditAnnotations, others ignored

Case files live beside the policies, not inside them: ``opa test policies/`` loads
every YAML and JSON file below the folder as data, and two cases would conflict there.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson
import yaml

from webhook import yaml_limits
from webhook.admission import UserInfo
from webhook.check import _identity, admission_request, decision_annotations
from webhook.config import Settings
from webhook.decision import ANNOTATE
from webhook.engines import PolicyEngine
from webhook.errors import DeployguardError
from webhook.facts import FactGatherer
from webhook.observe.decision_log import DecisionLog
from webhook.policy_input import Subject
from webhook.reviewer import Outcome, Reviewer

CASE_SUFFIXES = (".yaml", ".yml", ".json")
EXPECT_MODES = ("deny", "warn", "dryrun")
CASES_DIR_NAME = "policy-cases"
_CASE_KEYS = {"name", "description", "object", "old_object", "operation", "user", "facts", "expect"}
_EXPECT_KEYS = {"allowed", "annotations", *EXPECT_MODES}


class CaseError(DeployguardError):
    """A case file that cannot be read as cases."""


@dataclass(frozen=True)
class PolicyCase:
    """One case: what is admitted, the facts it is judged on, and what must come out."""

    name: str
    source: str  # file:document, for messages
    obj: dict[str, Any] | None
    old_obj: dict[str, Any] | None = None
    operation: str = ""
    user: UserInfo = field(default_factory=lambda: UserInfo(username="deployguard-policy-test"))
    facts: Mapping[str, Any] = field(default_factory=dict)
    allowed: bool = True
    rules: Mapping[str, frozenset[str]] = field(default_factory=dict)  # mode -> exactly these rules
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CaseResult:
    """A case and what went wrong (nothing when it passed)."""

    case: PolicyCase
    problems: tuple[str, ...]
    decision_id: str = ""

    @property
    def passed(self) -> bool:
        return not self.problems


class RecordedFact:
    """A fact gatherer that returns what was recorded: the case's facts instead of real I/O."""

    def __init__(self, name: str, value: Any) -> None:
        self.name = name
        self.value = value

    async def gather(self, subject: Subject) -> Any:
        return copy.deepcopy(self.value)


def default_cases_dir(policy_dir: Path) -> Path:
    """Where cases live by convention: a ``policy-cases`` folder beside the policy folder."""
    return policy_dir.resolve().parent / CASES_DIR_NAME


def _object(doc: Mapping[str, Any], key: str, where: str) -> dict[str, Any] | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, dict) or not value.get("kind") or not value.get("apiVersion"):
        raise CaseError(f"{where}: {key} must be a Kubernetes object with kind and apiVersion")
    return value


def _rule_set(value: Any, where: str) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise CaseError(f"{where} must be a list of rule names")
    return frozenset(value)


def parse_case(doc: Any, where: str) -> PolicyCase:
    """Validate one case document; every mistake is reported with its file and document."""
    if not isinstance(doc, dict):
        raise CaseError(f"{where}: a case must be a mapping, got {type(doc).__name__}")
    unknown = sorted(set(doc) - _CASE_KEYS)
    if unknown:
        raise CaseError(f"{where}: unknown keys {', '.join(unknown)} (allowed: {', '.join(sorted(_CASE_KEYS))})")
    expect = doc.get("expect")
    if not isinstance(expect, dict) or not isinstance(expect.get("allowed"), bool):
        raise CaseError(f"{where}: expect.allowed (true or false) is required")
    unknown = sorted(set(expect) - _EXPECT_KEYS)
    if unknown:
        raise CaseError(f"{where}: unknown keys in expect: {', '.join(unknown)}")
    obj, old = _object(doc, "object", where), _object(doc, "old_object", where)
    operation = str(doc.get("operation") or ("UPDATE" if old is not None else "CREATE")).upper()
    if operation not in ("CREATE", "UPDATE", "DELETE", "CONNECT"):
        raise CaseError(f"{where}: operation must be CREATE, UPDATE, DELETE or CONNECT")
    if obj is None and not (operation == "DELETE" and old is not None):
        raise CaseError(f"{where}: object is required (or operation DELETE with old_object)")
    facts = doc.get("facts") or {}
    if not isinstance(facts, dict):
        raise CaseError(f"{where}: facts must be a mapping of fact name to recorded value")
    user = doc.get("user") or {}
    if not isinstance(user, dict):
        raise CaseError(f"{where}: user must be a mapping with username and groups")
    notes = expect.get("annotations") or {}
    if not isinstance(notes, dict):
        raise CaseError(f"{where}: expect.annotations must be a mapping")
    return PolicyCase(
        name=str(doc.get("name") or where),
        source=where,
        obj=obj,
        old_obj=old,
        operation=operation,
        user=UserInfo(
            username=str(user.get("username", "deployguard-policy-test")),
            groups=tuple(str(g) for g in user.get("groups") or ()),
        ),
        facts=facts,
        allowed=expect["allowed"],
        rules={m: _rule_set(expect[m], f"{where}: expect.{m}") for m in EXPECT_MODES if m in expect},
        annotations={str(k): str(v) for k, v in notes.items()},
    )


def load_cases(directory: Path) -> list[PolicyCase]:
    """Every case below ``directory`` (sorted by path, documents in file order)."""
    if not directory.is_dir():
        raise CaseError(f"case directory {directory} does not exist")
    cases: list[PolicyCase] = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix in CASE_SUFFIXES):
        rel = path.relative_to(directory).as_posix()
        try:
            text = path.read_text()
            docs = [orjson.loads(text)] if path.suffix == ".json" else list(yaml_limits.safe_load_all(text))
        except (OSError, ValueError, yaml.YAMLError) as exc:
            raise CaseError(f"cannot read case file {rel}: {exc}") from None
        docs = [d for d in docs if d is not None]
        if len(docs) == 1 and isinstance(docs[0], dict) and set(docs[0]) == {"cases"}:
            docs = docs[0]["cases"] if isinstance(docs[0]["cases"], list) else [docs[0]["cases"]]
        for index, doc in enumerate(docs, start=1):
            cases.append(parse_case(doc, f"{rel}#{index}" if len(docs) > 1 else rel))
    return cases


def compare(case: PolicyCase, outcome: Outcome) -> tuple[str, ...]:
    """What differs between the case's expectation and the decision. Pure."""
    d = outcome.decision
    problems = []
    if d.error:
        problems.append(f"the policies could not be evaluated: {d.error}")
    if d.allowed != case.allowed:
        problems.append(
            f"expected {'allowed' if case.allowed else 'denied'}, got {'allowed' if d.allowed else 'denied'}"
        )
    for mode, expected in case.rules.items():
        got = frozenset(f.rule for f in d.by_mode(mode))
        if got != expected:
            problems.append(f"expected {mode} rules [{', '.join(sorted(expected))}], got [{', '.join(sorted(got))}]")
    got_notes = decision_annotations(d)
    for key, value in case.annotations.items():
        if got_notes.get(key) != value:
            problems.append(f"expected annotation {key}={value}, got {got_notes.get(key, '(absent)')}")
    if problems:
        problems += [f"  {f.mode} [{f.rule}] {f.message}" for f in d.findings if f.mode != ANNOTATE]
    return tuple(problems)


async def run_case(engine: PolicyEngine, settings: Settings, case: PolicyCase) -> CaseResult:
    """Review the case's request exactly as the webhook would, on the recorded facts only."""
    gatherers: list[FactGatherer] = [RecordedFact(name, value) for name, value in case.facts.items()]
    reviewer = Reviewer(
        engine,
        admission=settings.admission,
        policy=settings.policy,
        log=DecisionLog(stream=io.StringIO()),
        gatherers=gatherers,
    )
    subject = case.obj if case.obj is not None else case.old_obj
    assert subject is not None  # parse_case guarantees one of them
    request = admission_request(subject, case.old_obj, 1)
    request = replace(
        request,
        uid=f"case-{case.name}"[:60],
        operation=case.operation,
        obj=case.obj,
        user=case.user,
    )
    outcome = await reviewer.review(request)
    return CaseResult(case, compare(case, outcome), outcome.decision.decision_id)


async def run_cases(engine: PolicyEngine, settings: Settings, cases: Sequence[PolicyCase]) -> list[CaseResult]:
    """Every case, in order, on one loaded engine."""
    return [await run_case(engine, settings, case) for case in cases]


def recorded_case(outcome: Outcome, obj: Mapping[str, Any], old: Mapping[str, Any] | None) -> dict[str, Any]:
    """A case document from a real review: its object, the facts gathered, the decision as expected."""
    d = outcome.decision
    expect: dict[str, Any] = {"allowed": d.allowed}
    for mode in EXPECT_MODES:
        expect[mode] = sorted({f.rule for f in d.by_mode(mode)})
    doc: dict[str, Any] = {"name": f"recorded: {d.subject}", "object": dict(obj)}
    if old is not None:
        doc["old_object"] = dict(old)
    doc["facts"] = (outcome.policy_input or {}).get("facts", {})
    doc["expect"] = expect
    return doc


def write_recorded_cases(
    path: Path, outcomes: Sequence[Outcome], objects: Sequence[dict[str, Any]], old_objects: Sequence[dict[str, Any]]
) -> None:
    """Write one case per checked object (``deployguard check --record-case``), to edit and keep."""
    olds = {_identity(o): o for o in old_objects}
    docs = [
        recorded_case(outcome, obj, olds.get(_identity(obj))) for outcome, obj in zip(outcomes, objects, strict=True)
    ]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    except OSError as exc:
        raise CaseError(f"cannot write {path}: {exc.strerror}") from None
