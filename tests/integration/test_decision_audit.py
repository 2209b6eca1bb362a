"""A real ``deployguard serve``: every answer is one decision line, and /metrics tells the same story."""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.factories import PINNED, admission_review, workload
from tests.served import ServedDeployguard, serve_deployguard

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedDeployguard]:
    with serve_deployguard(tmp_path_factory.mktemp("audit")) as running:
        yield running


def _client(served: ServedDeployguard) -> httpx.Client:
    """A client of its own per test, closed by the test (the requests go over fresh connections)."""
    return httpx.Client(base_url=served.base, verify=ssl.create_default_context(cafile=str(served.ca)), timeout=30)


def test_n_requests_make_exactly_n_decision_lines_with_the_ids_we_were_given(served: ServedDeployguard) -> None:
    before = len(served.decisions()) if (served.workdir / "decisions.jsonl").exists() else 0
    allowed = [admission_review(workload("Deployment", PINNED, name=f"ok-{i}")) for i in range(3)]
    denied = [admission_review(workload("Deployment", "nginx:latest", name=f"bad-{i}")) for i in range(3)]
    dry_run = [admission_review(workload("Deployment", "nginx:1.27", name=f"dry-{i}"), dry_run=True) for i in range(2)]
    malformed = [b"not json", b"{}", json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"})]
    ids: list[str] = []
    with _client(served) as client:
        for doc in allowed + denied + dry_run:
            answer = client.post("/validate", json=doc)
            assert answer.status_code == 200, answer.text
            response = answer.json()["response"]
            decision_id = response["auditAnnotations"]["decision-id"]
            if not response["allowed"]:
                assert f"(decision {decision_id}" in response["status"]["message"]
            ids.append(decision_id)
        for body in malformed:
            answer = client.post("/validate", content=body, headers={"content-type": "application/json"})
            assert answer.status_code == 400
            ids.append(answer.json()["decision_id"])
    n = len(allowed) + len(denied) + len(dry_run) + len(malformed)

    records = served.decisions()[before:]

    assert len(records) == n and len(set(ids)) == n
    assert [r["decision_id"] for r in records] == ids
    by_id = {r["decision_id"]: r for r in records}
    assert [by_id[i]["allowed"] for i in ids[:3]] == [True] * 3
    assert [by_id[i]["allowed"] for i in ids[3:6]] == [False] * 3
    assert all(by_id[i]["dry_run"] is True and by_id[i]["allowed"] is False for i in ids[6:8])
    assert all(by_id[i]["rejected"] is True and by_id[i]["http_status"] == 400 for i in ids[8:])
    denial = by_id[ids[3]]
    assert [f["rule"] for f in denial["findings"] if f["mode"] == "deny"] == ["digest_pinning"]
    for field in ("time", "uid", "user", "groups", "operation", "kind", "namespace", "name", "change_type",
                  "release_id", "images", "risk", "break_glass", "policy_revision", "engine", "latency_ms"):
        assert field in denial, field
    assert denial["release_id"] == "1.0.0" and denial["user"] == "alice" and denial["groups"] == ["devs"]


def test_metrics_on_the_https_listener_count_what_was_answered(served: ServedDeployguard) -> None:
    def scrape() -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        with _client(served) as client:
            text = client.get("/metrics").text
        return {(s.name, frozenset(s.labels.items())): s.value
                for f in text_string_to_metric_families(text) for s in f.samples}  # fmt: skip

    key = ("deployguard_admission_requests_total",
           frozenset({"operation": "CREATE", "kind": "Deployment", "decision": "denied", "dry_run": "false"}.items()))
    before = scrape()
    with _client(served) as client:
        for i in range(4):
            doc = admission_review(workload("Deployment", "nginx:latest", name=f"m-{i}"))
            assert client.post("/validate", json=doc).status_code == 200
    after = scrape()

    assert after[key] - before.get(key, 0.0) == 4
    count = ("deployguard_admission_duration_seconds_count", frozenset({"decision": "denied"}.items()))
    assert after[count] - before.get(count, 0.0) == 4
    expiry = after[("deployguard_tls_certificate_expiry_timestamp_seconds", frozenset())]
    assert expiry > 1.7e9  # the dev certificate's notAfter, a Unix time
