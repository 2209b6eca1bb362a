"""A workload cannot exempt itself, and a break-glass token cannot be re-scoped.

Everything here is written by whoever submits the workload: labels, annotations,
owner references, the namespace it claims in its own metadata. None of it may turn a
denial into an allow; only the operator's settings and signed approvals can.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.factories import admission_review, workload
from webhook.admission import parse_review
from webhook.governance.break_glass import BreakGlassError, new_claims, sign, template_hash, verify
from webhook.reviewer import Reviewer
from webhook.workloads import PodTemplate

EXEMPTION_ATTEMPTS: list[dict[str, str]] = [
    {"deployguard.io/exempt": "true"},
    {"deployguard.io/skip": "true", "deployguard.io/skip-checks": "all"},
    {"deployguard.io/mode": "dryrun", "deployguard.io/enforce": "false"},
    {"deployguard.io/rules.digest_pinning.mode": "dryrun"},
    {"deployguard.io/break-glass": "not-a-token"},
    {"admission.deployguard.io/ignore": "true", "policy.deployguard.io/exempt": "true"},
    {"kubernetes.io/metadata.name": "kube-system"},  # the exempt namespaces' label, on the object itself
    {"control-plane": "true", "app.kubernetes.io/managed-by": "deployguard"},
]


async def _answer(reviewer: Reviewer, doc: dict[str, Any]) -> dict[str, Any]:
    outcome = await reviewer.review(parse_review(doc))
    return outcome.response["response"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("marks", EXEMPTION_ATTEMPTS)
@pytest.mark.parametrize("where", ["labels", "annotations"])
async def test_labels_and_annotations_do_not_exempt(reviewer: Reviewer, marks: dict[str, str], where: str) -> None:
    obj = workload("Deployment", "nginx:latest")
    obj["metadata"].setdefault(where, {}).update(marks)
    obj["spec"]["template"]["metadata"].setdefault(where, {}).update(marks)
    response = await _answer(reviewer, admission_review(obj))
    assert response["allowed"] is False
    assert "[digest_pinning]" in response["status"]["message"]


@pytest.mark.parametrize("claimed", ["kube-system", "deployguard-system", ""])
async def test_the_namespace_an_object_claims_is_not_the_one_it_is_in(reviewer: Reviewer, claimed: str) -> None:
    obj = workload("Deployment", "nginx:latest", namespace=claimed)
    doc = admission_review(obj)
    doc["request"]["namespace"] = "shop"  # the API server's word, not the object's
    response = await _answer(reviewer, doc)
    assert response["allowed"] is False


async def test_a_user_named_like_a_controller_in_the_object_is_not_a_controller(reviewer: Reviewer) -> None:
    pod = workload("Pod", "nginx:1.27")
    pod["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
                                           "uid": "u", "controller": True}]
    pod["metadata"]["annotations"] = {"kubernetes.io/created-by": "system:kube-controller-manager"}
    pod["metadata"]["managedFields"] = [{"manager": "kube-controller-manager", "operation": "Update"}]
    response = await _answer(reviewer, admission_review(pod))
    assert response["allowed"] is False


# ---- break-glass: no replay onto another object, template or namespace --------------

KEY, OTHER = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
NOW = datetime(2026, 11, 27, 12, tzinfo=UTC)
TEMPLATE = PodTemplate(labels={"app": "web"}, annotations={}, spec={"containers": [{"name": "web", "image": "x"}]})
SCOPE = {"namespace": "shop", "kind": "Deployment", "name": "web", "template_hash": template_hash(TEMPLATE)}


def _claims(**over: object) -> dict[str, Any]:
    claims = new_claims(**SCOPE, reason="hotfix", ticket="INC-1", ttl_seconds=3600, now=NOW)  # type: ignore[arg-type]
    claims.update(over)
    return claims


def _check(annotation: str, *, required: int = 1, **scope: str) -> object:
    return verify(annotation, keys={"alice": KEY.public_key(), "bob": OTHER.public_key()}, required=required,
                  now=NOW, max_ttl_seconds=4 * 3600, **{**SCOPE, **scope})  # type: ignore[arg-type]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_the_genuine_token_admits_its_own_change() -> None:
    assert _check(sign(_claims(), KEY, "alice")).approvers == ("alice",)  # type: ignore[attr-defined]


@pytest.mark.parametrize(("scope", "reason"), [
    ({"namespace": "prod"}, "namespace is shop"),
    ({"kind": "StatefulSet"}, "kind is Deployment"),
    ({"name": "api"}, "name is web"),
    ({"template_hash": template_hash(PodTemplate(labels={"app": "web"}, annotations={},
                                                 spec={"containers": [{"name": "web", "image": "evil"}]}))},
     "another pod template"),
])
def test_a_token_cannot_be_used_for_another_scope(scope: dict[str, str], reason: str) -> None:
    with pytest.raises(BreakGlassError, match=reason):
        _check(sign(_claims(), KEY, "alice"), **scope)


def test_rewriting_the_claims_of_a_signed_token_breaks_its_signature() -> None:
    header, _, signature = sign(_claims(), KEY, "alice").split(".")
    for field, value in (("namespace", "prod"), ("name", "api"), ("exp", _claims()["exp"] + 3600)):
        forged = _b64(json.dumps(_claims(**{field: value}), sort_keys=True, separators=(",", ":")).encode())
        with pytest.raises(BreakGlassError, match="does not verify"):
            _check(f"{header}.{forged}.{signature}", **({field: value} if field != "exp" else {}))  # type: ignore[arg-type]


def test_unsigned_and_other_algorithm_tokens_are_refused() -> None:
    payload = _b64(json.dumps(_claims()).encode())
    for alg in ("none", "HS256"):
        header = _b64(json.dumps({"alg": alg, "typ": "deployguard-break-glass+jws", "kid": "alice"}).encode())
        with pytest.raises(BreakGlassError, match="not a deployguard break-glass token"):
            _check(f"{header}.{payload}.")


def test_approvals_for_different_changes_cannot_be_combined() -> None:
    mine = sign(_claims(), KEY, "alice")
    other_change = sign(_claims(name="api"), OTHER, "bob")
    with pytest.raises(BreakGlassError, match="signed different claims"):
        _check(f"{mine} {other_change}", required=2)
