"""Hostile /validate bodies, in-process through the ASGI app: fuzzed with hypothesis.

Whatever arrives, the answer is a 200 AdmissionReview for the same uid or a 4xx with a
reason; never a 500, and every answer leaves exactly one decision log line.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factories import PINNED, admission_review, workload
from tests.unit.conftest import CapturedLog
from webhook.input_limits import exceeds_depth
from webhook.reviewer import Reviewer
from webhook.server import create_app

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner,
                                                                                                  max_size=5),
                           max_leaves=20)
# Where a malicious or broken client would put something unexpected.
PATHS = [
    ("request",), ("request", "uid"), ("request", "kind"), ("request", "kind", "kind"), ("request", "operation"),
    ("request", "namespace"), ("request", "name"), ("request", "userInfo"), ("request", "userInfo", "username"),
    ("request", "userInfo", "groups"), ("request", "dryRun"), ("request", "object"), ("request", "oldObject"),
    ("request", "object", "metadata"), ("request", "object", "metadata", "labels"),
    ("request", "object", "metadata", "annotations"), ("request", "object", "metadata", "ownerReferences"),
    ("request", "object", "spec"), ("request", "object", "spec", "template"),
    ("request", "object", "spec", "template", "spec", "containers"),
    ("request", "object", "spec", "template", "spec", "containers", 0),
    ("request", "object", "spec", "template", "spec", "containers", 0, "image"),
    ("request", "object", "spec", "template", "spec", "containers", 0, "name"),
    ("request", "object", "spec", "template", "spec", "initContainers"),
    ("request", "object", "spec", "template", "metadata", "labels"), ("apiVersion",), ("kind",),
]
# Unicode a parser, a regex or a terminal may trip over.
ODD_TEXT = ["\u0000", "\u202e", "\u200f", "\ufeff", "\u2028", "e\u0301", "ｎｇｉｎｘ", "𝕟𝕘𝕚𝕟𝕩", "\U0010ffff", "\x7f",
            "%s%d%v%q"]


@pytest.fixture
def client(reviewer: Reviewer) -> TestClient:
    return TestClient(create_app(reviewer, None, max_body_bytes=256 * 1024, max_json_depth=128),
                      raise_server_exceptions=False)


def _set(doc: dict[str, Any], path: tuple[str | int, ...], value: Any) -> None:
    node: Any = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


def _post(client: TestClient, body: bytes) -> Any:
    return client.post("/validate", content=body, headers={"content-type": "application/json"})


def assert_sane(answer: Any, uid: object = None) -> None:
    """A reasoned 4xx, or a well-formed AdmissionReview for the request's uid; never a 500."""
    assert answer.status_code in (200, 400, 413), (answer.status_code, answer.text[:500])
    body = answer.json()
    if answer.status_code != 200:
        assert isinstance(body["error"], str) and body["error"], body
        return
    assert body["apiVersion"] == "admission.k8s.io/v1" and body["kind"] == "AdmissionReview"
    assert isinstance(body["response"]["allowed"], bool)
    if uid is not None:
        assert body["response"]["uid"] == uid


@FUZZ
@given(path=st.sampled_from(PATHS), value=json_values)
def test_any_value_anywhere_gets_a_sane_answer(client: TestClient, decision_log: CapturedLog,
                                               path: tuple[str | int, ...], value: Any) -> None:
    doc = admission_review(workload("Deployment", "nginx:latest"), uid="fuzz-1")
    _set(doc, path, value)
    before = len(decision_log.records)
    answer = _post(client, json.dumps(doc).encode())
    assert_sane(answer, "fuzz-1" if path not in (("request",), ("request", "uid")) else None)
    assert len(decision_log.records) == before + 1


@FUZZ
@given(value=json_values)
def test_any_json_document_gets_a_sane_answer(client: TestClient, value: Any) -> None:
    assert_sane(_post(client, json.dumps(value).encode()))


@FUZZ
@given(body=st.binary(max_size=512))
def test_any_bytes_get_a_sane_answer(client: TestClient, body: bytes) -> None:
    assert_sane(_post(client, body))


@FUZZ
@given(text=st.lists(st.sampled_from(ODD_TEXT) | st.text(), min_size=1, max_size=4).map("".join),
       path=st.sampled_from([p for p in PATHS if p[-1] in ("uid", "name", "image", "namespace", "username")]))
def test_unicode_oddities_in_strings(client: TestClient, text: str, path: tuple[str | int, ...]) -> None:
    doc = admission_review(workload("Deployment", PINNED), uid="fuzz-2")
    _set(doc, path, text)
    answer = _post(client, json.dumps(doc, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    assert_sane(answer, text if path[-1] == "uid" else "fuzz-2")


@pytest.mark.parametrize("escape", [r"\ud800", r"\udfff", r"\ud800\u0041", r"\u0000"])
def test_lone_surrogates_and_nul_as_json_escapes(client: TestClient, escape: str) -> None:
    doc = admission_review(workload("Deployment", "nginx:latest"), uid="esc")
    body = json.dumps(doc).replace('"nginx:latest"', f'"nginx{escape}:latest"').encode()
    answer = _post(client, body)
    assert_sane(answer, "esc")


def test_invalid_utf8_is_a_400(client: TestClient) -> None:
    body = json.dumps(admission_review(workload(), uid="u")).encode().replace(b"nginx", b"ngi\xff\xfenx")
    answer = _post(client, body)
    assert answer.status_code == 400 and "not valid JSON" in answer.json()["error"]


def test_duplicate_keys_take_one_value_consistently(client: TestClient) -> None:
    """orjson keeps the last duplicate; the check and the answer both see that one."""
    doc = admission_review(workload("Deployment", PINNED), uid="second")
    text = json.dumps(doc)
    text = text.replace('"uid": "second"', '"uid": "first", "uid": "second"')
    text = text.replace(f'"image": "{PINNED}"', f'"image": "{PINNED}", "image": "nginx:latest"')
    answer = _post(client, text.encode())
    assert answer.status_code == 200
    response = answer.json()["response"]
    assert response["uid"] == "second"
    assert response["allowed"] is False and "nginx:latest" in response["status"]["message"]


def _nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = {"a": [value]} if depth % 2 else [value]
    return value


@pytest.mark.parametrize("depth", [200, 1023, 1024, 1100, 50_000])
def test_deep_nesting_is_a_400_naming_the_limit(client: TestClient, decision_log: CapturedLog, depth: int) -> None:
    body = b"[" * depth + b"]" * depth
    answer = _post(client, body)
    assert answer.status_code == 400
    assert "deeper than 128 levels (admission.max_json_depth)" in answer.json()["error"]
    assert decision_log.records[-1]["rejected"] is True


def test_deep_nesting_inside_a_valid_review_is_a_400(client: TestClient) -> None:
    doc = admission_review(workload(), uid="deep")
    doc["request"]["object"]["metadata"]["annotations"] = {"x": _nested(130)}
    answer = _post(client, json.dumps(doc).encode())
    assert answer.status_code == 400 and "admission.max_json_depth" in answer.json()["error"]


def test_nesting_within_the_limit_is_answered(client: TestClient) -> None:
    doc = admission_review(workload("Deployment", "nginx:latest"), uid="ok")
    doc["request"]["object"]["spec"]["extra"] = _nested(100)
    answer = _post(client, json.dumps(doc).encode())
    assert_sane(answer, "ok")
    assert answer.status_code == 200 and answer.json()["response"]["allowed"] is False


@pytest.mark.parametrize("limit", [1, 5, 128])
def test_depth_check_counts_levels(limit: int) -> None:
    doc: Any = {}
    for _ in range(limit - 1):
        doc = [doc]
    assert not exceeds_depth(doc, limit)
    assert exceeds_depth([doc], limit)
    assert exceeds_depth([doc], limit, body=json.dumps([doc]).encode())


def test_huge_strings_and_arrays_are_answered_or_refused(client: TestClient) -> None:
    doc = admission_review(workload("Deployment", "nginx:" + "a" * 200_000), uid="huge")
    answer = _post(client, json.dumps(doc).encode())
    assert_sane(answer, "huge")
    assert answer.json()["response"]["allowed"] is False
    doc = admission_review(workload(), uid="wide")
    doc["request"]["object"]["metadata"]["labels"].update({f"k{i}": "v" for i in range(10_000)})
    assert_sane(_post(client, json.dumps(doc).encode()), "wide")
    doc = admission_review(workload(), uid="big")
    doc["request"]["object"]["metadata"]["annotations"] = {"x": "y" * 300_000}
    assert _post(client, json.dumps(doc).encode()).status_code == 413


def test_too_many_containers_is_denied_without_evaluation(client: TestClient, decision_log: CapturedLog) -> None:
    doc = admission_review(workload("Deployment", *[PINNED] * 51), uid="many")
    answer = _post(client, json.dumps(doc).encode())
    assert answer.status_code == 200
    response = answer.json()["response"]
    assert response["uid"] == "many" and response["allowed"] is False
    assert "51 containers" in response["status"]["message"] and "admission.max_containers" in (
        response["status"]["message"])
    fifty = copy.deepcopy(admission_review(workload("Deployment", *[PINNED] * 50), uid="fifty"))
    answer = _post(client, json.dumps(fifty).encode())
    assert answer.json()["response"]["allowed"] is True, answer.json()


@pytest.mark.parametrize("length", [30_000, 100_000])
def test_image_strings_that_crashed_rego_cpp_are_denied_before_evaluation(client: TestClient, length: int) -> None:
    """rego-cpp 1.5.2 segfaulted on a ~30,000-character image string: one pod could kill the webhook."""
    doc = admission_review(workload("Deployment", "nginx:" + "a" * length), uid="long")
    answer = _post(client, json.dumps(doc).encode())
    assert answer.status_code == 200
    message = answer.json()["response"]["status"]["message"]
    assert "[input_limits]" in message and f"{length + 6} characters" in message and "limit 1024" in message
    assert client.get("/healthz").status_code == 200
