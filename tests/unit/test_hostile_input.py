"""Hostile /validate bodies, in-process through the ASGI app: fuzzed with hypothesis.

Whatever arrives, the answer is a 200 AdmissionReview for the same uid or a 4xx with a
reason; never a 500, and every answer leaves exactly one decision log line.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factories import PINNED, admission_review, workload
from tests.unit.conftest import CapturedLog
from webhook.config import load_settings
from webhook.errors import ConfigError
from webhook.input_limits import exceeds_depth, string_over_limit
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


# Where a submitter can pile up entries, and how the denial names the place.
MAP_PATHS = [
    (("request", "object", "metadata", "labels"), "the Deployment's labels"),
    (("request", "object", "metadata", "annotations"), "the Deployment's annotations"),
    (("request", "object", "spec", "template", "metadata", "labels"), "the pod template's labels"),
    (("request", "object", "spec", "template", "metadata", "annotations"), "the pod template's annotations"),
    (("request", "userInfo", "groups"), "the requester's groups"),
]


def _with_entries(path: tuple[str | int, ...], count: int, uid: str) -> dict[str, Any]:
    doc = admission_review(workload("Deployment", PINNED), uid=uid)
    if path[-1] == "groups":
        _set(doc, path, [f"team-{i}" for i in range(count)])
    else:
        template = doc["request"]["object"]["spec"]["template"]["metadata"]
        template.setdefault("annotations", {})
        entries = {f"k{i}.example.com/x": "v" for i in range(count)}
        if path[-1] == "labels":
            entries["app"] = "web"  # the selector's label stays
        _set(doc, path, entries)
    return doc


@pytest.mark.parametrize(("path", "named"), MAP_PATHS, ids=[p[-1] + str(len(p)) for p, _ in MAP_PATHS])
def test_more_map_entries_than_the_limit_are_denied_before_evaluation(
    client: TestClient, decision_log: CapturedLog, path: tuple[str | int, ...], named: str
) -> None:
    """Each label or annotation cost ~15 µs of blocked event loop on a memo miss (20,000 tiny
    annotations: 300 ms; a 3 MiB body of them: seconds). Lengths are checked up front."""
    response = _post(client, json.dumps(_with_entries(path, 5_000, "wide")).encode()).json()["response"]
    assert response["uid"] == "wide" and response["allowed"] is False
    message = response["status"]["message"]
    assert f"[input_limits] {named} hold 5,00" in message and "at most 512 (admission.max_map_entries)" in message
    assert decision_log.records[-1]["uid"] == "wide"
    at_limit = _post(client, json.dumps(_with_entries(path, 510, "fits")).encode()).json()["response"]
    assert at_limit["allowed"] is True, at_limit


def test_an_update_that_trims_an_oversized_object_is_evaluated(client: TestClient) -> None:
    """Only the new object counts: the way out of too many annotations must stay open."""
    old = _with_entries(("request", "object", "metadata", "annotations"), 5_000, "x")["request"]["object"]
    doc = admission_review(workload("Deployment", PINNED), operation="UPDATE", old=old, uid="trim")
    response = _post(client, json.dumps(doc).encode()).json()["response"]
    assert response["allowed"] is True, response


def test_max_map_entries_zero_turns_the_limit_off(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("admission:\n  max_map_entries: 0\n")
    assert load_settings(config).admission.max_map_entries == 0
    config.write_text("admission:\n  max_map_entries: -1\n")
    with pytest.raises(ConfigError, match="max_map_entries must be 0"):
        load_settings(config)


@pytest.mark.parametrize("length", [30_000, 100_000])
def test_image_strings_that_crashed_rego_cpp_are_denied_before_evaluation(client: TestClient, length: int) -> None:
    """rego-cpp 1.5.2 segfaulted on a ~30,000-character image string: one pod could kill the webhook."""
    doc = admission_review(workload("Deployment", "nginx:" + "a" * length), uid="long")
    answer = _post(client, json.dumps(doc).encode())
    assert answer.status_code == 200
    message = answer.json()["response"]["status"]["message"]
    assert "[input_limits]" in message and f"{length + 6} characters" in message and "limit 1024" in message
    assert client.get("/healthz").status_code == 200


# Where a submitter puts a string that reaches the policy input (the API server bounds most
# of these, but anything that can reach the webhook's port can send anything).
LONG_STRING_PATHS = [
    ("request", "name"), ("request", "namespace"),
    ("request", "object", "spec", "template", "spec", "containers", 0, "name"),
    ("request", "object", "metadata", "labels", "app"),
    ("request", "object", "metadata", "annotations", "example.com/note"),
    ("request", "object", "spec", "template", "metadata", "annotations", "example.com/note"),
    ("request", "userInfo", "username"),
]  # fmt: skip


# Each about 30,000 bytes in rego-cpp's escaped form: a control character escapes to six bytes.
@pytest.mark.parametrize("filler", ["a" * 30_000, "\x01" * 5_000, "\U0001f600" * 7_500, "%s" * 15_000],
                         ids=["ascii", "control", "emoji", "percent"])
@pytest.mark.parametrize("path", LONG_STRING_PATHS)
def test_strings_long_enough_to_crash_rego_cpp_are_denied_before_evaluation(
    client: TestClient, decision_log: CapturedLog, path: tuple[str | int, ...], filler: str
) -> None:
    """rego-cpp 1.5.2 segfaults matching a regex on ~26,000 bytes (escaped JSON). Found by
    fuzzing: a 27,000-character container name, quoted in digest_pinning's message, killed the
    process (without the limit, the container-name cases here end pytest with SIGSEGV). The
    default policies match no regex on the other fields at these sizes, but a cluster's own
    policy may: every string is held to the limit."""
    doc = admission_review(workload("Deployment", "nginx:latest"), uid="long")
    doc["request"]["object"]["metadata"]["labels"] = {}
    doc["request"]["object"]["metadata"]["annotations"] = {}
    doc["request"]["object"]["spec"]["template"]["metadata"]["annotations"] = {}
    _set(doc, path, filler)
    answer = _post(client, json.dumps(doc).encode())
    assert answer.status_code == 200, answer.text[:300]
    response = answer.json()["response"]
    assert response["allowed"] is False
    assert "[input_limits]" in response["status"]["message"], response["status"]["message"][-400:]
    assert "admission.max_string_bytes" in response["status"]["message"]
    assert client.get("/healthz").status_code == 200
    assert decision_log.records[-1]["uid"] == "long"


def test_a_long_annotation_key_is_named_and_denied(client: TestClient) -> None:
    doc = admission_review(workload("Deployment", PINNED), uid="key")
    doc["request"]["object"]["metadata"]["annotations"] = {"k" * 20_000: "v"}
    message = _post(client, json.dumps(doc).encode()).json()["response"]["status"]["message"]
    assert "[input_limits] a key of input.workload.annotations is 20,000 bytes long" in message


def test_the_string_limit_counts_escaped_bytes_and_names_the_place() -> None:
    assert string_over_limit({"a": ["x" * 8192], "b": {"c": "ok"}}, 8192) is None
    control = string_over_limit({"a": ["\x01" * 1366]}, 8192)  # 1,366 characters, 8,196 bytes escaped
    assert control is not None and control.message.startswith("input.a[0] is 8,196 bytes long")
    key = string_over_limit({"labels": {"k" * 9000: "v"}}, 8192)
    assert key is not None and key.message.startswith("a key of input.labels is 9,000 bytes long")
    odd = string_over_limit({"annotations": {"example.com/x": "é" * 9000}}, 8192)
    assert odd is not None and "input.annotations['example.com/x'] is 18,000 bytes" in odd.message


@pytest.mark.parametrize("value", [255, 16_385])
def test_max_string_bytes_stays_below_where_rego_cpp_crashes(tmp_path: Path, value: int) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"admission:\n  max_string_bytes: {value}\n")
    with pytest.raises(ConfigError, match=r"max_string_bytes must be 256\.\.16384"):
        load_settings(config)
