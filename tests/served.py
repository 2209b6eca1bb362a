"""A real `deployguard serve` process with development certificates, for integration tests."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import REPO
from tests.processes import Process, free_port, http_ok


class ServedDeployguard:
    """The process, its CA, its decision log, and clients to talk to it (curl or httpx)."""

    def __init__(self, process: Process, port: int, workdir: Path) -> None:
        self.process, self.port, self.workdir = process, port, workdir
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

    def curl(self, path: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["curl", "-sS", "--cacert", str(self.ca), "-w", "\n%{http_code}", *args, f"{self.base}{path}"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip

    def decisions(self) -> list[dict[str, Any]]:
        lines = (self.workdir / "decisions.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines]


@contextmanager
def serve_deployguard(
    workdir: Path, policies: Path = REPO / "policies", config: Path | None = None
) -> Iterator[ServedDeployguard]:
    """`deployguard serve --dev-certs` on a free loopback port, the repository's policies (or
    ``policies``), a decision log, and settings from ``config`` if given."""
    port = free_port()
    deployguard = Path(sys.executable).parent / "deployguard"
    certs = workdir / "certs/dev"
    process = Process(
        "deployguard",
        [str(deployguard), "serve", "--dev-certs", "--port", str(port), "--host", "127.0.0.1",
         "--cert", str(certs / "tls.crt"), "--key", str(certs / "tls.key"),
         "--policies", str(policies), "--decision-log", str(workdir / "decisions.jsonl"),
         *(["--config", str(config)] if config else [])],
        workdir, env={"PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    served = ServedDeployguard(process, port, workdir)
    try:
        process.wait_until(
            lambda: served.ca.exists() and http_ok(f"{served.base}/readyz", cafile=served.ca), 60, "ready"
        )
        yield served
    finally:
        if served._client is not None:
            served._client.close()
        process.stop()
