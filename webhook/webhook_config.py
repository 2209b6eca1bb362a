"""Render the ValidatingWebhookConfiguration that registers deployguard. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The resources whose pod templates deployguard inspects (see workloads.py).
WORKLOAD_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("", ("pods", "replicationcontrollers")),
    ("apps", ("deployments", "statefulsets", "daemonsets", "replicasets")),
    ("batch", ("jobs", "cronjobs")),
    ("argoproj.io", ("rollouts",)),
)


@dataclass(frozen=True)
class WebhookRegistration:
    """Everything the API server needs to call deployguard."""

    ca_bundle: str  # base64 PEM
    url: str = ""  # either url ...
    service_name: str = "deployguard"  # ... or an in-cluster Service
    service_namespace: str = "deployguard"
    service_port: int = 443
    name: str = "deployguard"
    failure_policy: str = "Fail"
    timeout_seconds: int = 10
    exempt_namespaces: tuple[str, ...] = ("kube-system",)
    include_delete: bool = False
    # The optional /mutate endpoint (tag -> tag@digest for verified images) instead of /validate.
    mutating: bool = False


def render_webhook_configuration(reg: WebhookRegistration) -> dict[str, Any]:
    if reg.failure_policy not in ("Fail", "Ignore"):
        raise ValueError("failure policy must be Fail or Ignore")
    if not 1 <= reg.timeout_seconds <= 30:
        raise ValueError("timeoutSeconds must be between 1 and 30 (the API server's limit)")
    client: dict[str, Any] = {"caBundle": reg.ca_bundle}
    if reg.url:
        client["url"] = reg.url
    else:
        client["service"] = {
            "name": reg.service_name,
            "namespace": reg.service_namespace,
            "path": "/mutate" if reg.mutating else "/validate",
            "port": reg.service_port,
        }
    delete = ["DELETE"] if reg.include_delete and not reg.mutating else []
    operations = ["CREATE", "UPDATE", *delete]
    rules = [
        {
            "apiGroups": [group],
            "apiVersions": ["*"],
            "operations": operations,
            "resources": list(resources),
            "scope": "*",
        }
        for group, resources in WORKLOAD_RULES
    ]
    webhook_extra: dict[str, Any] = {"reinvocationPolicy": "IfNeeded"} if reg.mutating else {}
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration" if reg.mutating else "ValidatingWebhookConfiguration",
        "metadata": {"name": reg.name, "labels": {"app.kubernetes.io/name": "deployguard"}},
        "webhooks": [
            {
                "name": "mutate.deployguard.io" if reg.mutating else "validate.deployguard.io",
                "admissionReviewVersions": ["v1"],
                "clientConfig": client,
                "rules": rules,
                "failurePolicy": reg.failure_policy,
                "matchPolicy": "Equivalent",
                # The validating webhook writes (break-glass uses, Events) only for requests that
                # are not dry runs; the mutating one writes nothing.
                "sideEffects": "None" if reg.mutating else "NoneOnDryRun",
                "timeoutSeconds": reg.timeout_seconds,
                # A namespace label only the cluster sets: a workload cannot exempt itself.
                "namespaceSelector": {
                    "matchExpressions": [
                        {
                            "key": "kubernetes.io/metadata.name",
                            "operator": "NotIn",
                            "values": sorted(set(reg.exempt_namespaces)),
                        }
                    ]
                },
                **webhook_extra,
            }
        ],
    }
