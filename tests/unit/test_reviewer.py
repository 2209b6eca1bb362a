"""The core, without HTTP: real policies on the embedded engine."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.factories import PINNED, admission_review, workload
from tests.unit.conftest import CapturedLog
from webhook.admission import parse_review
from webhook.config import AdmissionSettings, PolicySettings
from webhook.errors import EngineError
from webhook.policy_bundle import PolicyBundle
from webhook.reviewer import Reviewer


async def decide(reviewer: Reviewer, doc: dict[str, Any]) -> dict[str, Any]:
    outcome = await reviewer.review(parse_review(doc))
    return outcome.response["response"]  # type: ignore[no-any-return]


async def test_tag_only_image_is_denied_with_rule_container_image_and_fix(reviewer: Reviewer) -> None:
    response = await decide(reviewer, admission_review(workload("Deployment", "nginx:latest")))
    assert response["allowed"] is False
    message = response["status"]["message"]
    assert "digest_pinning" in message
    assert '"web"' in message and "nginx:latest" in message
    assert "Fix:" in message and "@sha256:" in message
    assert response["auditAnnotations"]["decision-id"] in message


async def test_pinned_image_is_allowed(reviewer: Reviewer) -> None:
    response = await decide(reviewer, admission_review(workload("Deployment", PINNED)))
    assert response == {
        "uid": response["uid"], "allowed": True,
        "auditAnnotations": {"decision-id": response["auditAnnotations"]["decision-id"],
                             "policy-revision": reviewer.engine.revision},
    }


async def test_missing_release_id_is_a_warning_not_a_denial(reviewer: Reviewer) -> None:
    response = await decide(reviewer, admission_review(workload("Deployment", PINNED, version_label=False)))
    assert response["allowed"] is True
    assert any("release_id" in w and "shop/web" in w for w in response["warnings"])


@pytest.mark.parametrize("kind", ["Pod", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob",
                                  "ReplicationController", "Rollout"])
async def test_every_workload_kind_is_checked(reviewer: Reviewer, kind: str) -> None:
    response = await decide(reviewer, admission_review(workload(kind, "nginx:1.27")))
    assert response["allowed"] is False, kind
    assert "nginx:1.27" in response["status"]["message"]


async def test_init_and_ephemeral_containers_count(reviewer: Reviewer) -> None:
    obj = workload("Pod", PINNED)
    obj["spec"]["initContainers"] = [{"name": "init", "image": "busybox"}]
    obj["spec"]["ephemeralContainers"] = [{"name": "debug", "image": "busybox:1"}]
    message = (await decide(reviewer, admission_review(obj)))["status"]["message"]
    assert '"init"' in message and '"debug"' in message


async def test_unknown_kind_is_allowed_with_a_warning_and_logged(reviewer: Reviewer, decision_log: CapturedLog) -> None:
    obj = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "shop"}}
    response = await decide(reviewer, admission_review(obj))
    assert response["allowed"] is True
    assert "Widget" in response["warnings"][0] and "custom_kinds" in response["warnings"][0]
    assert decision_log.records[-1]["kind"] == "Widget"


async def test_object_without_containers_is_allowed(reviewer: Reviewer) -> None:
    obj = workload("Deployment")
    obj["spec"]["template"]["spec"] = {}
    response = await decide(reviewer, admission_review(obj))
    assert response["allowed"] is True


async def test_delete_is_allowed(reviewer: Reviewer) -> None:
    doc = admission_review(None, operation="DELETE", old=workload("Deployment", "nginx:latest"))
    assert (await decide(reviewer, doc))["allowed"] is True


async def test_scale_of_a_legacy_workload_is_not_blocked(reviewer: Reviewer) -> None:
    old = workload("Deployment", "nginx:1.27")
    new = workload("Deployment", "nginx:1.27")
    new["spec"]["replicas"] = 5
    response = await decide(reviewer, admission_review(new, operation="UPDATE", old=old))
    assert response["allowed"] is True


async def test_rollout_to_a_tag_is_denied(reviewer: Reviewer) -> None:
    old = workload("Deployment", PINNED)
    new = workload("Deployment", "nginx:1.27")
    response = await decide(reviewer, admission_review(new, operation="UPDATE", old=old))
    assert response["allowed"] is False


async def test_dry_run_is_decided_normally_and_marked_in_the_log(reviewer: Reviewer, decision_log: CapturedLog) -> None:
    response = await decide(reviewer, admission_review(workload("Deployment", "nginx:latest"), dry_run=True))
    assert response["allowed"] is False
    record = decision_log.records[-1]
    assert record["dry_run"] is True and record["allowed"] is False
    assert record["decision_id"] == response["auditAnnotations"]["decision-id"]


async def test_decision_log_line_has_the_facts_and_no_object(reviewer: Reviewer, decision_log: CapturedLog) -> None:
    obj = workload("Deployment", "nginx:latest")
    obj["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "TOKEN", "value": "s3cr3t"}]
    await decide(reviewer, admission_review(obj))
    record = decision_log.records[-1]
    for key in ("time", "uid", "user", "operation", "kind", "namespace", "name", "change_type", "images",
                "findings", "allowed", "engine", "policy_revision", "latency_ms"):
        assert key in record, key
    assert record["change_type"] == "create"
    assert record["images"] == [
        {"container": "web", "image": "nginx:latest", "name": "docker.io/library/nginx", "digest": None,
         "verified_authorities": []}
    ]
    assert "s3cr3t" not in decision_log.buffer.getvalue()


class BrokenEngine:
    name = "broken"
    revision = "r1"

    def __init__(self, error: Exception) -> None:
        self.error = error

    async def load(self, bundle: PolicyBundle) -> None: ...

    async def evaluate(self, policy_input: dict[str, Any]) -> dict[str, Any]:
        raise self.error

    async def ready(self) -> tuple[bool, str]:
        return True, ""

    async def close(self) -> None: ...


class SlowEngine(BrokenEngine):
    async def evaluate(self, policy_input: dict[str, Any]) -> dict[str, Any]:
        import asyncio

        await asyncio.sleep(3600)
        return {}


@pytest.mark.parametrize("engine", [BrokenEngine(EngineError("built-in failed")), SlowEngine(EngineError(""))])
async def test_engine_failure_or_timeout_is_a_denial(engine: BrokenEngine, decision_log: CapturedLog) -> None:
    reviewer = Reviewer(engine, admission=AdmissionSettings(deadline_seconds=0.05), policy=PolicySettings(),
                        log=decision_log)
    response = await decide(reviewer, admission_review(workload("Deployment", PINNED)))
    assert response["allowed"] is False
    assert "could not be evaluated" in response["status"]["message"]
    assert decision_log.records[-1]["error"]


class LateInlineEngine(BrokenEngine):
    """An in-process engine whose evaluation runs past the deadline (it cannot be interrupted)."""

    def evaluate_sync(self, policy_input: dict[str, Any]) -> dict[str, Any]:
        time.sleep(0.08)
        return {"deny": [], "warn": [], "dryrun": []}  # an allow, had it come in time


async def test_a_late_answer_from_an_inline_engine_is_a_timeout_not_an_allow(decision_log: CapturedLog) -> None:
    late = LateInlineEngine(EngineError(""))
    reviewer = Reviewer(late, admission=AdmissionSettings(deadline_seconds=0.05), policy=PolicySettings(),
                        log=decision_log)  # fmt: skip
    response = await decide(reviewer, admission_review(workload("Deployment", PINNED)))
    assert response["allowed"] is False
    assert "did not finish within the 0.05 s deadline" in response["status"]["message"]
    in_time = Reviewer(late, admission=AdmissionSettings(deadline_seconds=5), policy=PolicySettings(),
                       log=decision_log)  # fmt: skip
    assert (await decide(in_time, admission_review(workload("Deployment", PINNED))))["allowed"] is True


async def test_unsafe_fail_open_admits_with_a_warning(decision_log: CapturedLog) -> None:
    reviewer = Reviewer(BrokenEngine(EngineError("down")), admission=AdmissionSettings(),
                        policy=PolicySettings(unsafe_fail_open=True), log=decision_log)
    response = await decide(reviewer, admission_review(workload("Deployment", PINNED)))
    assert response["allowed"] is True
    assert "unsafe_fail_open" in response["warnings"][0]


class MalformedEngine(BrokenEngine):
    async def evaluate(self, policy_input: dict[str, Any]) -> dict[str, Any]:
        return {"deny": "not a list"}


async def test_a_malformed_decision_document_fails_closed(decision_log: CapturedLog) -> None:
    reviewer = Reviewer(MalformedEngine(EngineError("")), admission=AdmissionSettings(), policy=PolicySettings(),
                        log=decision_log)
    response = await decide(reviewer, admission_review(workload("Deployment", PINNED)))
    assert response["allowed"] is False and "must be an array" in response["status"]["message"]


@pytest.mark.parametrize("image", ['x"}],"deny":[],"zz":[{"q":"', 'nginx:1", "deny": [], "x": "', "a\\b\nc"])
async def test_crafted_strings_cannot_rewrite_the_decision(reviewer: Reviewer, image: str) -> None:
    """rego-cpp echoes input strings into its JSON output; a forged "deny": [] must not become an allow."""
    obj = workload("Deployment", image)
    obj["metadata"]["annotations"] = {"note": '"}], "deny": [], "y": [{"a": "'}
    response = await decide(reviewer, admission_review(obj))
    assert response["allowed"] is False
    assert "image_reference" in response["status"]["message"]


def _owned_pod(image: str) -> dict[str, Any]:
    pod = workload("Pod", image)
    pod["metadata"]["ownerReferences"] = [
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d4f", "uid": "u", "controller": True}
    ]
    return pod


async def test_pods_a_controller_creates_replay_an_admitted_template(reviewer: Reviewer,
                                                                     decision_log: CapturedLog) -> None:
    doc = admission_review(_owned_pod("nginx:1.27"))
    doc["request"]["userInfo"] = {"username": "system:serviceaccount:kube-system:replicaset-controller"}
    response = await decide(reviewer, doc)
    assert response["allowed"] is True
    assert decision_log.records[-1]["change_type"] == "replica"


async def test_a_forged_owner_reference_exempts_nothing(reviewer: Reviewer) -> None:
    doc = admission_review(_owned_pod("nginx:1.27"))  # created by alice, claiming a ReplicaSet owns it
    response = await decide(reviewer, doc)
    assert response["allowed"] is False
