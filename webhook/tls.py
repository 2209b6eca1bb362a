"""Certificates: generate a CA and serving certificate, and reload them on rotation.

The API server only talks TLS to webhooks; deployguard never serves plain HTTP.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import ipaddress
import logging
import os
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger("deployguard.tls")


@dataclass(frozen=True)
class CertificatePaths:
    """The files ``generate_certificates`` writes."""

    ca_cert: Path
    ca_key: Path
    cert: Path
    key: Path

    @classmethod
    def in_directory(cls, directory: Path) -> CertificatePaths:
        return cls(directory / "ca.crt", directory / "ca.key", directory / "tls.crt", directory / "tls.key")

    def ca_bundle(self) -> str:
        """The CA as base64 PEM, as ``caBundle`` in a webhook configuration wants it."""
        return base64.b64encode(self.ca_cert.read_bytes()).decode()


def service_names(service: str, namespace: str) -> list[str]:
    return [service, f"{service}.{namespace}", f"{service}.{namespace}.svc", f"{service}.{namespace}.svc.cluster.local"]


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)  # atomic: a reader never sees half a key


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def generate_certificates(
    directory: Path,
    *,
    dns_names: Sequence[str],
    ip_addresses: Sequence[str] = (),
    valid_days: int = 365,
    reuse_ca: bool = True,
) -> CertificatePaths:
    """Write a CA (kept if present and ``reuse_ca``) and a serving cert it signs."""
    paths = CertificatePaths.in_directory(directory)
    now = dt.datetime.now(dt.UTC)
    if reuse_ca and paths.ca_cert.exists() and paths.ca_key.exists():
        ca_key = serialization.load_pem_private_key(paths.ca_key.read_bytes(), password=None)
        ca_cert = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    else:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "deployguard webhook CA")])
        ca_cert = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=max(valid_days, 3650)))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            # Key identifiers: every CA is named alike, so a two-CA bundle (CA roll-over) needs
            # them for OpenSSL clients to pick the right issuer ("certificate signature failure").
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        _write_private(paths.ca_key, _key_pem(ca_key))
        _write_private(paths.ca_cert, ca_cert.public_bytes(serialization.Encoding.PEM))
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, (dns_names or ["deployguard"])[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=valid_days))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    # Key first, then certificate: the reloader keys on the certificate's change.
    _write_private(paths.key, _key_pem(key))
    _write_private(
        paths.cert, cert.public_bytes(serialization.Encoding.PEM) + ca_cert.public_bytes(serialization.Encoding.PEM)
    )
    return paths


def server_context(certfile: Path, keyfile: Path, client_ca: Path | None = None) -> ssl.SSLContext:
    """The listener's TLS settings, in one place for the start and every reload.

    TLS 1.2 at least, Python's server defaults otherwise; with ``client_ca``, a client
    certificate signed by it (and by nothing else: no system CAs) is required (mTLS:
    only the API server gets in). Raises ssl.SSLError or OSError on a bad file.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile, keyfile)
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(client_ca)
    return context


class CertificateReloader:
    """Serves new handshakes with the certificate, key and client CA on disk when they change.

    The listener keeps the context it was started with; at each handshake (its ClientHello,
    SNI or not) that context hands the connection over to the newest complete one. A new
    context is built from scratch, so a rotated client CA also stops trusting the old CA,
    which adding certificates to a live context could never do. A file that does not load
    leaves the current context serving (logged), and is tried again at the next change.
    """

    def __init__(
        self,
        context: ssl.SSLContext,
        certfile: Path,
        keyfile: Path,
        client_ca: Path | None = None,
        *,
        interval: float = 5.0,
        on_client_ca_change: Callable[[], int] | None = None,
    ) -> None:
        self.context, self.certfile, self.keyfile, self.client_ca = context, certfile, keyfile, client_ca
        self.interval = interval
        self.on_client_ca_change = on_client_ca_change
        self.current = context
        context.sni_callback = self._hand_over
        self._stamp = self._fingerprint()
        self._client_ca_pem = self._read_client_ca()
        self.reloads = 0

    def _hand_over(self, connection: ssl.SSLObject | ssl.SSLSocket, _name: str | None, _ctx: ssl.SSLContext) -> None:
        current = self.current
        if current is not self.context:
            connection.context = current

    def _read_client_ca(self) -> bytes:
        try:
            return self.client_ca.read_bytes() if self.client_ca else b""
        except OSError:
            return b""

    def _fingerprint(self) -> tuple[float | int, ...]:
        files = (self.certfile, self.keyfile, *([self.client_ca] if self.client_ca else []))
        return tuple(value for stat in map(Path.stat, files) for value in (stat.st_mtime, stat.st_ino))

    def check(self) -> bool:
        """Reload if a file changed; a broken set is logged and the current context kept."""
        try:
            stamp = self._fingerprint()
        except OSError as exc:
            log.error("cannot stat the serving certificate or client CA: %s", exc)
            return False
        if stamp == self._stamp:
            return False
        try:
            # Built whole before it serves: a half-written rotation (a certificate that does
            # not match its key, a truncated CA) never reaches a handshake.
            fresh = server_context(self.certfile, self.keyfile, self.client_ca)
        except (ssl.SSLError, OSError) as exc:
            log.error("new serving certificate or client CA not loaded (keeping the current ones): %s", exc)
            return False
        self.current = fresh
        self._stamp = stamp
        self.reloads += 1
        log.info("serving certificate%s reloaded from %s", " and client CA" if self.client_ca else "", self.certfile)
        client_ca_pem = self._read_client_ca()
        if client_ca_pem != self._client_ca_pem:
            self._client_ca_pem = client_ca_pem
            if self.on_client_ca_change is not None:
                closed = self.on_client_ca_change()
                log.warning("client CA changed: closing %d open connection(s) authenticated under the previous "
                            "one (idle now, busy after their answer)", closed)  # fmt: skip
        return True

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.check()
