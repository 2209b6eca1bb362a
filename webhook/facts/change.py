"""The ``change`` fact: diff features of old vs new for the risk score (no I/O but the clock)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from webhook.change_facts import change_facts
from webhook.config import ChangeSettings
from webhook.policy_input import Subject
from webhook.workloads import ChangeType, WorkloadKinds, metadata

# Change types that start pods from a new template: the only ones a risk score judges.
_SCORED = (ChangeType.CREATE, ChangeType.ROLLOUT)


def _now() -> datetime:
    return datetime.now(UTC)


class ChangeGatherer:
    """Computes ``input.facts.change`` from the request's old and new objects."""

    name = "change"
    eager = True  # no I/O: runs inline (webhook/facts/__init__.py)

    def __init__(self, settings: ChangeSettings, kinds: WorkloadKinds, clock: Callable[[], datetime] = _now) -> None:
        self._settings, self._kinds, self._clock = settings, kinds, clock

    async def gather(self, subject: Subject) -> Any:
        if subject.change not in _SCORED:
            return {"status": "not-scored", "change": subject.change.value}
        req = subject.request
        meta = metadata(req.subject)
        labels: dict[str, str] = {}
        for key in ("annotations", "labels"):
            value = meta.get(key)
            if isinstance(value, dict):
                labels.update({str(k): str(v) for k, v in value.items()})
        old_template = self._kinds.pod_template(req.group, req.kind, req.old_obj)
        return change_facts(
            req.old_obj,
            req.obj,
            old_template,
            subject.template,
            labels=labels,
            now=self._clock(),
            settings=self._settings,
        )
