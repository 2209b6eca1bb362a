"""`deployguard serve` as a user runs it: a real process, real TLS, curl as the client."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, REPO
from tests.processes import Process, free_port, http_ok

pytestmark = pytest.mark.integration


class Served:
    def __init__(self, process: Process, port: int, workdir: Path) -> None:
        self.process, self.port, self.workdir = process, port, workdir
        self.ca = workdir / "certs/dev/ca.crt"
        self.base = f"https://localhost:{port}"

    def curl(self, path: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["curl", "-sS", "--cacert", str(self.ca), "-w", "\n%{http_code}", *args, f"{self.base}{path}"],
            capture_output=True, text=True, timeout=30,
        )


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    workdir = tmp_path_factory.mktemp("serve")
    port = free_port()
    deployguard = Path(sys.executable).parent / "deployguard"
    process = Process(
        "deployguard", [str(deployguard), "serve", "--dev-certs", "--port", str(port), "--host", "127.0.0.1",
                        "--cert", str(workdir / "certs/dev/tls.crt"), "--key", str(workdir / "certs/dev/tls.key"),
                        "--policies", str(REPO / "policies"), "--decision-log", str(workdir / "decisions.jsonl")],
        workdir, env={"PYTHONUNBUFFERED": "1"},
    )
    served = Served(process, port, workdir)
    try:
        process.wait_until(lambda: served.ca.exists() and http_ok(f"{served.base}/readyz", cafile=served.ca), 60,
                           "ready")
        yield served
    finally:
        process.stop()


def test_answers_a_real_admission_review_over_https(served: Served) -> None:
    assert shutil.which("curl"), "curl is needed for this test"
    result = served.curl("/validate", "-H", "content-type: application/json",
                         "--data-binary", f"@{EXAMPLES / 'admission-review.json'}")
    body, status = result.stdout.rsplit("\n", 1)
    assert status == "200", result.stderr
    review = json.loads(body)
    assert review["response"]["uid"] == "0d8a8a3e-6f4b-4a57-9d0e-2f4c7d1f6a11"
    assert review["response"]["allowed"] is False
    assert "nginx:latest" in review["response"]["status"]["message"]


def test_plain_http_is_not_served(served: Served) -> None:
    result = subprocess.run(["curl", "-sS", f"http://localhost:{served.port}/healthz"], capture_output=True,
                            text=True, timeout=30)
    assert result.returncode != 0 or "ok" not in result.stdout


def test_bad_input_gets_400_with_reason(served: Served) -> None:
    result = served.curl("/validate", "-H", "content-type: application/json", "--data-binary", "{not json")
    body, status = result.stdout.rsplit("\n", 1)
    assert status == "400"
    assert "not valid JSON" in json.loads(body)["error"]


def test_every_answer_is_in_the_decision_log(served: Served) -> None:
    lines = (served.workdir / "decisions.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert any(r.get("uid") == "0d8a8a3e-6f4b-4a57-9d0e-2f4c7d1f6a11" for r in records)
    assert any(r.get("rejected") for r in records)
