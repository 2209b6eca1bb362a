"""/metrics after a mixed batch: counters and histograms move by exactly what was sent."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.factories import PINNED, admission_review, workload
from webhook.observe.metrics import LATENCY_BUCKETS, MetricsEndpoint, MetricsObserver, PolicyRevisionGauge
from webhook.reviewer import Reviewer
from webhook.server import create_app

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: TestClient) -> Samples:
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    samples: Samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def client(reviewer: Reviewer) -> TestClient:
    reviewer.observers.append(MetricsObserver())
    gauge = PolicyRevisionGauge(lambda: reviewer.engine.revision, reviewer.engine.name, lambda: "")
    return TestClient(create_app(reviewer, None, max_body_bytes=64 * 1024, metrics=MetricsEndpoint((gauge,))))


def test_a_mixed_batch_moves_the_counters_and_histograms(client: TestClient, reviewer: Reviewer) -> None:
    before = scrape(client)
    batch = [
        admission_review(workload("Deployment", PINNED)),  # allowed
        admission_review(workload("Deployment", PINNED)),  # allowed (memo hit)
        admission_review(workload("Deployment", "nginx:latest")),  # denied: digest_pinning
        admission_review(workload("StatefulSet", "nginx:1.27"), dry_run=True),  # denied, dry-run
        admission_review(workload("Deployment", PINNED, version_label=False)),  # warned: release_id
        admission_review(workload("Deployment", PINNED), operation="UPDATE", old=workload("Deployment", PINNED)),
    ]
    for doc in batch:
        assert client.post("/validate", json=doc).status_code == 200
    malformed = client.post("/validate", content=b"not json", headers={"content-type": "application/json"})
    assert malformed.status_code == 400

    after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    requests = "deployguard_admission_requests_total"
    assert delta(requests, operation="CREATE", kind="Deployment", decision="allowed", dry_run="false") == 2
    assert delta(requests, operation="CREATE", kind="Deployment", decision="denied", dry_run="false") == 1
    assert delta(requests, operation="CREATE", kind="StatefulSet", decision="denied", dry_run="true") == 1
    assert delta(requests, operation="CREATE", kind="Deployment", decision="warned", dry_run="false") == 1
    assert delta(requests, operation="UPDATE", kind="Deployment", decision="allowed", dry_run="false") == 1
    assert delta(requests, operation="none", kind="none", decision="error", dry_run="false") == 1
    assert delta("deployguard_rule_findings_total", rule="digest_pinning", mode="deny") == 2
    assert delta("deployguard_rule_findings_total", rule="release_id", mode="warn") == 1

    # End-to-end latency: one observation per answered review, every one inside the 10 s bucket.
    duration = "deployguard_admission_duration_seconds"
    assert delta(f"{duration}_count", decision="allowed") == 3
    assert delta(f"{duration}_count", decision="denied") == 2
    assert delta(f"{duration}_bucket", decision="denied", le="10.0") == 2
    assert delta(f"{duration}_bucket", decision="denied", le="+Inf") == 2
    assert delta(f"{duration}_sum", decision="denied") > 0
    # Per phase: parse for the 6 well-formed bodies, classify and evaluate for each review.
    phase = "deployguard_phase_duration_seconds"
    assert delta(f"{phase}_count", phase="parse") == 6
    assert delta(f"{phase}_count", phase="classify") == 6
    assert delta(f"{phase}_count", phase="evaluate") == 6
    assert delta("deployguard_decision_memo_total", result="hit") >= 1
    assert delta("deployguard_decision_memo_total", result="hit") + delta(
        "deployguard_decision_memo_total", result="miss"
    ) == 6
    assert value(after, "deployguard_policy_revision_info", revision=reviewer.engine.revision, engine="embedded") == 1
    assert value(after, "deployguard_policy_load_failing") == 0


def test_latency_buckets_resolve_one_millisecond_to_ten_seconds() -> None:
    assert LATENCY_BUCKETS[0] == 0.001 and LATENCY_BUCKETS[-1] == 10.0
    assert list(LATENCY_BUCKETS) == sorted(LATENCY_BUCKETS)


def test_a_new_revision_replaces_the_old_in_the_info_gauge(tmp_path: Path) -> None:
    from prometheus_client import generate_latest

    revision = ["rev-a"]
    gauge = PolicyRevisionGauge(lambda: revision[0], "embedded", lambda: "does not compile")
    gauge()
    revision[0] = "rev-b"
    gauge()
    families = {f.name: f for f in text_string_to_metric_families(generate_latest().decode())}
    shown = {s.labels["revision"]: s.value for s in families["deployguard_policy_revision_info"].samples
             if s.labels["engine"] == "embedded" and s.labels["revision"] in ("rev-a", "rev-b")}
    assert shown == {"rev-a": 0, "rev-b": 1}
    assert families["deployguard_policy_load_failing"].samples[0].value == 1
