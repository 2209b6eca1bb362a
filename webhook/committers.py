"""Post-decision hooks: make a decision's side effects durable before it is answered. Pure core.

Some facts describe things a decision *uses up* (a single-use break-glass approval).
Using them up while gathering facts would burn them for changes that are then denied
for another reason; so gatherers only verify, and a committer records the use after
the decision, only for an allowed, non-dry-run answer. A committer that cannot record
turns the answer into a deny (fail closed): admitting without the record would let the
same approval admit again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Protocol

from webhook.admission import AdmissionRequest
from webhook.decision import Decision, Finding

log = logging.getLogger("deployguard.committers")


class DecisionCommitter(Protocol):
    """Records what an allowed decision used; says why not when it cannot."""

    name: str  # the rule name a refusal is reported under, e.g. "break_glass"

    async def commit(self, request: AdmissionRequest, decision: Decision, policy_input: dict[str, Any]) -> str | None:
        """None when recorded (or nothing to record); else the reason the change must be denied."""
        ...


async def commit_decision(
    committers: Sequence[DecisionCommitter],
    request: AdmissionRequest,
    decision: Decision,
    policy_input: dict[str, Any] | None,
    deadline: float,
) -> Decision:
    """Run the committers of an allowed, non-dry-run decision before ``deadline`` (``time.perf_counter``).

    A refusal, an error or running out of time denies the change with the reason; the
    memo is not touched (the next request sees the recorded use as a fact)."""
    if not committers or not decision.allowed or request.dry_run or policy_input is None:
        return decision
    refusals: list[Finding] = []
    for committer in committers:
        try:
            reason = await asyncio.wait_for(
                committer.commit(request, decision, policy_input), max(deadline - time.perf_counter(), 0.001)
            )
        except TimeoutError:
            reason = "the use could not be recorded within the request deadline, so it is not accepted"
        except Exception as exc:  # any failure to record fails closed
            log.exception("committer %s failed", committer.name)
            reason = f"the use could not be recorded, so it is not accepted: {type(exc).__name__}: {exc}"
        if reason is not None:
            refusals.append(Finding(rule=committer.name, message=reason, fix=_FIX, mode="deny"))
    if not refusals:
        return decision
    return replace(decision, allowed=False, findings=decision.findings + tuple(refusals))


_FIX = "retry once the Kubernetes API is reachable; a token already used needs a new approval"
