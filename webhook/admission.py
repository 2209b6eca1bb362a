"""The AdmissionReview wire format (admission.k8s.io/v1): parse requests, build responses.

Pure. A malformed review raises :class:`BadReview` (an HTTP 400 in the adapter),
which is never confused with a policy denial.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from webhook.errors import BadReview

API_VERSION = "admission.k8s.io/v1"
KIND = "AdmissionReview"
OPERATIONS = frozenset({"CREATE", "UPDATE", "DELETE", "CONNECT"})
MAX_WARNING_CHARS = 512


@dataclass(frozen=True)
class UserInfo:
    username: str = ""
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class AdmissionRequest:
    """The parts of ``AdmissionReview.request`` deployguard uses."""

    uid: str
    operation: str
    group: str
    version: str
    kind: str
    namespace: str
    name: str
    dry_run: bool
    user: UserInfo
    obj: Mapping[str, Any] | None = field(repr=False)
    old_obj: Mapping[str, Any] | None = field(repr=False)
    sub_resource: str = ""

    @property
    def subject(self) -> Mapping[str, Any] | None:
        """The object the change is about: the new one, or the old one on DELETE."""
        return self.obj if self.obj is not None else self.old_obj

    @property
    def display_name(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


def _str(value: Any, what: str, *, required: bool = False) -> str:
    if value is None:
        if required:
            raise BadReview(f"request.{what} is missing")
        return ""
    if not isinstance(value, str):
        raise BadReview(f"request.{what} must be a string, got {type(value).__name__}")
    if required and not value:
        raise BadReview(f"request.{what} is empty")
    return value


def _object(value: Any, what: str) -> Mapping[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadReview(f"request.{what} must be an object, got {type(value).__name__}")
    return value


def parse_review(doc: Any) -> AdmissionRequest:
    """Validate a decoded AdmissionReview and return its request."""
    if not isinstance(doc, dict):
        raise BadReview(f"the body must be a JSON object (an AdmissionReview), got {type(doc).__name__}")
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    if api_version != API_VERSION or kind != KIND:
        raise BadReview(
            f"expected apiVersion {API_VERSION!r} and kind {KIND!r}, got {api_version!r} and {kind!r}; "
            "register the webhook with admissionReviewVersions: [v1]"
        )
    request = doc.get("request")
    if not isinstance(request, dict):
        raise BadReview("the AdmissionReview has no 'request' object")
    uid = _str(request.get("uid"), "uid", required=True)
    operation = _str(request.get("operation"), "operation", required=True)
    if operation not in OPERATIONS:
        raise BadReview(f"request.operation {operation!r} is not one of {sorted(OPERATIONS)}")
    gvk = request.get("kind")
    if not isinstance(gvk, dict):
        raise BadReview("request.kind (group/version/kind) is missing")
    user = request.get("userInfo") or {}
    if not isinstance(user, dict):
        raise BadReview("request.userInfo must be an object")
    groups = user.get("groups") or []
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise BadReview("request.userInfo.groups must be a list of strings")
    dry_run = request.get("dryRun", False)
    if dry_run is None:
        dry_run = False
    if not isinstance(dry_run, bool):
        raise BadReview("request.dryRun must be a boolean")
    obj = _object(request.get("object"), "object")
    old = _object(request.get("oldObject"), "oldObject")
    if operation in ("CREATE", "UPDATE") and obj is None:
        raise BadReview(f"request.object is missing on {operation}")
    return AdmissionRequest(
        uid=uid,
        operation=operation,
        group=_str(gvk.get("group"), "kind.group"),
        version=_str(gvk.get("version"), "kind.version"),
        kind=_str(gvk.get("kind"), "kind.kind", required=True),
        namespace=_str(request.get("namespace"), "namespace"),
        name=_str(request.get("name"), "name") or _name_of(obj) or _name_of(old),
        dry_run=dry_run,
        user=UserInfo(username=_str(user.get("username"), "userInfo.username"), groups=tuple(groups)),
        obj=obj,
        old_obj=old,
        sub_resource=_str(request.get("subResource"), "subResource"),
    )


def _name_of(obj: Mapping[str, Any] | None) -> str:
    meta = obj.get("metadata") if obj else None
    if isinstance(meta, Mapping):
        name = meta.get("name") or meta.get("generateName")
        return str(name) if name else ""
    return ""


def clip_warning(text: str) -> str:
    """kubectl shows warnings on one line; the API server truncates long ones."""
    flat = " ".join(text.split())
    return flat if len(flat) <= MAX_WARNING_CHARS else flat[: MAX_WARNING_CHARS - 1] + "…"


def review_response(
    uid: str,
    *,
    allowed: bool,
    message: str = "",
    code: int = 403,
    warnings: list[str] | tuple[str, ...] = (),
    audit_annotations: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """An AdmissionReview answer for the API server."""
    response: dict[str, Any] = {"uid": uid, "allowed": allowed}
    if not allowed:
        response["status"] = {"code": code, "message": message, "reason": "Forbidden"}
    if warnings:
        response["warnings"] = [clip_warning(w) for w in warnings]
    if audit_annotations:
        response["auditAnnotations"] = dict(audit_annotations)
    return {"apiVersion": API_VERSION, "kind": KIND, "response": response}
