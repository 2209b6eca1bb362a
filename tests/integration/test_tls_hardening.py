"""TLS of a real `deployguard serve`: the TLS 1.2 floor, and client certificates (mTLS).

The server refusing TLS 1.1 is told apart from a client that cannot speak it: the
client offers TLS 1.1 (OpenSSL security level 0) and the server ends the handshake,
while the same client capped at TLS 1.2 gets through.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import socket
import ssl
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.conftest import EXAMPLES, REPO
from tests.processes import Process, free_port

pytestmark = pytest.mark.integration


def _issue(directory: Path, name: str, *, ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None) -> tuple[
        x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A CA (``ca`` None) or a client certificate it signs, written as NAME.crt / NAME.key."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    builder = (x509.CertificateBuilder().subject_name(subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
               .not_valid_after(now + dt.timedelta(days=1)))
    if ca is None:
        cert = (builder.issuer_name(subject).add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .sign(key, hashes.SHA256()))
    else:
        cert = (builder.issuer_name(ca[0].subject)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
                .sign(ca[1], hashes.SHA256()))
    (directory / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / f"{name}.key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                              serialization.PrivateFormat.PKCS8,
                                                              serialization.NoEncryption()))
    return cert, key


class Served:
    def __init__(self, port: int, workdir: Path, probe_port: int) -> None:
        self.port, self.workdir, self.probe_port = port, workdir, probe_port
        self.ca = workdir / "certs/dev/ca.crt"

    def probe(self, method: str, path: str, body: bytes | None = None) -> tuple[int, dict[str, Any]]:
        """Plain HTTP to the probe port, as the kubelet does (it has no client certificate)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.probe_port, timeout=10)
        try:
            conn.request(method, path, body=body, headers={"content-type": "application/json"})
            response = conn.getresponse()
            return response.status, json.loads(response.read())
        finally:
            conn.close()

    def context(self, client: str | None = None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca))
        if client:
            context.load_cert_chain(self.workdir / f"{client}.crt", self.workdir / f"{client}.key")
        return context

    def get(self, path: str, context: ssl.SSLContext) -> int:
        conn = http.client.HTTPSConnection("localhost", self.port, context=context, timeout=10)
        try:
            conn.request("GET", path)
            return conn.getresponse().status
        finally:
            conn.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    workdir = tmp_path_factory.mktemp("mtls")
    client_ca = _issue(workdir, "client-ca", ca=None)
    _issue(workdir, "apiserver", ca=client_ca)
    _issue(workdir, "intruder", ca=_issue(workdir, "other-ca", ca=None))
    config = workdir / "config.yaml"
    port, probe_port = free_port(), free_port()
    config.write_text(f"server:\n  client_ca_file: {workdir / 'client-ca.crt'}\n  probe_port: {probe_port}\n"
                      "  probe_port_metrics: true\n  cert_reload_interval_seconds: 0.2\n")
    deployguard = Path(sys.executable).parent / "deployguard"
    process = Process(
        "deployguard", [str(deployguard), "serve", "--dev-certs", "--port", str(port), "--host", "127.0.0.1",
                        "--config", str(config), "--cert", str(workdir / "certs/dev/tls.crt"),
                        "--key", str(workdir / "certs/dev/tls.key"), "--policies", str(REPO / "policies")],
        workdir, env={"PYTHONUNBUFFERED": "1"},
    )
    served = Served(port, workdir, probe_port)
    try:
        process.wait_until(lambda: served.ca.exists() and served.get("/readyz", served.context("apiserver")) == 200,
                           60, "ready")
        yield served
    finally:
        process.stop()


def test_a_client_certificate_from_the_configured_ca_is_served(served: Served) -> None:
    assert served.get("/healthz", served.context("apiserver")) == 200


def test_no_client_certificate_is_refused(served: Served) -> None:
    with pytest.raises((ssl.SSLError, ConnectionError)) as refused:
        served.get("/healthz", served.context())
    assert "CERTIFICATE_REQUIRED" in str(refused.value).upper() or isinstance(refused.value, ConnectionError)


def test_the_kubelet_probes_readiness_over_the_plain_probe_port(served: Served) -> None:
    """mTLS leaves the kubelet without a way in on the TLS port; the probe port tells it /readyz."""
    status, body = served.probe("GET", "/readyz")
    assert status == 200 and body["ready"] is True and body["policy_revision"]
    assert served.probe("GET", "/healthz") == (200, {"status": "ok"})


def test_no_admission_review_is_answered_on_the_probe_port(served: Served) -> None:
    review = (EXAMPLES / "admission-review.json").read_bytes()
    status, body = served.probe("POST", "/validate", review)
    assert status == 404 and "probe port" in body["error"]
    assert served.probe("POST", "/mutate", review)[0] == 404


def test_prometheus_scrapes_the_probe_port_without_a_client_certificate(served: Served) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", served.probe_port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        text = response.read().decode()
    finally:
        conn.close()
    assert response.status == 200 and response.getheader("content-type", "").startswith("text/plain")
    assert "deployguard_policy_revision_info" in text
    assert response.getheader("server") is None  # no software banner


def test_a_client_certificate_from_another_ca_is_refused(served: Served) -> None:
    with pytest.raises((ssl.SSLError, ConnectionError)) as refused:
        served.get("/healthz", served.context("intruder"))
    assert "UNKNOWN_CA" in str(refused.value).upper() or isinstance(refused.value, ConnectionError)


def _client_up_to(served: Served, version: ssl.TLSVersion, client: str = "apiserver") -> ssl.SSLContext:
    context = served.context(client)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client offer TLS 1.0/1.1 at all
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = version
    return context


def test_tls_1_1_is_refused_by_the_server(served: Served) -> None:
    with pytest.raises(ssl.SSLError) as refused:
        served.get("/healthz", _client_up_to(served, ssl.TLSVersion.TLSv1_1))
    # The server's alert, or (uvicorn/asyncio) the server closing the handshake; not the
    # client failing on its own (that would be NO_PROTOCOLS_AVAILABLE, before any byte is sent).
    assert refused.value.reason in ("TLSV1_ALERT_PROTOCOL_VERSION", "UNEXPECTED_EOF_WHILE_READING"), refused.value


def test_the_same_client_at_tls_1_2_gets_through(served: Served) -> None:
    assert served.get("/healthz", _client_up_to(served, ssl.TLSVersion.TLSv1_2)) == 200


def _refused(served: Served, context: ssl.SSLContext) -> bool:
    try:
        served.get("/healthz", context)
    except (ssl.SSLError, ConnectionError):
        return True
    return False


def test_a_rotated_client_ca_is_trusted_and_the_old_one_is_not(served: Served) -> None:
    """Last in this module: it swaps the server's client CA. Rotated like the serving
    certificate (polled, no restart); a CA file that does not load is not taken."""
    client_ca = served.workdir / "client-ca.crt"
    _issue(served.workdir, "apiserver-2", ca=_issue(served.workdir, "client-ca-2", ca=None))
    assert _refused(served, served.context("apiserver-2"))

    def swap_in(content: bytes) -> None:  # atomically, as the kubelet updates a mounted Secret
        staged = served.workdir / "client-ca.crt.new"
        staged.write_bytes(content)
        staged.replace(client_ca)

    # A keep-alive connection authenticated under the old CA, open across the rotation.
    kept = http.client.HTTPSConnection("localhost", served.port, context=served.context("apiserver"), timeout=10)
    kept.request("GET", "/healthz")
    first = kept.getresponse()
    assert first.status == 200 and first.read()

    swap_in(b"-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
    time.sleep(1.0)  # five polls
    assert served.get("/healthz", served.context("apiserver")) == 200  # the broken file was not taken
    kept.request("GET", "/healthz")  # nor did the failed reload close connections
    second = kept.getresponse()
    assert second.status == 200 and second.read()

    swap_in((served.workdir / "client-ca-2.crt").read_bytes())
    deadline = time.monotonic() + 15
    while _refused(served, served.context("apiserver-2")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert served.get("/healthz", served.context("apiserver-2")) == 200
    assert _refused(served, served.context("apiserver"))  # the old CA is no longer trusted
    with pytest.raises((ConnectionError, ssl.SSLError, http.client.HTTPException)):  # nor its open connections
        kept.request("GET", "/healthz")
        kept.getresponse()
    kept.close()
    assert _refused(served, served.context())  # a client certificate is still required
    with pytest.raises(ssl.SSLError):  # and TLS 1.2 is still the floor
        served.get("/healthz", _client_up_to(served, ssl.TLSVersion.TLSv1_1, client="apiserver-2"))


def test_the_probe_port_has_the_head_limit_and_the_read_deadline(served: Served) -> None:
    """Plain HTTP, so anyone who reaches it could try the TLS port's slow and greedy clients:
    the same protocol (64 KiB heads) and the same sweep (10 s for a request to arrive whole)."""
    idle = socket.create_connection(("127.0.0.1", served.probe_port), timeout=20)
    greedy = socket.create_connection(("127.0.0.1", served.probe_port), timeout=10)
    greedy.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 70_000 + b"\r\n")
    answer = b""
    while chunk := greedy.recv(65536):
        answer += chunk
    assert answer.startswith(b"HTTP/1.1 400") and answer.endswith(b"over 65536 bytes"), answer[:200]
    assert served.probe("GET", "/healthz")[0] == 200
    assert idle.recv(1) == b""  # closed by the server (the 20 s timeout here would raise)
