"""The core: an admission request in, a decision out. Knows nothing about HTTP.

parse (done by the caller) → classify → gather facts concurrently → evaluate (or
answer from the memo) → decide → log, all under one deadline. Every path ends in
exactly one decision log line.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from webhook.admission import AdmissionRequest, review_response
from webhook.committers import DecisionCommitter, commit_decision
from webhook.config import AdmissionSettings, PolicySettings
from webhook.decision import Decision, decide, engine_failure, parse_findings
from webhook.engines import PolicyEngine
from webhook.errors import EngineError
from webhook.facts import FactGatherer, gather_facts
from webhook.input_limits import entries_over_limit, string_over_limit, template_over_limits
from webhook.memo import DecisionMemo, memo_key
from webhook.observe.audit_record import decision_record, rejection_record
from webhook.observe.decision_log import DecisionLog
from webhook.observe.observers import DecisionObserver, notify
from webhook.policy_input import Subject, build_policy_input
from webhook.workloads import (
    ChangeType,
    WorkloadKinds,
    classify_change,
    created_by_controller,
    unsupported_features,
)

log = logging.getLogger("deployguard.reviewer")


@dataclass(frozen=True)
class Outcome:
    """A decision, the policy input it was made on, and the AdmissionReview answer."""

    decision: Decision
    policy_input: dict[str, Any] | None
    response: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase, for metrics
    memo_hit: bool = False


def new_decision_id() -> str:
    """16 hex characters that tie an answer to its log line; unique, not secret (so not os.urandom,
    a system call per request)."""
    return f"{random.getrandbits(64):016x}"


class Reviewer:
    """Decides admission requests with one policy engine."""

    def __init__(
        self,
        engine: PolicyEngine,
        *,
        admission: AdmissionSettings,
        policy: PolicySettings,
        log: DecisionLog,
        gatherers: Sequence[FactGatherer] = (),
        memo: DecisionMemo | None = None,
        observers: Sequence[DecisionObserver] = (),
        committers: Sequence[DecisionCommitter] = (),
    ) -> None:
        self.engine = engine
        self.gatherers = tuple(gatherers)
        self.memo = memo if memo is not None else DecisionMemo()
        self.kinds = WorkloadKinds.with_custom(admission.custom_kinds)
        self._admission = admission
        self._fail_open = policy.unsafe_fail_open
        self._log = log
        self.observers = list(observers)  # metrics, Events, traces; appended to at start-up
        self.committers = tuple(committers)  # record what an allowed decision used up (break-glass)

    async def review(self, request: AdmissionRequest) -> Outcome:
        started = time.perf_counter()
        decision_id = new_decision_id()
        subject_name = f"{request.kind} {request.display_name}".strip()
        policy_input: dict[str, Any] | None = None
        change: ChangeType | None = None
        timings: dict[str, float] = {}
        memo_hit = False
        known = self.kinds.knows(request.group, request.kind)
        template = self.kinds.pod_template(request.group, request.kind, request.subject) if known else None
        if not known:
            decision = decide(
                decision_id=decision_id,
                subject=subject_name,
                findings=(),
                notes=(
                    f"deployguard does not know where {request.kind} ({request.group or 'core'}) keeps its pod "
                    "template, so it was admitted without checks; add it to admission.custom_kinds to check it",
                ),
                revision=self.engine.revision,
                engine=self.engine.name,
            )
        elif (
            oversized := template_over_limits(
                template,
                max_containers=self._admission.max_containers,
                max_image_chars=self._admission.max_image_reference_chars,
            )
            or entries_over_limit(request, template, self._admission.max_map_entries)
        ) is not None:
            decision = decide(
                decision_id=decision_id,
                subject=subject_name,
                findings=(oversized,),
                revision=self.engine.revision,
                engine=self.engine.name,
            )
        else:
            change = classify_change(
                request.operation, self.kinds, request.group, request.kind, request.obj, request.old_obj
            )
            if created_by_controller(
                request.operation, request.user.username, request.obj, self._admission.controller_users
            ):
                change = ChangeType.REPLICA
            notes = tuple(unsupported_features(request.group, request.kind, request.subject))
            subject = Subject(request=request, change=change, template=template)
            policy_input = build_policy_input(subject)
            timings["classify"] = time.perf_counter() - started
            deadline = started + self._admission.deadline_seconds
            # Facts get the deadline minus a reserve for evaluation; evaluation gets the rest.
            reserve = min(1.0, self._admission.deadline_seconds / 4)
            facts, fact_timings = await gather_facts(self.gatherers, subject, deadline - reserve - time.perf_counter())
            timings.update(fact_timings)
            policy_input["facts"] = facts
            rollback = facts.get("rollback")
            if change is ChangeType.ROLLOUT and isinstance(rollback, dict) and rollback.get("rollback") is True:
                # The emergency path: freezes and error budgets let rollbacks through.
                change = ChangeType.ROLLBACK
                policy_input["change"]["type"] = change.value
                log.warning(
                    "%s is a rollback to revision %s: classified as rollback", subject_name, rollback.get("revision")
                )
            evaluated = time.perf_counter()
            decision, memo_hit = await self._evaluate(
                decision_id, subject_name, policy_input, notes, deadline - evaluated
            )
            timings["evaluate"] = time.perf_counter() - evaluated
            # Only now, and only for an admitted change, is a single-use approval used up;
            # failing to record it denies (fail closed), inside the same deadline.
            decision = await commit_decision(self.committers, request, decision, policy_input, deadline)
        elapsed = time.perf_counter() - started
        timings["total"] = elapsed
        self._record(request, decision, policy_input, change, elapsed, timings, memo_hit)
        response = review_response(
            request.uid,
            allowed=decision.allowed,
            message=decision.message,
            warnings=decision.warnings,
            audit_annotations=decision.audit_annotations,
        )
        return Outcome(
            decision=decision, policy_input=policy_input, response=response, timings=timings, memo_hit=memo_hit
        )

    async def _evaluate(
        self, decision_id: str, subject: str, policy_input: dict[str, Any], notes: tuple[str, ...], budget: float
    ) -> tuple[Decision, bool]:
        revision = self.engine.revision
        key = memo_key(revision, policy_input)
        findings = self.memo.get(key)
        hit = findings is not None
        try:
            if findings is None:
                # Only on a miss: a memo hit is an input that passed this check before.
                oversized = string_over_limit(policy_input, self._admission.max_string_bytes)
                if oversized is not None:
                    findings = (oversized,)
                else:
                    findings = parse_findings(await self._run_engine(policy_input, max(budget, 0.001)))
                if self.engine.revision == revision:
                    self.memo.put(key, findings)
        except (EngineError, TimeoutError) as exc:
            deadline = self._admission.deadline_seconds
            error = str(exc) or f"policy evaluation did not finish within the {deadline:g} s deadline"
            return engine_failure(
                decision_id=decision_id,
                subject=subject,
                error=error,
                fail_open=self._fail_open,
                revision=revision,
                engine=self.engine.name,
            ), False
        return decide(
            decision_id=decision_id,
            subject=subject,
            findings=findings,
            notes=notes,
            revision=revision,
            engine=self.engine.name,
        ), hit

    async def _run_engine(self, policy_input: dict[str, Any], budget: float) -> dict[str, Any]:
        """The engine's decision document within ``budget`` seconds, or TimeoutError.

        An in-process engine (one with ``evaluate_sync``) runs to its end once started:
        nothing preempts its C code, so a Task and a timer around it would only add
        cost. Its answer counts only if it came within the budget; a late one is a
        timeout like any other (fail closed unless configured otherwise), never an allow.
        """
        evaluate_sync = getattr(self.engine, "evaluate_sync", None)
        if evaluate_sync is None:
            return await asyncio.wait_for(self.engine.evaluate(policy_input), budget)
        started = time.perf_counter()
        raw: dict[str, Any] = evaluate_sync(policy_input)
        if time.perf_counter() - started > budget:
            raise TimeoutError
        return raw

    def _record(
        self,
        request: AdmissionRequest,
        decision: Decision,
        policy_input: dict[str, Any] | None,
        change: ChangeType | None,
        elapsed: float,
        timings: dict[str, float],
        memo_hit: bool,
    ) -> None:
        record = decision_record(
            request=request,
            decision=decision,
            policy_input=policy_input,
            change_type=change.value if change else None,
            elapsed=elapsed,
            memo_hit=memo_hit,
        )
        self._log.write(record)
        notify(self.observers, record, timings)

    def record_rejection(self, reason: str, status: int) -> str:
        """Log a malformed call: answered with an HTTP error, but still accounted for."""
        decision_id = new_decision_id()
        record = rejection_record(
            decision_id=decision_id,
            reason=reason,
            status=status,
            engine=self.engine.name,
            revision=self.engine.revision,
        )
        self._log.write(record)
        notify(self.observers, record, {})
        return decision_id
