"""The optional mutating webhook (``POST /mutate``): verified tag references become ``tag@digest``.

So workloads run exactly what was verified, as Kyverno's mutateDigest does. A container
image is rewritten only when the ``images`` fact resolved its tag AND every image policy
that matches it is satisfied (at least ``threshold`` authorities verified that digest);
anything else is left alone. The mutating webhook always allows: judging is the
validating webhook's job, and it sees (and checks) the rewritten reference afterwards.
Off by default (``images.mutate_enabled``). The patch building is pure; the facts come
from the same gatherer (and caches) as the validating webhook.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from webhook.admission import AdmissionRequest, review_response
from webhook.config import AdmissionSettings, Settings
from webhook.facts import FactGatherer
from webhook.images import parse_image
from webhook.input_limits import template_over_limits
from webhook.observe.audit_record import mutation_record
from webhook.observe.decision_log import DecisionLog
from webhook.policy_input import Subject
from webhook.reviewer import new_decision_id
from webhook.workloads import CONTAINER_FIELDS, ChangeType, WorkloadKinds, classify_change

log = logging.getLogger("deployguard.mutation")


def verified_digest(image: str, fact: Mapping[str, Any] | None) -> str:
    """The digest to pin ``image`` to, or '' when it must be left alone. Pure.

    Only tag-only references, resolved by the registry, with at least one matching image
    policy and every matching policy satisfied: an unsigned image is never pinned (pinning
    it would only change the validating webhook's deny message).
    """
    ref = parse_image(image)
    if not ref.valid or ref.digest or not isinstance(fact, Mapping) or fact.get("status") != "ok":
        return ""
    digest = fact.get("resolved_digest")
    policies = fact.get("policies")
    if not isinstance(digest, str) or not digest.startswith("sha256:") or not isinstance(policies, list):
        return ""
    if not policies:
        return ""
    for policy in policies:
        verified = policy.get("verified") if isinstance(policy, Mapping) else None
        threshold = policy.get("threshold") if isinstance(policy, Mapping) else None
        if not isinstance(verified, list) or not isinstance(threshold, int) or len(verified) < threshold:
            return ""
    return digest


def _escape(token: str) -> str:
    """A JSON Pointer reference token (RFC 6901)."""
    return token.replace("~", "~0").replace("/", "~1")


def digest_patch(
    template_path: Sequence[str], spec: Mapping[str, Any], by_image: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """JSONPatch operations pinning every verified tag reference in the pod ``spec`` at ``template_path``."""
    prefix = "".join(f"/{_escape(p)}" for p in template_path) + "/spec"  # a Pod's own path is ()
    ops: list[dict[str, Any]] = []
    for field, _ in CONTAINER_FIELDS:
        items = spec.get(field)
        if not isinstance(items, list):
            continue
        for index, container in enumerate(items):
            image = container.get("image") if isinstance(container, Mapping) else None
            if not isinstance(image, str):
                continue
            digest = verified_digest(image, by_image.get(image))
            if digest:
                path = f"{prefix}/{field}/{index}/image"
                ops.append({"op": "test", "path": path, "value": image})
                ops.append({"op": "replace", "path": path, "value": f"{image}@{digest}"})
    return ops


def mutation_response(uid: str, ops: list[dict[str, Any]], decision_id: str = "") -> dict[str, Any]:
    """An allowing AdmissionReview answer, with the JSONPatch (base64) when there is one, and
    the id of its decision record in the API server's audit log."""
    response = review_response(
        uid, allowed=True, audit_annotations={"decision-id": decision_id} if decision_id else None
    )
    if ops:
        response["response"]["patchType"] = "JSONPatch"
        response["response"]["patch"] = base64.b64encode(json.dumps(ops).encode()).decode()
    return response


class Mutator:
    """Pins verified tags for one process, reusing the validating webhook's images gatherer."""

    def __init__(
        self,
        images: FactGatherer,
        kinds: WorkloadKinds,
        admission: AdmissionSettings | None = None,
        log: DecisionLog | None = None,
    ) -> None:
        self.images = images
        self.kinds = kinds
        self.admission = admission or AdmissionSettings()
        self.log = log  # every answer is a record there (None: not recorded, for tests)

    async def mutate(self, request: AdmissionRequest) -> dict[str, Any]:
        """The answer for one request, logged as one decision record; never denies, and on any
        failure does not patch."""
        started = time.perf_counter()
        decision_id = new_decision_id()
        ops, reason = await self._patch(request)
        if reason:
            log.warning("mutate: no digest pinning for %s: %s", request.display_name, reason)
        elif ops:
            log.info("mutate: pinned %d image(s) of %s %s", len(ops) // 2, request.kind, request.display_name)
        if self.log is not None:
            self.log.write(
                mutation_record(
                    request=request,
                    decision_id=decision_id,
                    ops=ops,
                    reason=reason,
                    elapsed=time.perf_counter() - started,
                )
            )
        return mutation_response(request.uid, ops, decision_id)

    async def _patch(self, request: AdmissionRequest) -> tuple[list[dict[str, Any]], str]:
        """(JSONPatch operations, why none were attempted: '' when the images were looked at)."""
        path = self.kinds.template_paths.get((request.group, request.kind))
        template = self.kinds.pod_template(request.group, request.kind, request.obj)
        if path is None or template is None or request.operation not in ("CREATE", "UPDATE"):
            return [], ""
        change = classify_change(
            request.operation, self.kinds, request.group, request.kind, request.obj, request.old_obj
        )
        if change is ChangeType.DELETE:
            return [], ""
        # The validating webhook denies an outsized template before looking at any image; so
        # does this, else 20,000 containers cost 5 s of the event loop in image lookups.
        limits = self.admission
        oversized = template_over_limits(
            template, max_containers=limits.max_containers, max_image_chars=limits.max_image_reference_chars
        )
        if oversized is not None:
            return [], oversized.message
        try:
            facts = await self.images.gather(Subject(request=request, change=change, template=template))
        except Exception as exc:  # a fact failure means no patch; the validating webhook decides
            return [], f"image facts failed: {exc}"
        by_image = facts.get("by_image") if isinstance(facts, Mapping) else None
        return digest_patch(path, template.spec, by_image if isinstance(by_image, Mapping) else {}), ""


def build_mutator(
    settings: Settings, gatherers: Sequence[FactGatherer], log: DecisionLog | None = None
) -> Mutator | None:
    """The mutator when ``images.enabled`` and ``images.mutate_enabled``; shares the images gatherer."""
    if not (settings.images.enabled and settings.images.mutate_enabled):
        return None
    images = next((g for g in gatherers if g.name == "images"), None)
    if images is None:
        return None
    return Mutator(images, WorkloadKinds.with_custom(settings.admission.custom_kinds), settings.admission, log)
