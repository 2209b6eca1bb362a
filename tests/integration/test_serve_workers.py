"""`deployguard serve --workers 2`: two real processes on one port, metrics from both, clean stop."""

from __future__ import annotations

import collections
import http.client
import json
import os
import re
import signal
import ssl
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, REPO
from tests.processes import Process, free_port, http_ok

pytestmark = pytest.mark.integration

REQUESTS = 30


class Workers:
    def __init__(self, process: Process, port: int, workdir: Path, probe_port: int) -> None:
        self.process, self.port, self.workdir, self.probe_port = process, port, workdir, probe_port
        self.ca = workdir / "certs/dev/ca.crt"
        self.base = f"https://127.0.0.1:{port}"

    def request(self, path: str, body: bytes | None = None) -> bytes:
        """One request on a fresh connection, so the kernel picks a worker each time."""
        context = ssl.create_default_context(cafile=str(self.ca))
        req = urllib.request.Request(f"{self.base}{path}", data=body, headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=10, context=context) as response:
            return bytes(response.read())

    def children(self) -> list[int]:
        """The worker processes (multiprocessing also starts a resource tracker: not a worker)."""
        path = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        pids = [int(pid) for pid in path.read_text().split()] if path.exists() else []
        return [pid for pid in pids if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workers]:
    workdir = tmp_path_factory.mktemp("workers")
    (workdir / "metrics").mkdir()  # prometheus-client wants the directory to exist, as in a pod's emptyDir
    port, probe_port = free_port(), free_port()
    (workdir / "config.yaml").write_text(f"server:\n  probe_port: {probe_port}\n")
    deployguard = Path(sys.executable).parent / "deployguard"
    process = Process(
        "deployguard-workers",
        [
            str(deployguard),
            "serve",
            "--dev-certs",
            "--workers",
            "2",
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
            "--cert",
            str(workdir / "certs/dev/tls.crt"),
            "--key",
            str(workdir / "certs/dev/tls.key"),
            "--policies",
            str(REPO / "policies"),
            "--decision-log",
            str(workdir / "decisions.jsonl"),
            "--config",
            str(workdir / "config.yaml"),
        ],
        workdir,
        env={"PYTHONUNBUFFERED": "1", "PROMETHEUS_MULTIPROC_DIR": str(workdir / "metrics")},
    )
    served = Workers(process, port, workdir, probe_port)
    try:
        process.wait_until(
            lambda: served.ca.exists() and http_ok(f"{served.base}/readyz", cafile=served.ca), 90, "ready"
        )
        # both workers bind on their own; wait until the second has joined the port as well
        process.wait_until(lambda: len(served.children()) >= 2, 30, "running two workers")
        yield served
    finally:
        process.stop()


def _revision_pids(metrics: str) -> set[str]:
    return set(re.findall(r'deployguard_policy_revision_info\{[^}]*pid="(\d+)"[^}]*\} 1\.0', metrics))


def test_two_workers_answer_and_metrics_aggregate(workers: Workers) -> None:
    body = (EXAMPLES / "admission-review.json").read_bytes()
    for _ in range(REQUESTS):
        review = json.loads(workers.request("/validate", body))
        assert review["response"]["allowed"] is False
    # Every scrape refreshes the revision gauge in the worker that serves it (one series per pid),
    # and a worker hands its buffered decision counts to the shared files once a second: keep
    # scraping on new connections until both workers have served a scrape and a second has passed.
    seen: set[str] = set()
    metrics, deadline, settled = "", time.monotonic() + 15, time.monotonic() + 1.5
    while time.monotonic() < deadline:
        metrics = workers.request("/metrics").decode()
        seen |= _revision_pids(metrics)
        if len(seen) >= 2 and time.monotonic() > settled:
            break
        time.sleep(0.05)
    assert len(seen) == 2, f"only worker(s) {seen} ever answered a scrape"
    assert seen <= {str(pid) for pid in workers.children()}
    # a scrape answered by one worker holds the other's series too: aggregated across processes
    assert _revision_pids(metrics) == seen
    answered = re.findall(r'deployguard_admission_requests_total\{[^}]*kind="Deployment"[^}]*\} ([\d.]+)', metrics)
    assert sum(float(v) for v in answered) == REQUESTS
    lines = (workers.workdir / "decisions.jsonl").read_text().splitlines()
    assert len(lines) == REQUESTS and all(json.loads(line)["decision_id"] for line in lines)
    # each worker logs through the printable formatter, its lines tagged with its index
    log = workers.process.log_tail(400)
    assert all(f"deployguard[w{i}]: deployguard serving https://" in log for i in (0, 1)), log[-2000:]


def test_every_worker_answers_probes_on_the_probe_port(workers: Workers) -> None:
    """Each worker joins the plain-HTTP probe port as it joins the TLS one (SO_REUSEPORT)."""
    for _ in range(10):  # fresh connections: the kernel picks a worker each time
        with urllib.request.urlopen(f"http://127.0.0.1:{workers.probe_port}/readyz", timeout=10) as response:
            assert response.status == 200 and json.loads(response.read())["ready"] is True
    assert _listening_on(workers.probe_port) == set(workers.children())


def test_workers_even_out_their_shares_of_keep_alive_connections(workers: Workers) -> None:
    """The kernel's hash may put 9 of 12 connections on one worker; it closes its extra ones
    after an answer (the client reconnects and lands anywhere) until each holds 6."""
    context = ssl.create_default_context(cafile=str(workers.ca))
    connections = [http.client.HTTPSConnection("127.0.0.1", workers.port, context=context, timeout=10)
                   for _ in range(12)]  # fmt: skip
    try:
        closes = []
        for _ in range(100):
            closed = 0
            for connection in connections:
                connection.request("GET", "/healthz")
                response = connection.getresponse()
                assert response.status == 200 and json.loads(response.read())["status"] == "ok"
                closed += response.will_close  # http.client reconnects on the next request
            closes.append(closed)
            if len(closes) > 1 and closed == 0:
                break
        assert closes[-1] == 0, f"connections still closed for balance after 100 rounds: {closes}"
        held = _sockets_on(workers.port, "01")  # 01: ESTABLISHED, on the server's side of the port
        assert sorted(held.get(pid, 0) for pid in workers.children()) == [6, 6], (held, closes)
    finally:
        for connection in connections:
            connection.close()


def _listening_on(port: int) -> set[int]:
    """The pids holding a socket that listens on ``port``."""
    return set(_sockets_on(port, "0A"))  # 0A: LISTEN


def _sockets_on(port: int, state: str) -> collections.Counter[int]:
    """How many sockets with local port ``port`` in ``state`` each pid holds (/proc/net/tcp, then fds)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == state:
            inodes.add(f"socket:[{fields[9]}]")
    owners: collections.Counter[int] = collections.Counter()
    for fd in Path("/proc").glob("[0-9]*/fd/*"):
        try:
            if os.readlink(fd) in inodes:
                owners[int(fd.parts[2])] += 1
        except OSError:
            continue
    return owners


def test_sigterm_stops_every_worker(workers: Workers) -> None:
    children = workers.children()
    assert len(children) == 2
    os.kill(workers.process.pid, signal.SIGTERM)
    workers.process.proc.wait(30)
    assert workers.process.proc.returncode == 0
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in children):
        time.sleep(0.1)
    assert not [pid for pid in children if Path(f"/proc/{pid}").exists()]
