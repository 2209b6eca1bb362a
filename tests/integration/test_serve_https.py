"""`deployguard serve` as a user runs it: a real process, real TLS, curl as the client."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, REPO
from tests.served import ServedDeployguard, serve_deployguard

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedDeployguard]:
    with serve_deployguard(tmp_path_factory.mktemp("serve")) as running:
        yield running


def test_answers_a_real_admission_review_over_https(served: ServedDeployguard) -> None:
    assert shutil.which("curl"), "curl is needed for this test"
    result = served.curl("/validate", "-H", "content-type: application/json",
                         "--data-binary", f"@{EXAMPLES / 'admission-review.json'}")
    body, status = result.stdout.rsplit("\n", 1)
    assert status == "200", result.stderr
    review = json.loads(body)
    assert review["response"]["uid"] == "0d8a8a3e-6f4b-4a57-9d0e-2f4c7d1f6a11"
    assert review["response"]["allowed"] is False
    assert "nginx:latest" in review["response"]["status"]["message"]


def test_plain_http_is_not_served(served: ServedDeployguard) -> None:
    result = subprocess.run(["curl", "-sS", f"http://localhost:{served.port}/healthz"], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode != 0 or "ok" not in result.stdout


def test_bad_input_gets_400_with_reason(served: ServedDeployguard) -> None:
    result = served.curl("/validate", "-H", "content-type: application/json", "--data-binary", "{not json")
    body, status = result.stdout.rsplit("\n", 1)
    assert status == "400"
    assert "not valid JSON" in json.loads(body)["error"]


def test_a_form_post_gets_415_with_the_type_it_came_as(served: ServedDeployguard) -> None:
    """``curl -d`` without a header sends a form; a valid review under that type is refused, not decided."""
    result = served.curl("/validate", "--data-binary", f"@{EXAMPLES / 'admission-review.json'}")
    body, status = result.stdout.rsplit("\n", 1)
    assert status == "415", result.stderr
    assert json.loads(body)["error"] == (
        "the body is sent as application/x-www-form-urlencoded; send the AdmissionReview as application/json"
    )


def test_every_answer_is_in_the_decision_log(served: ServedDeployguard) -> None:
    lines = (served.workdir / "decisions.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert any(r.get("uid") == "0d8a8a3e-6f4b-4a57-9d0e-2f4c7d1f6a11" for r in records)
    assert any(r.get("rejected") for r in records)


# A rule named like a built-in that its package also calls: OPA reports a type error,
# rego-cpp (regopy 1.5.2) calls std::terminate while compiling.
CRASHING_RULE = """package deployguard.rules.crash

import rego.v1

violation contains "x" if count([1 | is_string("a")]) > 5

is_string := 2
"""


def test_a_policy_edit_that_crashes_rego_cpp_is_refused_while_serving(tmp_path: Path) -> None:
    """The webhook stays up on the revision it served and says why the new one was refused."""
    policies = tmp_path / "policies"
    shutil.copytree(REPO / "policies", policies)
    with serve_deployguard(tmp_path / "serve", policies=policies) as served:
        before = served.client.get(f"{served.base}/readyz").json()["policy_revision"]
        (policies / "deployguard/rules/crash.rego").write_text(CRASHING_RULE)
        served.process.wait_until(lambda: "crashed rego-cpp" in served.process.log_tail(200), 60, "refusing")
        assert served.process.alive()
        assert "SIGABRT" in served.process.log_tail(200)
        ready = served.client.get(f"{served.base}/readyz").json()
        assert ready["policy_revision"] == before
        answer = served.post((EXAMPLES / "admission-review.json").read_bytes())
        assert answer.status_code == 200 and answer.json()["response"]["allowed"] is False
