"""Hostile bodies against a real `deployguard serve` over HTTPS: it answers each and stays up."""

from __future__ import annotations

import json
import ssl
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import REPO
from tests.factories import admission_review, workload
from tests.processes import Process, free_port, http_ok
from tests.unit.test_hostile_input import PATHS, assert_sane, json_values

pytestmark = pytest.mark.integration


class Served:
    def __init__(self, process: Process, port: int, workdir: Path) -> None:
        self.process, self.workdir = process, workdir
        self.ca = workdir / "certs/dev/ca.crt"
        self.base = f"https://localhost:{port}"
        self.sent = 0
        self._client: httpx.Client | None = None

    @property
    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(verify=ssl.create_default_context(cafile=str(self.ca)), timeout=30)
        return self._client

    def post(self, body: bytes) -> httpx.Response:
        self.sent += 1
        return self.client.post(f"{self.base}/validate", content=body, headers={"content-type": "application/json"})

    def decisions(self) -> list[dict[str, Any]]:
        lines = (self.workdir / "decisions.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    workdir = tmp_path_factory.mktemp("hostile")
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
        if served._client is not None:
            served._client.close()
        process.stop()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(PATHS), value=json_values)
def test_fuzzed_reviews_over_https(served: Served, path: tuple[str | int, ...], value: Any) -> None:
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
    json.dumps(admission_review(workload("Deployment", *["nginx:1"] * 400), uid="many")).encode(),
    b"\x00" * 1000,
    b"x" * (4 * 1024 * 1024),
])
def test_hostile_bodies_over_https_leave_the_server_up(served: Served, body: bytes) -> None:
    assert_sane(served.post(body))
    assert served.process.alive(), served.process.log_tail()
    assert served.client.get(f"{served.base}/healthz").status_code == 200


def test_every_request_left_one_decision_line(served: Served) -> None:
    """Runs last in this module: as many decision log lines as requests were answered."""
    assert served.sent > 60
    assert len(served.decisions()) == served.sent
