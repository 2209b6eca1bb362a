from __future__ import annotations

from typing import Any

import pytest

from webhook.admission import MAX_WARNING_CHARS, clip_warning, parse_review, review_response
from webhook.errors import BadReview


def review(**request: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "uid": "u-1",
        "operation": "CREATE",
        "kind": {"group": "apps", "version": "v1", "kind": "Deployment"},
        "namespace": "shop",
        "userInfo": {"username": "alice", "groups": ["devs"]},
        "object": {"metadata": {"name": "web"}},
    }
    base.update(request)
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": base}


def test_parses_a_well_formed_review() -> None:
    req = parse_review(review(dryRun=True))
    assert (req.uid, req.operation, req.group, req.kind, req.namespace, req.name) == (
        "u-1", "CREATE", "apps", "Deployment", "shop", "web")
    assert req.dry_run is True
    assert req.user.groups == ("devs",)
    assert req.display_name == "shop/web"


def test_delete_uses_the_old_object() -> None:
    req = parse_review(review(operation="DELETE", object=None, oldObject={"metadata": {"name": "gone"}}))
    assert req.subject == {"metadata": {"name": "gone"}}
    assert req.name == "gone"


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ([], "JSON object"),
        ({"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {}}, "apiVersion"),
        ({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}, "no 'request'"),
        (review(uid=None), "request.uid is missing"),
        (review(uid=""), "request.uid is empty"),
        (review(uid=7), "must be a string"),
        (review(operation="PATCH"), "operation"),
        (review(kind="Deployment"), "request.kind"),
        (review(object=None), "request.object is missing"),
        (review(object=[1]), "must be an object"),
        (review(dryRun="yes"), "dryRun"),
        (review(userInfo={"groups": "admins"}), "groups"),
    ],
)
def test_malformed_reviews_name_the_problem(doc: Any, reason: str) -> None:
    with pytest.raises(BadReview) as err:
        parse_review(doc)
    assert reason in err.value.reason
    assert err.value.status == 400


def test_response_shape() -> None:
    denied = review_response("u-1", allowed=False, message="no", warnings=["w"], audit_annotations={"a": "b"})
    assert denied == {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {
            "uid": "u-1", "allowed": False, "status": {"code": 403, "message": "no", "reason": "Forbidden"},
            "warnings": ["w"], "auditAnnotations": {"a": "b"},
        },
    }
    allowed = review_response("u-2", allowed=True)["response"]
    assert allowed == {"uid": "u-2", "allowed": True}


def test_warnings_are_one_line_and_clipped() -> None:
    assert clip_warning("a\nb   c") == "a b c"
    long = clip_warning("x" * 2000)
    assert len(long) == MAX_WARNING_CHARS and long.endswith("…")
