"""The chart's manifests against the real API server of the e2e tier.

`helm template` output is applied with `kubectl apply --server-side`: the API server
validates every object (the webhook configuration's rules, CEL matchConditions,
RBAC, CronJob schedule...) and CRDs must become Established. The chart's webhook
configuration is applied for real only with failurePolicy Ignore and a
namespaceSelector that matches nothing, so the session's other tests are unaffected;
the default (fail-closed) rendering is checked with --dry-run=server. Then the
certificate Job's command runs as the chart's own ServiceAccount, which proves its
RBAC is enough, and the real authorizer shows it is not more.
"""

from __future__ import annotations

import base64
import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO, tool
from tests.controlplane import WEBHOOK_NAMESPACE, Kubectl, LocalControlPlane, deployguard_command, write_kubeconfig

pytestmark = pytest.mark.e2e

CHART = REPO / "charts" / "deployguard"
NAMESPACE = WEBHOOK_NAMESPACE  # exempt from the session's deployguard, as a release namespace is


def helm_template(release: str, *values: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [str(tool("helm")), "template", release, str(CHART), "--namespace", NAMESPACE, "--include-crds", *values],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def as_yaml(docs: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False)


def apply_harmlessly(kubectl: Kubectl, release: str) -> list[dict[str, Any]]:
    """The chart applied for real, its webhook unable to disturb the session: failurePolicy Ignore
    and a namespaceSelector that matches nothing. Returns the rendered documents."""
    docs = helm_template(
        release,
        "--set", "webhook.failurePolicy=Ignore",
        "--set", "webhook.namespaceSelectorExpressions[0].key=deployguard.io/chart-e2e-matches-nothing",
        "--set", "webhook.namespaceSelectorExpressions[0].operator=Exists",
    )  # fmt: skip
    applied = kubectl("apply", "--server-side", "-f", "-", stdin=as_yaml(docs))
    assert applied.ok, applied
    return docs


@pytest.fixture
def release(kubectl: Kubectl) -> Iterator[str]:
    """A unique release name; everything it applied is deleted afterwards."""
    name = f"dg{uuid.uuid4().hex[:6]}"
    kubectl.ensure_namespace(NAMESPACE)
    yield name
    selector = f"app.kubernetes.io/instance={name}"
    kinds = (
        "deployments,services,configmaps,secrets,serviceaccounts,roles,rolebindings,"
        "jobs,cronjobs,networkpolicies,poddisruptionbudgets"
    )
    kubectl("delete", kinds, "-n", NAMESPACE, "-l", selector, "--wait=false")
    kubectl("delete", "secrets", "-n", NAMESPACE, f"{name}-deployguard-tls", f"{name}-deployguard-ca", "--wait=false")
    kubectl("delete", "validatingwebhookconfigurations,clusterroles,clusterrolebindings", "-l", selector)


def test_rendered_chart_is_accepted_by_the_api_server(kubectl: Kubectl, release: str) -> None:
    # The defaults, fail closed, validated by the API server without being stored.
    dry = kubectl("apply", "--server-side", "--dry-run=server", "-f", "-", stdin=as_yaml(helm_template(release)))
    assert dry.ok, dry
    assert f"admissionregistration.k8s.io/{release}-deployguard-{NAMESPACE}" in dry.stdout
    # A NetworkPolicy narrowed to the API server's and Prometheus's addresses has a shape the API server takes.
    narrowed = helm_template(
        release,
        "--set", "networkPolicy.ingressFrom[0].ipBlock.cidr=10.0.0.0/24",
        "--set", "networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.team=monitoring",
        "--set", "metrics.serviceMonitor.enabled=false",
    )  # fmt: skip
    policies = [d for d in narrowed if d["kind"] == "NetworkPolicy"]
    dry = kubectl("apply", "--server-side", "--dry-run=server", "-f", "-", stdin=as_yaml(policies))
    assert dry.ok and "networkpolicy" in dry.stdout, dry

    docs = apply_harmlessly(kubectl, release)
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "ValidatingWebhookConfiguration", "CronJob", "Job", "NetworkPolicy"} <= kinds

    crds = [d for d in docs if d["kind"] == "CustomResourceDefinition"]
    assert len(crds) == 4, "the chart ships the ChangeFreeze/ChangeWindow CRDs (namespaced and cluster)"
    for crd in crds:
        name = crd["metadata"]["name"]
        waited = kubectl("wait", "--for=condition=Established", f"crd/{name}", "--timeout=30s")
        assert waited.ok, waited

    webhook_name = f"{release}-deployguard-{NAMESPACE}"
    stored = json.loads(kubectl("get", "validatingwebhookconfiguration", webhook_name, "-o", "json").stdout)
    (hook,) = stored["webhooks"]
    assert hook["failurePolicy"] == "Ignore"
    assert hook["clientConfig"]["service"] == {
        "name": f"{release}-deployguard",
        "namespace": NAMESPACE,
        "path": "/validate",
        "port": 443,
    }
    assert [c["name"] for c in hook["matchConditions"]] == ["not-kubelet-mirror-pods"]


def test_certificate_job_runs_with_its_own_least_privilege_account(
    control_plane: LocalControlPlane, kubectl: Kubectl, release: str, tmp_path: Path
) -> None:
    docs = apply_harmlessly(kubectl, release)
    (cronjob,) = [d for d in docs if d["kind"] == "CronJob"]
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    account = pod["serviceAccountName"]
    args = pod["containers"][0]["args"]

    # What the real authorizer lets that account do: its Secrets and webhook, nothing else.
    who = f"--as=system:serviceaccount:{NAMESPACE}:{account}"
    webhook_name = f"{release}-deployguard-{NAMESPACE}"
    allowed = {
        ("update", f"secret/{release}-deployguard-tls", NAMESPACE): "yes",
        ("get", f"secret/{release}-deployguard-ca", NAMESPACE): "yes",
        ("get", "secret/some-other-secret", NAMESPACE): "no",
        ("list", "secrets", NAMESPACE): "no",
        ("create", "secrets", "default"): "no",
        ("update", f"validatingwebhookconfiguration/{webhook_name}", ""): "yes",
        ("update", "validatingwebhookconfiguration/deployguard", ""): "no",
        ("create", "deployments", NAMESPACE): "no",
    }
    for (verb, what, ns), answer in allowed.items():
        scope = ["-n", ns] if ns else []
        result = kubectl("auth", "can-i", verb, what, *scope, who)
        assert result.stdout.strip() == answer, f"{account} can-i {verb} {what}: {result}"

    # Run the Job's command with a token of that account, as the pod would.
    token = kubectl("create", "token", account, "-n", NAMESPACE)
    assert token.ok, token
    kubeconfig = write_kubeconfig(
        tmp_path / "kubeconfig",
        server=control_plane.apiserver.url,
        token=token.stdout.strip(),
        ca_file=control_plane.apiserver.ca_file,
        user=account,
    )
    command = [*deployguard_command(), *args, f"--kubeconfig={kubeconfig}"]

    def run_job() -> str:
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    first = run_job()
    assert "renewed" in first and "no CA yet" in first
    secret = json.loads(kubectl("get", "secret", f"{release}-deployguard-tls", "-n", NAMESPACE, "-o", "json").stdout)
    assert secret["type"] == "kubernetes.io/tls"
    assert {"tls.crt", "tls.key", "ca.crt"} <= set(secret["data"])
    stored = json.loads(kubectl("get", "validatingwebhookconfiguration", webhook_name, "-o", "json").stdout)
    assert stored["webhooks"][0]["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]
    assert b"BEGIN CERTIFICATE" in base64.b64decode(secret["data"]["ca.crt"])

    second = run_job()
    assert "certificates are current" in second
    again = json.loads(kubectl("get", "secret", f"{release}-deployguard-tls", "-n", NAMESPACE, "-o", "json").stdout)
    assert again["data"] == secret["data"]
