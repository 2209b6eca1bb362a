"""The ValidatingWebhookConfiguration as the API server stored it, from `deployguard render webhook-config`."""

from __future__ import annotations

import base64
import json

import pytest

from tests.controlplane import CONFIGURATION_NAME, WEBHOOK_NAME, WEBHOOK_NAMESPACE, DeployguardServer, Kubectl

pytestmark = pytest.mark.e2e


def test_the_registered_configuration_is_what_the_api_server_needs(
    kubectl: Kubectl, deployguard: DeployguardServer
) -> None:
    result = kubectl("get", "validatingwebhookconfiguration", CONFIGURATION_NAME, "-o", "json")
    assert result.ok, result
    [webhook] = json.loads(result.stdout)["webhooks"]

    assert webhook["name"] == WEBHOOK_NAME
    assert webhook["clientConfig"]["url"] == deployguard.url
    assert webhook["clientConfig"]["url"].startswith("https://127.0.0.1:")
    assert base64.b64decode(webhook["clientConfig"]["caBundle"]) == deployguard.ca_file.read_bytes()
    assert webhook["sideEffects"] == "NoneOnDryRun"  # break-glass uses and Events: never on a dry run
    assert webhook["admissionReviewVersions"] == ["v1"]
    assert webhook["failurePolicy"] == "Fail"
    assert 1 <= webhook["timeoutSeconds"] <= 30
    resources = {(group, resource) for rule in webhook["rules"] for group in rule["apiGroups"]
                 for resource in rule["resources"]}  # fmt: skip
    for wanted in [("", "pods"), ("apps", "deployments"), ("apps", "statefulsets"), ("apps", "daemonsets"),
                   ("apps", "replicasets"), ("batch", "jobs"), ("batch", "cronjobs")]:  # fmt: skip
        assert wanted in resources
    assert all(set(rule["operations"]) >= {"CREATE", "UPDATE"} for rule in webhook["rules"])
    [expression] = webhook["namespaceSelector"]["matchExpressions"]
    assert expression["key"] == "kubernetes.io/metadata.name"
    assert expression["operator"] == "NotIn"
    assert {WEBHOOK_NAMESPACE, "kube-system"} <= set(expression["values"])
