"""A workload cannot lower its own criticality: its namespace's label counts, the higher wins."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests import factories
from tests.counters import CounterDeltas
from webhook.admission import parse_review
from webhook.config import ChangeSettings
from webhook.facts import runs_inline
from webhook.facts.change import ChangeGatherer
from webhook.facts.rollback import RollbackGatherer
from webhook.governance.change_facts import criticality
from webhook.governance.namespace_labels import NamespaceLabels
from webhook.kube_api import KubeApi, KubeApiError, NotFound
from webhook.policy_input import Subject
from webhook.workloads import ChangeType, WorkloadKinds

LABEL = "deployguard.io/criticality"
LEVELS = ChangeSettings().criticality_levels


class Namespaces(KubeApi):
    """Namespaces by name, counting GETs; ``down`` makes every GET fail as an unreachable API would."""

    def __init__(self, labels: dict[str, dict[str, str]]) -> None:
        self.labels, self.gets, self.down = labels, 0, False

    async def get(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        self.gets += 1
        await asyncio.sleep(0.01)
        if self.down:
            raise KubeApiError("Kubernetes API unreachable")
        name = path.rsplit("/", 1)[-1]
        if name not in self.labels:
            raise NotFound(f"GET {path}: not found")
        return {"metadata": {"name": name, "labels": self.labels[name]}}


@pytest.mark.parametrize(
    ("workload", "namespace", "expected"),
    [
        ("", "critical", "critical"),
        ("low", "critical", "critical"),  # the workload cannot talk its namespace down
        ("critical", "high", "critical"),  # but may raise itself
        ("", "", ""),
        ("weird", "", "weird"),  # unknown values pass through as before (the policy gives them no points)
        ("weird", "high", "high"),
    ],
)
def test_the_higher_criticality_wins(workload: str, namespace: str, expected: str) -> None:
    assert criticality(workload, namespace, LEVELS) == expected


def _subject(namespace: str, labels: dict[str, str] | None = None) -> Subject:
    obj = factories.workload("Deployment", factories.PINNED, namespace=namespace)
    obj["metadata"]["labels"] = labels or {}
    request = parse_review(factories.admission_review(obj))
    template = WorkloadKinds.with_custom().pod_template("apps", "Deployment", request.subject)
    return Subject(request=request, change=ChangeType.CREATE, template=template)


async def test_the_namespace_label_raises_the_change_fact_and_is_then_cached() -> None:
    kube = Namespaces({"payments": {LABEL: "critical"}, "shop": {}})
    gatherer = ChangeGatherer(ChangeSettings(), WorkloadKinds.with_custom(), namespaces=NamespaceLabels(kube))
    subject = _subject("payments", {LABEL: "low"})
    deltas = CounterDeltas()

    assert gatherer.needs_io(subject) and not runs_inline(gatherer, subject)
    facts = await gatherer.gather(subject)
    assert facts["criticality"] == "critical" and facts["namespace_criticality"] == "critical"
    assert not gatherer.needs_io(subject) and runs_inline(gatherer, subject)  # cached: the warm path stays inline
    await gatherer.gather(subject)
    assert kube.gets == 1

    shop = await gatherer.gather(_subject("shop", {LABEL: "high"}))
    assert shop["criticality"] == "high" and shop["namespace_criticality"] == ""
    # needs_io only peeks; each gather is one lookup: payments (miss, hit), shop (miss).
    assert deltas("deployguard_cache_requests_total", cache="namespace_labels", result="miss") == 2
    assert deltas("deployguard_cache_requests_total", cache="namespace_labels", result="hit") == 1


async def test_an_unreadable_namespace_is_unknown_and_the_workload_label_still_counts() -> None:
    kube = Namespaces({})
    kube.down = True
    gatherer = ChangeGatherer(ChangeSettings(), WorkloadKinds.with_custom(), namespaces=NamespaceLabels(kube))
    deltas = CounterDeltas()
    facts = await gatherer.gather(_subject("payments", {LABEL: "high"}))
    assert facts["status"] == "ok" and facts["criticality"] == "high"
    assert facts["namespace_criticality"] == "unknown"
    assert deltas("deployguard_upstream_errors_total", upstream="kubernetes") == 1
    kube.down = False  # up, but no such namespace: an answer, not an upstream error
    await gatherer.gather(_subject("payments", {LABEL: "high"}))
    assert deltas("deployguard_upstream_errors_total", upstream="kubernetes") == 1


async def test_without_a_kubernetes_api_nothing_is_read_and_everything_runs_inline() -> None:
    gatherer = ChangeGatherer(ChangeSettings(), WorkloadKinds.with_custom())
    subject = _subject("payments", {LABEL: "high"})
    assert runs_inline(gatherer, subject)
    facts = await gatherer.gather(subject)
    assert facts["criticality"] == "high" and facts["namespace_criticality"] == ""


async def test_labels_expire_and_concurrent_misses_share_one_get() -> None:
    now = [0.0]
    kube = Namespaces({"payments": {LABEL: "high"}})
    labels = NamespaceLabels(kube, ttl_seconds=60, clock=lambda: now[0])
    results = await asyncio.gather(*(labels.labels("payments") for _ in range(5)))
    assert all(r == {LABEL: "high"} for r in results) and kube.gets == 1
    kube.labels["payments"] = {LABEL: "critical"}
    now[0] = 59.0
    assert labels.cached("payments") == {LABEL: "high"}
    now[0] = 61.0
    assert labels.cached("payments") is None
    assert await labels.labels("payments") == {LABEL: "critical"} and kube.gets == 2


@pytest.mark.parametrize("namespace", ["kube-system/secrets/db", "shop?watch=true", "../../apis", "Shop", "a" * 64])
async def test_a_namespace_that_is_not_a_name_never_reaches_the_kubernetes_api(namespace: str) -> None:
    """The API server sends real namespaces; a body posted to the port by anyone else may not,
    and `/api/v1/namespaces/kube-system/secrets/db` was read with deployguard's credentials."""
    kube = Namespaces({"kube-system": {LABEL: "critical"}})
    gatherer = ChangeGatherer(ChangeSettings(), WorkloadKinds.with_custom(), namespaces=NamespaceLabels(kube))
    deltas = CounterDeltas()
    facts = await gatherer.gather(_subject(namespace, {}))
    assert kube.gets == 0 and facts["namespace_criticality"] == "unknown"
    assert deltas("deployguard_upstream_errors_total", upstream="kubernetes") == 0  # not the API's fault


async def test_the_rollback_lookup_refuses_such_a_namespace_too() -> None:
    kube = Namespaces({})
    new = factories.workload("Deployment", factories.PINNED, namespace="kube-system/secrets/db")
    old = factories.workload("Deployment", "nginx:1.0", namespace="kube-system/secrets/db")
    request = parse_review(factories.admission_review(new, operation="UPDATE", old=old))
    template = WorkloadKinds.with_custom().pod_template("apps", "Deployment", request.subject)
    with pytest.raises(KubeApiError, match="is not a namespace name"):
        await RollbackGatherer(kube).gather(Subject(request=request, change=ChangeType.ROLLOUT, template=template))
    assert kube.gets == 0
