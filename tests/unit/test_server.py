"""The HTTP adapter: bad input gets a clear 4xx, well-formed reviews an answer."""

from __future__ import annotations

import gzip
import json

import pytest
from fastapi.testclient import TestClient

from tests.factories import admission_review, workload
from tests.unit.conftest import CapturedLog
from webhook.reviewer import Reviewer
from webhook.server import create_app


@pytest.fixture
def client(reviewer: Reviewer) -> TestClient:
    return TestClient(create_app(reviewer, None, max_body_bytes=64 * 1024))


def test_valid_review_gets_an_answer_with_the_same_uid(client: TestClient) -> None:
    doc = admission_review(workload("Deployment", "nginx:latest"), uid="abc-123")
    answer = client.post("/validate", json=doc)
    assert answer.status_code == 200
    body = answer.json()
    assert body["apiVersion"] == "admission.k8s.io/v1" and body["kind"] == "AdmissionReview"
    assert body["response"]["uid"] == "abc-123" and body["response"]["allowed"] is False


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b"not json", 400, "not valid JSON"),
        (b"", 400, "empty"),
        (b"[1, 2]", 400, "JSON object"),
        (json.dumps({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview"}).encode(), 400,
         "apiVersion"),
        (json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}).encode(), 400, "request"),
        (b"[" * 5000 + b"]" * 5000, 400, "not valid JSON"),
    ],
)
def test_malformed_bodies_get_a_reason(client: TestClient, decision_log: CapturedLog, body: bytes, status: int,
                                       reason: str) -> None:
    answer = client.post("/validate", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == status
    assert reason in answer.json()["error"]
    assert decision_log.records[-1]["rejected"] is True


def test_missing_uid_is_a_400(client: TestClient) -> None:
    doc = admission_review(workload())
    del doc["request"]["uid"]
    answer = client.post("/validate", json=doc)
    assert answer.status_code == 400 and "uid" in answer.json()["error"]


def test_huge_body_is_a_413_with_the_limit(client: TestClient) -> None:
    doc = admission_review(workload())
    doc["request"]["object"]["metadata"]["annotations"] = {"big": "x" * 100_000}
    answer = client.post("/validate", json=doc)
    assert answer.status_code == 413
    assert "65536" in answer.json()["error"] and "max_body_bytes" in answer.json()["error"]


def test_huge_body_without_content_length_is_refused_while_streaming(client: TestClient) -> None:
    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(100):
            yield b"x" * 1024

    answer = client.post("/validate", content=chunks(), headers={"content-type": "application/json"})
    assert answer.status_code == 413


@pytest.mark.parametrize(
    ("media", "error"),
    [
        (None, "the request has no Content-Type; send the AdmissionReview as application/json"),
        ("text/plain", "the body is sent as text/plain; send the AdmissionReview as application/json"),
        ("application/x-www-form-urlencoded",
         "the body is sent as application/x-www-form-urlencoded; send the AdmissionReview as application/json"),
        ("application/jsonx", "the body is sent as application/jsonx; send the AdmissionReview as application/json"),
        ("application/yaml", "the body is sent as application/yaml; send the AdmissionReview as application/json"),
    ],
)
def test_a_body_not_sent_as_json_is_a_415_with_the_reason(client: TestClient, decision_log: CapturedLog,
                                                          media: str | None, error: str) -> None:
    """A valid review under another media type is refused and logged, not decided: the API server
    always sends application/json, so this is some other client (a form post, a script)."""
    body = json.dumps(admission_review(workload(), uid="typed")).encode()
    answer = client.post("/validate", content=body, headers={} if media is None else {"content-type": media})
    assert answer.status_code == 415 and answer.json()["error"] == error
    assert decision_log.records[-1]["rejected"] is True and decision_log.records[-1]["http_status"] == 415


@pytest.mark.parametrize("media", ["application/json", "Application/JSON", "application/json; charset=utf-8",
                                   " application/json ;charset=UTF-8"])
def test_json_media_types_are_read(client: TestClient, media: str) -> None:
    body = json.dumps(admission_review(workload(), uid="typed")).encode()
    answer = client.post("/validate", content=body, headers={"content-type": media})
    assert answer.status_code == 200 and answer.json()["response"]["uid"] == "typed"


@pytest.mark.parametrize("encoding", ["gzip", "br", " GZIP ", "identity, gzip"])
def test_an_encoded_body_is_a_415_with_the_reason(client: TestClient, decision_log: CapturedLog,
                                                  encoding: str) -> None:
    """Parsed as plain JSON, a gzip body failed with "unexpected character" and no cause."""
    body = gzip.compress(json.dumps(admission_review(workload())).encode())
    headers = {"content-type": "application/json", "content-encoding": encoding}
    answer = client.post("/validate", content=body, headers=headers)
    assert answer.status_code == 415
    assert answer.json()["error"] == f"the body is encoded (Content-Encoding: {encoding.strip()}); send plain JSON"
    assert decision_log.records[-1]["rejected"] is True and decision_log.records[-1]["http_status"] == 415


@pytest.mark.parametrize("encoding", ["identity", ""])
def test_identity_encoding_is_plain(client: TestClient, encoding: str) -> None:
    body = json.dumps(admission_review(workload(), uid="plain")).encode()
    headers = {"content-type": "application/json", "content-encoding": encoding}
    answer = client.post("/validate", content=body, headers=headers)
    assert answer.status_code == 200 and answer.json()["response"]["uid"] == "plain"


def test_health_and_readiness(client: TestClient, reviewer: Reviewer) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["policy_revision"] == reviewer.engine.revision
