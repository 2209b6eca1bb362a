"""Keep the webhook's certificates in Kubernetes: the Secrets and the caBundle.

The I/O edge of `deployguard certs kube`, which the Helm chart runs before and
after install/upgrade and from a daily CronJob. The decisions are in
webhook/cert_rotation.py; certificates are made by webhook/tls.py. The RBAC it
needs is exactly: create Secrets, get/update the two named Secrets, get/update
the one named ValidatingWebhookConfiguration.
"""

from __future__ import annotations

import base64
import datetime as dt
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from webhook.cert_rotation import RenewalPlan, StoredCertificates, ca_bundle, plan_renewal
from webhook.errors import DeployguardError
from webhook.tls import CertificatePaths, generate_certificates, service_names


class CertInstallError(DeployguardError):
    """The Kubernetes API refused or failed a step; the message says which."""


class CertificateStore(Protocol):
    """The three objects the installer reads and writes."""

    def read_secret(self, name: str) -> dict[str, bytes] | None: ...

    def write_secret(self, name: str, data: dict[str, bytes], *, labels: dict[str, str]) -> None: ...

    def publish_ca_bundle(self, webhook: str, bundle: bytes) -> bool:
        """Set caBundle on every webhook of the configuration; False when it does not exist yet."""
        ...


@dataclass(frozen=True)
class InstallTarget:
    """Which Secrets and webhook configuration, for which Service."""

    namespace: str
    tls_secret: str
    ca_secret: str
    service: str
    webhook: str
    valid_days: int = 365
    renew_before_days: int = 30


@dataclass(frozen=True)
class InstallResult:
    plan: RenewalPlan
    bundle_published: bool

    def summary(self, target: InstallTarget) -> str:
        what = "renewed " + ", ".join(self.plan.reasons) if self.plan.changes else "certificates are current"
        where = (
            f"caBundle of {target.webhook} is up to date"
            if self.bundle_published
            else f"ValidatingWebhookConfiguration {target.webhook} does not exist yet (the post-install run sets it)"
        )
        return f"{target.namespace}/{target.tls_secret}: {what}; {where}"


LABELS = {"app.kubernetes.io/name": "deployguard", "app.kubernetes.io/component": "certificates"}


def install_certificates(store: CertificateStore, target: InstallTarget, *, now: dt.datetime) -> InstallResult:
    """Renew what needs it, publish the CA bundle first, then the serving certificate."""
    names = service_names(target.service, target.namespace)
    ca_data = store.read_secret(target.ca_secret) or {}
    tls_data = store.read_secret(target.tls_secret) or {}
    stored = StoredCertificates(
        ca_cert=ca_data.get("tls.crt"),
        ca_key=ca_data.get("tls.key"),
        tls_cert=tls_data.get("tls.crt"),
        tls_key=tls_data.get("tls.key"),
    )
    plan = plan_renewal(stored, now=now, dns_names=names, renew_before=dt.timedelta(days=target.renew_before_days))
    ca_cert, tls_cert, tls_key = stored.ca_cert, stored.tls_cert, stored.tls_key
    ca_key = stored.ca_key
    if plan.changes:
        with tempfile.TemporaryDirectory(prefix="deployguard-certs-") as tmp:
            paths = CertificatePaths.in_directory(Path(tmp))
            if not plan.new_ca and ca_cert and ca_key:
                paths.ca_cert.write_bytes(ca_cert)
                paths.ca_key.write_bytes(ca_key)
            generate_certificates(Path(tmp), dns_names=names, valid_days=target.valid_days, reuse_ca=not plan.new_ca)
            ca_cert, ca_key = paths.ca_cert.read_bytes(), paths.ca_key.read_bytes()
            tls_cert, tls_key = paths.cert.read_bytes(), paths.key.read_bytes()
    assert ca_cert and ca_key and tls_cert and tls_key
    # The previous bundle may hold a CA still trusted by clients: keep it while valid.
    bundle = ca_bundle(ca_cert, stored.ca_cert if plan.new_ca else None, now=now)
    if plan.new_ca:
        store.write_secret(target.ca_secret, {"tls.crt": ca_cert, "tls.key": ca_key}, labels=LABELS)
    # Trust first: the API server accepts old and new serving certificates from here on.
    published = store.publish_ca_bundle(target.webhook, bundle)
    if plan.changes or tls_data.get("ca.crt") != bundle:
        store.write_secret(
            target.tls_secret, {"tls.crt": tls_cert, "tls.key": tls_key, "ca.crt": bundle}, labels=LABELS
        )
    return InstallResult(plan=plan, bundle_published=published)


class KubernetesCertificateStore:
    """CertificateStore on the official Kubernetes client (kubeconfig or in-cluster)."""

    def __init__(self, namespace: str, kubeconfig: Path | None = None, timeout_seconds: float = 10.0) -> None:
        from kubernetes import client

        from webhook.kube_client import api_client as make_api_client

        api_client = make_api_client(kubeconfig, urllib3_retries=True)  # a one-shot Job: retry transient errors
        self._core = client.CoreV1Api(api_client)
        self._admission = client.AdmissionregistrationV1Api(api_client)
        self._namespace = namespace
        self._timeout = timeout_seconds

    @staticmethod
    def _fail(what: str, exc: Any) -> CertInstallError:
        status = getattr(exc, "status", "")
        reason = getattr(exc, "reason", "") or str(exc)
        return CertInstallError(f"{what}: {status} {reason}".strip())

    def read_secret(self, name: str) -> dict[str, bytes] | None:
        from kubernetes.client.exceptions import ApiException

        try:
            secret = self._core.read_namespaced_secret(name, self._namespace, _request_timeout=self._timeout)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise self._fail(f"cannot read Secret {self._namespace}/{name}", exc) from None
        return {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}

    def write_secret(self, name: str, data: dict[str, bytes], *, labels: dict[str, str]) -> None:
        from kubernetes.client.exceptions import ApiException

        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "kubernetes.io/tls",
            "metadata": {"name": name, "namespace": self._namespace, "labels": labels},
            "data": {k: base64.b64encode(v).decode() for k, v in data.items()},
        }
        try:
            # The client serialises a plain dict as it would its own model.
            self._core.replace_namespaced_secret(name, self._namespace, body, _request_timeout=self._timeout)  # type: ignore[arg-type]
        except ApiException as exc:
            if exc.status != 404:
                raise self._fail(f"cannot update Secret {self._namespace}/{name}", exc) from None
            try:
                self._core.create_namespaced_secret(self._namespace, body, _request_timeout=self._timeout)  # type: ignore[arg-type]
            except ApiException as exc2:
                raise self._fail(f"cannot create Secret {self._namespace}/{name}", exc2) from None

    def publish_ca_bundle(self, webhook: str, bundle: bytes) -> bool:
        from kubernetes.client.exceptions import ApiException

        encoded = base64.b64encode(bundle).decode()
        api = self._admission
        for _ in range(5):  # optimistic concurrency: retry on a conflicting write
            try:
                config = api.read_validating_webhook_configuration(webhook, _request_timeout=self._timeout)
            except ApiException as exc:
                if exc.status == 404:
                    return False
                raise self._fail(f"cannot read ValidatingWebhookConfiguration {webhook}", exc) from None
            if all(w.client_config.ca_bundle == encoded for w in config.webhooks or []):
                return True
            for w in config.webhooks or []:
                w.client_config.ca_bundle = encoded
            try:
                api.replace_validating_webhook_configuration(webhook, config, _request_timeout=self._timeout)
                return True
            except ApiException as exc:
                if exc.status != 409:
                    raise self._fail(f"cannot update ValidatingWebhookConfiguration {webhook}", exc) from None
        raise CertInstallError(f"ValidatingWebhookConfiguration {webhook} kept changing under us; try again")
