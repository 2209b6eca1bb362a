"""The ``change`` fact: diff features of old vs new for the risk score (no I/O but the clock)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from webhook.config import ChangeSettings
from webhook.governance.change_facts import NO_LABELS, change_facts
from webhook.governance.namespace_labels import NamespaceLabels
from webhook.kube_api import KubeApiError
from webhook.policy_input import Subject
from webhook.workloads import ChangeType, WorkloadKinds, metadata

log = logging.getLogger("deployguard.facts.change")

# Change types that start pods from a new template: the only ones a risk score judges.
_SCORED = (ChangeType.CREATE, ChangeType.ROLLOUT)


def _now() -> datetime:
    return datetime.now(UTC)


class ChangeGatherer:
    """Computes ``input.facts.change`` from the request's old and new objects (and the namespace's labels)."""

    name = "change"

    def __init__(
        self,
        settings: ChangeSettings,
        kinds: WorkloadKinds,
        clock: Callable[[], datetime] = _now,
        namespaces: NamespaceLabels | None = None,
    ) -> None:
        self._settings, self._kinds, self._clock, self._namespaces = settings, kinds, clock, namespaces

    def needs_io(self, subject: Subject) -> bool:
        """Only a namespace whose labels are not cached means I/O; otherwise this runs inline."""
        namespace = subject.request.namespace
        return (
            self._namespaces is not None
            and subject.change in _SCORED
            and bool(namespace)
            and self._namespaces.cached(namespace) is None
        )

    async def _namespace_labels(self, namespace: str) -> Mapping[str, str] | None:
        if self._namespaces is None or not namespace:
            return NO_LABELS
        try:
            return await self._namespaces.labels(namespace)
        except KubeApiError as exc:  # scored on the workload's labels alone; the fact says "unknown"
            log.warning("cannot read the labels of namespace %s: %s", namespace, exc)
            return None

    async def gather(self, subject: Subject) -> Any:
        if subject.change not in _SCORED:
            return {"status": "not-scored", "change": subject.change.value}
        req = subject.request
        namespace_labels = await self._namespace_labels(req.namespace)
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
            namespace_labels=namespace_labels,
        )
