"""The chart's certificate Job: what it renews, and that trust is published before use."""

from __future__ import annotations

import datetime as dt

from cryptography import x509

from webhook.cert_install import InstallTarget, install_certificates
from webhook.cert_rotation import StoredCertificates, plan_renewal

# Certificates are minted with the real clock (webhook/tls.py); plans are asked relative to it.
NOW = dt.datetime.now(dt.UTC)
TARGET = InstallTarget(
    namespace="deployguard", tls_secret="dg-tls", ca_secret="dg-ca", service="dg", webhook="dg-deployguard"
)


class FakeStore:
    """In-memory Secrets and webhook configuration, recording the order of writes."""

    def __init__(self, *, webhook_exists: bool = True) -> None:
        self.secrets: dict[str, dict[str, bytes]] = {}
        self.bundle: bytes | None = None
        self.webhook_exists = webhook_exists
        self.calls: list[str] = []

    def read_secret(self, name: str) -> dict[str, bytes] | None:
        return dict(self.secrets[name]) if name in self.secrets else None

    def write_secret(self, name: str, data: dict[str, bytes], *, labels: dict[str, str]) -> None:
        self.calls.append(f"secret {name}")
        self.secrets[name] = dict(data)

    def publish_ca_bundle(self, webhook: str, bundle: bytes) -> bool:
        if not self.webhook_exists:
            return False
        if bundle != self.bundle:
            self.calls.append("bundle")
        self.bundle = bundle
        return True


def certs(pem: bytes) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(pem)


def test_first_run_makes_ca_and_serving_certificate_for_the_service_names() -> None:
    store = FakeStore()
    result = install_certificates(store, TARGET, now=NOW)
    assert result.plan.new_ca and result.plan.new_serving
    leaf, ca = certs(store.secrets["dg-tls"]["tls.crt"])
    leaf.verify_directly_issued_by(ca)
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "dg.deployguard.svc" in sans.get_values_for_type(x509.DNSName)
    assert store.bundle == store.secrets["dg-tls"]["ca.crt"] == store.secrets["dg-ca"]["tls.crt"]
    assert "certificates are current" not in result.summary(TARGET)


def test_second_run_changes_nothing() -> None:
    store = FakeStore()
    install_certificates(store, TARGET, now=NOW)
    before = {k: dict(v) for k, v in store.secrets.items()}
    store.calls.clear()
    result = install_certificates(store, TARGET, now=NOW + dt.timedelta(days=1))
    assert not result.plan.changes
    assert store.calls == []
    assert store.secrets == before
    assert "certificates are current" in result.summary(TARGET)


def test_serving_certificate_renewed_before_expiry_with_the_same_ca() -> None:
    store = FakeStore()
    install_certificates(store, TARGET, now=NOW)
    old_leaf = store.secrets["dg-tls"]["tls.crt"]
    old_bundle = store.bundle
    result = install_certificates(store, TARGET, now=NOW + dt.timedelta(days=340))  # 25 days left < 30
    assert result.plan.new_serving and not result.plan.new_ca
    assert store.secrets["dg-tls"]["tls.crt"] != old_leaf
    assert store.bundle == old_bundle  # same CA: the API server needs no change
    leaf, _ = certs(store.secrets["dg-tls"]["tls.crt"])
    leaf.verify_directly_issued_by(certs(store.secrets["dg-ca"]["tls.crt"])[0])


def test_new_ca_is_trusted_alongside_the_old_one_before_the_new_certificate_is_served() -> None:
    store = FakeStore()
    install_certificates(store, TARGET, now=NOW)
    old_ca = certs(store.secrets["dg-ca"]["tls.crt"])[0]
    store.calls.clear()
    later = NOW + dt.timedelta(days=3650 - 20)  # the CA (10 years) has 20 days left
    result = install_certificates(store, TARGET, now=later)
    assert result.plan.new_ca and result.plan.new_serving
    assert store.bundle is not None
    bundle = certs(store.bundle)
    assert len(bundle) == 2 and bundle[1] == old_ca and bundle[0] != old_ca
    certs(store.secrets["dg-tls"]["tls.crt"])[0].verify_directly_issued_by(bundle[0])
    assert store.calls == ["secret dg-ca", "bundle", "secret dg-tls"]


def test_without_the_webhook_configuration_the_secret_is_still_written() -> None:
    store = FakeStore(webhook_exists=False)
    result = install_certificates(store, TARGET, now=NOW)
    assert not result.bundle_published
    assert "dg-tls" in store.secrets
    assert "post-install" in result.summary(TARGET)


def test_certificate_for_other_names_is_replaced() -> None:
    store = FakeStore()
    install_certificates(store, TARGET, now=NOW)
    renamed = InstallTarget(
        namespace="deployguard", tls_secret="dg-tls", ca_secret="dg-ca", service="other", webhook="dg-deployguard"
    )
    result = install_certificates(store, renamed, now=NOW)
    assert result.plan.new_serving and not result.plan.new_ca
    assert any("lacks" in r for r in result.plan.reasons)


def test_unreadable_certificates_are_replaced() -> None:
    stored = StoredCertificates(ca_cert=b"garbage", ca_key=b"x", tls_cert=b"garbage", tls_key=b"x")
    plan = plan_renewal(stored, now=NOW, dns_names=["dg"], renew_before=dt.timedelta(days=30))
    assert plan.new_ca and plan.new_serving
