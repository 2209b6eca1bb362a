"""Single use of break-glass tokens (webhook/facts/break_glass.py) against a fake of our KubeApi."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests import factories
from webhook.admission import parse_review
from webhook.break_glass import new_claims, sign, template_hash
from webhook.config import BreakGlassSettings
from webhook.facts.break_glass import BreakGlassGatherer
from webhook.kube_api import AlreadyExists, KubeApi, KubeApiError
from webhook.policy_input import Subject
from webhook.workloads import ChangeType, WorkloadKinds


class FakeKube(KubeApi):
    """Leases in memory, with the API server's create-if-absent answer; or a refusal for everything."""

    def __init__(self, refuse: bool = False) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.refuse = refuse

    async def create(self, path: str, obj: dict[str, Any]) -> dict[str, Any]:
        if self.refuse:
            raise KubeApiError(f"POST {path}: HTTP 403: leases is forbidden")
        key = f"{path}/{obj['metadata']['name']}"
        if key in self.objects:
            raise AlreadyExists(f"POST {path}: already exists")
        self.objects[key] = copy.deepcopy(obj)
        return obj

    async def get(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        return self.objects[path]


def _subject(token: str, uid: str) -> Subject:
    old = factories.workload("Deployment", factories.PINNED)
    new = factories.workload("Deployment", "nginx@sha256:" + "1" * 64)
    new["metadata"]["annotations"] = {"deployguard.io/break-glass": token}
    request = parse_review(factories.admission_review(new, operation="UPDATE", old=old, uid=uid))
    template = WorkloadKinds.with_custom().pod_template("apps", "Deployment", new)
    return Subject(request=request, change=ChangeType.ROLLOUT, template=template)


def _token(key: Ed25519PrivateKey) -> str:
    new = factories.workload("Deployment", "nginx@sha256:" + "1" * 64)
    digest = template_hash(WorkloadKinds.with_custom().pod_template("apps", "Deployment", new))
    claims = new_claims(namespace="shop", kind="Deployment", name="web", template_hash=digest, reason="outage",
                        ticket="INC-1", ttl_seconds=600, now=datetime.now(UTC))  # fmt: skip
    return sign(claims, key, "oncall")


async def test_a_token_admits_once_a_retry_of_the_same_request_too_and_a_replay_never() -> None:
    key = Ed25519PrivateKey.generate()
    kube = FakeKube()
    gatherer = BreakGlassGatherer(BreakGlassSettings(), {"oncall": key.public_key()}, kube)
    token = _token(key)

    first = await gatherer.gather(_subject(token, "uid-1"))
    retry = await gatherer.gather(_subject(token, "uid-1"))  # the API server retrying one request
    replay = await gatherer.gather(_subject(token, "uid-2"))

    assert first["valid"] is True and retry["valid"] is True, (first, retry)
    assert replay["valid"] is False and "already used at" in replay["error"] and "single use" in replay["error"]
    [lease] = kube.objects.values()
    assert lease["kind"] == "Lease" and lease["metadata"]["namespace"] == "deployguard-system"
    assert lease["metadata"]["annotations"]["deployguard.io/break-glass-object"] == "Deployment shop/web"


async def test_a_use_that_cannot_be_recorded_is_not_accepted() -> None:
    key = Ed25519PrivateKey.generate()
    gatherer = BreakGlassGatherer(BreakGlassSettings(), {"oncall": key.public_key()}, FakeKube(refuse=True))

    fact = await gatherer.gather(_subject(_token(key), "uid-1"))

    assert fact["valid"] is False and "single use cannot be recorded" in fact["error"] and "403" in fact["error"]
