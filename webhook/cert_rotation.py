"""When to renew the webhook's CA and serving certificate, and what to publish. Pure.

`deployguard certs kube` (webhook/cert_install.py) reads the stored certificates,
asks ``plan_renewal`` what must change, and publishes a CA bundle that holds the
new CA *and* the old one while the old one is valid, so the API server trusts the
serving certificate before and after the Secret volume catches up.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization


@dataclass(frozen=True)
class StoredCertificates:
    """What the Secrets hold now (PEM bytes; None where missing)."""

    ca_cert: bytes | None = None
    ca_key: bytes | None = None
    tls_cert: bytes | None = None
    tls_key: bytes | None = None


@dataclass(frozen=True)
class RenewalPlan:
    """What to make anew, and why (for the Job's log)."""

    new_ca: bool
    new_serving: bool
    reasons: tuple[str, ...]

    @property
    def changes(self) -> bool:
        return self.new_ca or self.new_serving


def _load(pem: bytes | None) -> x509.Certificate | None:
    if not pem:
        return None
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError:
        return None


def _sans(cert: x509.Certificate) -> set[str]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return set()
    return set(ext.value.get_values_for_type(x509.DNSName))


def plan_renewal(
    stored: StoredCertificates, *, now: dt.datetime, dns_names: list[str], renew_before: dt.timedelta
) -> RenewalPlan:
    """Renew what is missing, unreadable, expiring within ``renew_before`` or for other names."""
    reasons: list[str] = []
    ca = _load(stored.ca_cert)
    new_ca = False
    if ca is None or not stored.ca_key:
        new_ca, reasons = True, [*reasons, "no CA yet"]
    elif ca.not_valid_after_utc - renew_before <= now:
        new_ca, reasons = True, [*reasons, f"CA expires {ca.not_valid_after_utc:%Y-%m-%d}"]
    serving = _load(stored.tls_cert)
    new_serving = new_ca
    if serving is None or not stored.tls_key:
        new_serving, reasons = True, [*reasons, "no serving certificate yet"]
    elif serving.not_valid_after_utc - renew_before <= now:
        new_serving, reasons = True, [*reasons, f"serving certificate expires {serving.not_valid_after_utc:%Y-%m-%d}"]
    elif not set(dns_names) <= _sans(serving):
        new_serving, reasons = True, [*reasons, f"serving certificate lacks {sorted(set(dns_names) - _sans(serving))}"]
    elif ca is not None and serving.issuer != ca.subject:
        new_serving, reasons = True, [*reasons, "serving certificate not issued by the stored CA"]
    return RenewalPlan(new_ca=new_ca, new_serving=new_serving, reasons=tuple(reasons))


def ca_bundle(new_ca: bytes, old_ca: bytes | None, *, now: dt.datetime) -> bytes:
    """The CA(s) the API server must trust: the current one, plus the previous one while valid."""
    bundle = [x509.load_pem_x509_certificate(new_ca)]
    previous = _load(old_ca)
    if previous is not None and previous != bundle[0] and previous.not_valid_after_utc > now:
        bundle.append(previous)
    return b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in bundle)


def first_certificate(pem: bytes) -> bytes:
    """The leaf of a chain file (tls.crt holds the serving certificate, then its CA)."""
    cert = x509.load_pem_x509_certificate(pem)
    return cert.public_bytes(serialization.Encoding.PEM)
