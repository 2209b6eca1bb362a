"""Slow and greedy clients against a real `deployguard serve`: cut by the read deadline, held to
the body budget and the head limit, and the service answers everyone else meanwhile and
recovers by itself.

Settings made small so that the test is quick: requests must arrive whole within 1 s
(server.request_read_timeout_seconds), bodies up to 200,000 bytes each
(admission.max_body_bytes) and 300,000 bytes being received at once (server.max_receiving_body_bytes),
30 open connections (server.max_connections), and a probe port holding at most 5
(server.probe_max_connections).
"""

from __future__ import annotations

import json
import socket
import ssl
import time
from collections.abc import Iterator

import pytest

from tests.factories import admission_review, workload
from tests.processes import free_port
from tests.served import ServedDeployguard, serve_deployguard

pytestmark = pytest.mark.integration

CONFIG = """
admission:
  max_body_bytes: 200000
server:
  request_read_timeout_seconds: 1
  tls_handshake_timeout_seconds: 1
  max_receiving_body_bytes: 300000
  max_connections: 30
  probe_max_connections: 5
"""
REVIEW = json.dumps(admission_review(workload(), uid="meanwhile")).encode()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedDeployguard]:
    workdir = tmp_path_factory.mktemp("slow")
    probe_port = free_port()
    (workdir / "config.yaml").write_text(CONFIG + f"  probe_port: {probe_port}\n")
    with serve_deployguard(workdir, config=workdir / "config.yaml") as running:
        running.probe_port = probe_port  # type: ignore[attr-defined]
        yield running


def _connect(served: ServedDeployguard) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=str(served.ca))
    sock = context.wrap_socket(socket.create_connection(("127.0.0.1", served.port)), server_hostname="localhost")
    sock.settimeout(10)
    return sock


def _request(body: bytes, declared: int | None = None) -> bytes:
    head = (f"POST /validate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body) if declared is None else declared}\r\n\r\n")  # fmt: skip
    return head.encode() + body


def _closed_by_server(sock: socket.socket) -> bool:
    """Whether the server hung up (reading up to 10 s): end of stream or a reset, no answer."""
    try:
        return sock.recv(1) == b""
    except (ConnectionResetError, ssl.SSLError, BrokenPipeError):
        return True


@pytest.mark.parametrize(
    "sent",
    [b"", b"POST /validate HTTP/1.1\r\nHost: localhost\r\n", _request(b'{"apiVersion"', 5000)],
    ids=["nothing", "half the headers", "part of the body"],
)
def test_a_request_that_does_not_arrive_whole_in_time_is_cut(served: ServedDeployguard, sent: bytes) -> None:
    """Slowloris: before the deadline, a connection held open this way was kept for ever."""
    sock = _connect(served)
    sock.sendall(sent)
    started = time.monotonic()
    assert _closed_by_server(sock)
    assert time.monotonic() - started < 5  # the 1 s deadline, checked every second
    assert served.post(REVIEW).status_code == 200  # everyone else is answered meanwhile
    assert "did not arrive whole within 1 s (server.request_read_timeout_seconds)" in served.process.log_tail(80)


@pytest.mark.parametrize("sent", [b"", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"],
                         ids=["nothing", "half a ClientHello"])  # fmt: skip
def test_a_tls_handshake_that_does_not_finish_in_time_is_cut(served: ServedDeployguard, sent: bytes) -> None:
    """server.tls_handshake_timeout_seconds bounds the handshake: before, asyncio's default kept
    such a socket 60 s, unseen by the sweep (a connection joins uvicorn's list once its handshake
    is done)."""
    with socket.create_connection(("127.0.0.1", served.port)) as sock:
        sock.settimeout(10)
        sock.sendall(sent)
        started = time.monotonic()
        assert _closed_by_server(sock)
        assert time.monotonic() - started < 5
    assert served.post(REVIEW).status_code == 200


def test_connections_past_the_ceiling_are_closed_at_accept_and_the_service_recovers(served: ServedDeployguard) -> None:
    """Plain TCP connects that never start a handshake: each held ~50 KB for the handshake
    deadline, and 4,000 of them took the process from 125 to 329 MB (the chart's limit is
    512 MiB). Past server.max_connections a connection is now closed at once, without TLS."""
    flood = [socket.create_connection(("127.0.0.1", served.port)) for _ in range(30)]
    try:
        time.sleep(0.3)
        with socket.create_connection(("127.0.0.1", served.port), timeout=5) as late:
            started = time.monotonic()
            assert _closed_by_server(late)
            assert time.monotonic() - started < 1  # at once, not at the handshake deadline
    finally:
        for sock in flood:
            sock.close()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # places come back as the server sees the closes
        try:
            if _connect(served).getpeercert():
                break
        except (ssl.SSLError, ConnectionError):
            time.sleep(0.1)
    assert served.post(REVIEW).status_code == 200
    assert "(server.max_connections)" in served.process.log_tail(80)


def _probe_health(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        return sock.recv(4096)


def test_the_probe_port_closes_connections_past_its_ceiling_and_recovers(served: ServedDeployguard) -> None:
    """The plain-HTTP probe port had no ceiling: whoever reached it held as many connections
    as it opened. Past server.probe_max_connections one is closed at accept, and the kubelet's
    probes get through again once the flood ends."""
    port = served.probe_port  # type: ignore[attr-defined]
    assert _probe_health(port).startswith(b"HTTP/1.1 200")
    flood = [socket.create_connection(("127.0.0.1", port)) for _ in range(5)]
    try:
        time.sleep(0.3)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as late:
            assert _closed_by_server(late)
    finally:
        for sock in flood:
            sock.close()
    deadline = time.monotonic() + 5
    answer = b""
    while time.monotonic() < deadline and not answer.startswith(b"HTTP/1.1 200"):
        try:
            answer = _probe_health(port)
        except ConnectionError:
            time.sleep(0.1)
    assert answer.startswith(b"HTTP/1.1 200")
    assert "(server.probe_max_connections)" in served.process.log_tail(80)


def test_an_idle_keep_alive_connection_between_requests_is_not_cut_by_the_deadline(served: ServedDeployguard) -> None:
    """The deadline runs while a request is being received; between requests uvicorn's keep-alive
    timeout (5 s) applies, so a client pausing 2 s between requests keeps its connection."""
    sock = _connect(served)
    for _ in range(2):
        sock.sendall(_request(REVIEW))
        answer = sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        time.sleep(2)


def test_bodies_beyond_the_budget_get_503_and_the_budget_comes_back(served: ServedDeployguard) -> None:
    """Two stalled clients hold 290,000 bytes; the next body does not fit in 300,000 and is
    answered 503 naming the setting (the API server then applies failurePolicy). Once the
    deadline cuts the stalled ones, the same request is answered again."""
    stalled = [_connect(served) for _ in range(2)]
    for sock in stalled:
        sock.sendall(_request(b" " * 145_000, declared=190_000))
    time.sleep(0.3)  # the server has read what they sent
    answer = served.post(b" " * 50_000 + REVIEW)
    assert answer.status_code == 503, answer.text[:300]
    assert "server.max_receiving_body_bytes" in answer.json()["error"]
    assert all(_closed_by_server(sock) for sock in stalled)
    # Their bytes come back when their handlers see the hang-up, a few loop turns after it.
    deadline = time.monotonic() + 5
    while (again := served.post(b" " * 50_000 + REVIEW)).status_code == 503 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert again.status_code == 200, again.text[:300]


@pytest.mark.parametrize("where", ["headers", "url"])
def test_a_request_head_over_64_kib_is_refused_with_the_reason(served: ServedDeployguard, where: str) -> None:
    """httptools sets no limit and uvicorn kept every header: 300 MB of headers, sent in under a
    second, took the process from 125 to 470 MB (the chart's limit is 512 MiB)."""
    sock = _connect(served)
    if where == "headers":
        sock.sendall(b"POST /validate HTTP/1.1\r\nHost: localhost\r\n" + b"X-Pad: " + b"a" * 70_000 + b"\r\n")
    else:
        sock.sendall(b"POST /validate?" + b"a" * 70_000)
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    assert answer.startswith(b"HTTP/1.1 400"), answer[:300]
    assert answer.endswith(b"the request's URL and headers are over 65536 bytes"), answer[-300:]
    assert served.post(REVIEW).status_code == 200


def test_answers_carry_no_server_banner(served: ServedDeployguard) -> None:
    """uvicorn names itself in a `server` header by default; nothing to tell a scanner which parser to try."""
    answer = served.post(REVIEW)
    assert answer.status_code == 200 and "server" not in answer.headers


def test_a_head_below_the_limit_is_answered(served: ServedDeployguard) -> None:
    sock = _connect(served)
    padded = b"Host: localhost\r\nX-Pad: " + b"a" * 60_000 + b"\r\n"
    sock.sendall(_request(REVIEW).replace(b"Host: localhost\r\n", padded))
    assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    served.sent += 1  # a decision like the others


def test_every_answered_request_left_one_decision_line(served: ServedDeployguard) -> None:
    """Runs last: answered calls, the 503s among them, are in the decision log (cut ones were never answered)."""
    assert len(served.decisions()) == served.sent + 2  # + the two keep-alive requests sent by hand
