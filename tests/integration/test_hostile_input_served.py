"""Hostile bodies against a real `deployguard serve` over HTTPS: it answers each and stays up."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factories import admission_review, workload
from tests.served import ServedDeployguard, serve_deployguard
from tests.unit.test_hostile_input import PATHS, assert_sane, json_values

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedDeployguard]:
    with serve_deployguard(tmp_path_factory.mktemp("hostile")) as running:
        yield running


def _long_container_name() -> dict[str, Any]:
    """Found by fuzzing: a container name this long segfaulted rego-cpp (the whole process)."""
    doc = admission_review(workload("Deployment", "nginx:latest"), uid="long-name")
    doc["request"]["object"]["spec"]["template"]["spec"]["containers"][0]["name"] = "a" * 30_000
    return doc


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(PATHS), value=json_values)
def test_fuzzed_reviews_over_https(served: ServedDeployguard, path: tuple[str | int, ...], value: Any) -> None:
    doc = admission_review(workload("Deployment", "nginx:latest"), uid="served")
    node: Any = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    assert_sane(served.post(json.dumps(doc).encode()),
                "served" if path not in (("request",), ("request", "uid")) else None)


@pytest.mark.parametrize("body", [
    b"[" * 100_000 + b"]" * 100_000,
    b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": ' * 300,
    json.dumps(admission_review(workload("Deployment", "nginx:" + "a" * 50_000), uid="long-image")).encode(),
    json.dumps(_long_container_name()).encode(),
    json.dumps(admission_review(workload("Deployment", *["nginx:1"] * 400), uid="many")).encode(),
    b"\x00" * 1000,
    b"x" * (4 * 1024 * 1024),
])
def test_hostile_bodies_over_https_leave_the_server_up(served: ServedDeployguard, body: bytes) -> None:
    assert_sane(served.post(body))
    assert served.process.alive(), served.process.log_tail()
    assert served.client.get(f"{served.base}/healthz").status_code == 200


def test_a_body_of_a_hundred_thousand_annotations_is_denied_unevaluated(served: ServedDeployguard) -> None:
    """Just under the 3 MiB body limit: each entry cost ~15 µs of blocked event loop (about 2 s
    in all) before admission.max_map_entries; now the lengths are checked first."""
    doc = admission_review(workload("Deployment", "nginx:latest"), uid="wide")
    doc["request"]["object"]["metadata"]["annotations"] = {f"k{i}.example.com/x": "v" for i in range(100_000)}
    answer = served.post(json.dumps(doc).encode())
    assert answer.status_code == 200, answer.text[:300]
    message = answer.json()["response"]["status"]["message"]
    assert "[input_limits] the Deployment's annotations hold 100,000 entries" in message, message
    assert served.client.get(f"{served.base}/healthz").status_code == 200


def _rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))) / 1024


def test_a_burst_of_big_reviews_leaves_no_lasting_memory(served: ServedDeployguard) -> None:
    """48 reviews of 2.5 MB, 8 at a time (inside the 32 MiB receiving budget): glibc kept what
    they freed, and the process stayed ~90 MB above where it started, until
    server.memory_release_threshold_mib (16 by default) gave it back."""
    doc = admission_review(workload("Deployment", "nginx:latest"), uid="big")
    doc["request"]["object"]["data"] = ["x" * 1000] * 2500  # a field no rule reads
    body = json.dumps(doc).encode()
    start = _rss_mb(served.process.pid)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: served.post(body), range(48)))
    assert {a.status_code for a in answers} == {200}
    served.process.wait_until(lambda: "returned freed heap memory to the OS" in served.process.log_tail(200), 20,
                              "a memory release")  # fmt: skip
    assert _rss_mb(served.process.pid) <= start + 24, (start, served.process.log_tail(20))


def test_every_request_left_one_decision_line(served: ServedDeployguard) -> None:
    """Runs last in this module: as many decision log lines as requests were answered."""
    assert served.sent > 60
    assert len(served.decisions()) == served.sent


def test_a_submitted_name_cannot_forge_a_log_line(served: ServedDeployguard) -> None:
    """The process log quotes names (here: a rejected break-glass token's warning); a line
    break in one started a line of the submitter's choosing."""
    forged = "2026-11-28 07:00:00,000 WARNING deployguard: FORGED"
    doc = admission_review(workload("Deployment", "nginx:latest"), uid="forge")
    name = f"web\n{forged}\u2028\x1b[31m"
    doc["request"]["name"] = doc["request"]["object"]["metadata"]["name"] = name
    doc["request"]["object"]["metadata"].setdefault("annotations", {})["deployguard.io/break-glass"] = "not-a-token"
    assert served.post(json.dumps(doc).encode()).status_code == 200
    lines = served.process.log_tail(80).splitlines()
    [warning] = [line for line in lines if "break-glass token on Deployment" in line]
    assert "web\\x0a" + forged + "\\u2028\\x1b[31m" in warning
    assert not any(line.startswith(forged) for line in lines)
