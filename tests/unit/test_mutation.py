"""The optional /mutate endpoint: which images are pinned to tag@digest, the JSONPatch, the route.

The images gatherer is faked at our own interface (FactGatherer); the real registry and
API server path is tests/e2e/test_mutate_digest.py.
"""

from __future__ import annotations

import base64
import copy
import io
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.factories import admission_review, workload
from tests.unit.conftest import CapturedLog
from webhook.admission import parse_review
from webhook.config import ImageSettings, Settings
from webhook.observe.decision_log import DecisionLog
from webhook.policy_input import Subject
from webhook.reviewer import Reviewer
from webhook.server import create_app
from webhook.trust.mutation import Mutator, build_mutator, digest_patch, verified_digest
from webhook.webhook_config import WebhookRegistration, render_webhook_configuration
from webhook.workloads import WorkloadKinds

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64


def fact(digest: str = D1, *, verified: tuple[str, ...] = ("k",), threshold: int = 1, status: str = "ok") -> Any:
    policy = {"name": "p", "mode": "enforce", "threshold": threshold, "authorities": ["k", "j"],
              "verified": list(verified), "results": []}  # fmt: skip
    return {"status": status, "resolved_digest": digest, "policies": [policy]}


class FakeImages:
    """FactGatherer ``images`` answering from a table; counts calls."""

    name = "images"

    def __init__(self, by_image: dict[str, Any], fail: bool = False) -> None:
        self.by_image, self.fail, self.calls = by_image, fail, 0

    async def gather(self, subject: Subject) -> Any:
        self.calls += 1
        if self.fail:
            raise RuntimeError("registry down")
        return {"status": "ok", "by_image": self.by_image}


def apply_patch(doc: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """Enough of RFC 6902 (test, replace) to check what the API server will do with the patch."""
    out = copy.deepcopy(doc)
    for op in ops:
        *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        node: Any = out
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        key: Any = int(last) if isinstance(node, list) else last
        if op["op"] == "test":
            assert node[key] == op["value"], op
        else:
            node[key] = op["value"]
    return out


def test_only_verified_tag_only_references_are_pinned() -> None:
    assert verified_digest("reg.example/app:1.0", fact()) == D1
    assert verified_digest("reg.example/app", fact()) == D1  # implicit :latest, verified digest
    assert verified_digest(f"reg.example/app:1.0@{D2}", fact()) == ""  # already pinned
    assert verified_digest("reg.example/app:1.0", fact(verified=())) == ""  # not signed
    assert verified_digest("reg.example/app:1.0", fact(verified=("k",), threshold=2)) == ""  # 1 of 2
    assert verified_digest("reg.example/app:1.0", fact(status="unknown")) == ""
    assert verified_digest("reg.example/app:1.0", {**fact(), "policies": []}) == ""  # no policy: nothing verified
    assert verified_digest("reg.example/app:1.0", {**fact(), "resolved_digest": ""}) == ""
    assert verified_digest("reg.example/app:1.0", None) == ""
    assert verified_digest("Not A Ref", fact()) == ""


def test_patch_paths_per_kind_and_container_list() -> None:
    spec = {
        "initContainers": [{"name": "init", "image": "reg.example/init:1"}],
        "containers": [{"name": "web", "image": "reg.example/web:1"}, {"name": "side", "image": "reg.example/x:1"}],
    }
    facts = {"reg.example/init:1": fact(D1), "reg.example/web:1": fact(D2), "reg.example/x:1": fact(verified=())}
    ops = digest_patch(("spec", "template"), spec, facts)
    assert ops == [
        {"op": "test", "path": "/spec/template/spec/initContainers/0/image", "value": "reg.example/init:1"},
        {"op": "replace", "path": "/spec/template/spec/initContainers/0/image", "value": f"reg.example/init:1@{D1}"},
        {"op": "test", "path": "/spec/template/spec/containers/0/image", "value": "reg.example/web:1"},
        {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": f"reg.example/web:1@{D2}"},
    ]
    pod = digest_patch((), spec, facts)
    assert pod[1]["path"] == "/spec/initContainers/0/image"
    cron = digest_patch(("spec", "jobTemplate", "spec", "template"), spec, facts)
    assert cron[1]["path"] == "/spec/jobTemplate/spec/template/spec/initContainers/0/image"


async def test_mutator_answers_with_a_base64_json_patch_and_always_allows() -> None:
    obj = workload("Deployment", "reg.example/web:1", f"reg.example/db@{D2}", "reg.example/unsigned:2")
    images = FakeImages({"reg.example/web:1": fact(D1), "reg.example/unsigned:2": fact(verified=())})
    mutator = Mutator(images, WorkloadKinds.with_custom())
    answer = (await mutator.mutate(parse_review(admission_review(obj, uid="u-1"))))["response"]
    assert answer["uid"] == "u-1" and answer["allowed"] is True and answer["patchType"] == "JSONPatch"
    patched = apply_patch(obj, json.loads(base64.b64decode(answer["patch"])))
    images_after = [c["image"] for c in patched["spec"]["template"]["spec"]["containers"]]
    assert images_after == [f"reg.example/web:1@{D1}", f"reg.example/db@{D2}", "reg.example/unsigned:2"]


@pytest.mark.parametrize(
    ("doc", "images"),
    [
        (admission_review(workload("Deployment", "reg.example/web:1")), FakeImages({}, fail=True)),  # facts failed
        (
            admission_review(None, operation="DELETE", old=workload("Deployment", "reg.example/web:1")),
            FakeImages({"reg.example/web:1": fact()}),
        ),
        (
            admission_review(workload("Deployment", "reg.example/web:1"), kind="Widget"),
            FakeImages({"reg.example/web:1": fact()}),
        ),
    ],
)
async def test_no_patch_when_facts_fail_on_delete_or_unknown_kinds(doc: dict[str, Any], images: FakeImages) -> None:
    answer = (await Mutator(images, WorkloadKinds.with_custom()).mutate(parse_review(doc)))["response"]
    assert answer["allowed"] is True and "patch" not in answer and "patchType" not in answer


async def _mutate(images: FakeImages, *refs: str) -> dict[str, Any]:
    review = parse_review(admission_review(workload("Deployment", *refs)))
    answer: dict[str, Any] = (await Mutator(images, WorkloadKinds.with_custom()).mutate(review))["response"]
    return answer


@pytest.mark.parametrize("refs", [[f"reg.example/c{i}:1" for i in range(51)], ["reg.example/" + "a" * 1100 + ":1"]],
                         ids=["51 containers", "a 1,100-character image"])  # fmt: skip
async def test_an_outsized_template_is_not_looked_at(refs: list[str]) -> None:
    """As the validating webhook: past admission.max_containers (50) or
    max_image_reference_chars (1024) no image is looked up (20,000 containers took 5 s of
    the event loop in lookups before) and nothing is patched; the validating webhook denies."""
    images = FakeImages({ref: fact() for ref in refs})
    answer = await _mutate(images, *refs)
    assert answer["allowed"] is True and "patch" not in answer and images.calls == 0


async def test_fifty_containers_are_still_pinned() -> None:
    refs = [f"reg.example/c{i}:1" for i in range(50)]
    assert "patch" in await _mutate(FakeImages({ref: fact() for ref in refs}), *refs)


async def test_every_answer_is_one_decision_record() -> None:
    """The mutating webhook rewrites what runs: each answer, patched or not, is in the decision
    log, its id in the answer's audit annotations, with the reason when nothing was looked at."""
    stream = io.StringIO()
    images = FakeImages({"reg.example/web:1": fact(D1)})
    mutator = Mutator(images, WorkloadKinds.with_custom(), log=DecisionLog(stream=stream))
    pinned = await mutator.mutate(parse_review(admission_review(workload("Deployment", "reg.example/web:1"))))
    many = [f"reg.example/c{i}:1" for i in range(51)]
    left = await mutator.mutate(parse_review(admission_review(workload("Deployment", *many))))
    gone = admission_review(None, operation="DELETE", old=workload("Deployment", "reg.example/web:1"))
    deleted = await mutator.mutate(parse_review(gone))
    records = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(records) == 3 and all(r["webhook"] == "mutate" and r["allowed"] is True for r in records)
    answers = [pinned, left, deleted]
    assert [r["decision_id"] for r in records] == [a["response"]["auditAnnotations"]["decision-id"] for a in answers]
    assert records[0]["outcome"] == "mutated" and records[0]["reason"] is None
    assert records[0]["patched"] == [{"path": "/spec/template/spec/containers/0/image",
                                      "from": "reg.example/web:1", "to": f"reg.example/web:1@{D1}"}]  # fmt: skip
    assert records[1]["outcome"] == "unchanged" and "51 containers" in records[1]["reason"]
    assert records[2]["outcome"] == "unchanged" and records[2]["operation"] == "DELETE" and not records[2]["patched"]


def test_mutate_route_only_when_enabled(reviewer: Reviewer, decision_log: CapturedLog) -> None:
    images = FakeImages({"reg.example/web:1": fact(D1)})
    settings = Settings(images=ImageSettings(enabled=True, mutate_enabled=True))
    mutator = build_mutator(settings, [images], decision_log)
    assert mutator is not None
    assert build_mutator(Settings(images=ImageSettings(enabled=True)), [images]) is None  # off by default
    client = TestClient(create_app(reviewer, None, max_body_bytes=64 * 1024, mutator=mutator))
    answer = client.post("/mutate", json=admission_review(workload("Deployment", "reg.example/web:1")))
    assert answer.status_code == 200 and answer.json()["response"]["patchType"] == "JSONPatch"
    refused = client.post("/mutate", content=b"nope", headers={"content-type": "application/json"})
    assert refused.status_code == 400 and refused.json()["error"]
    # one record per answer, the malformed call's too (under the id its answer names)
    mutated, rejected = decision_log.records
    assert mutated["webhook"] == "mutate" and mutated["outcome"] == "mutated"
    assert rejected["rejected"] is True and rejected["decision_id"] == refused.json()["decision_id"]
    plain = TestClient(create_app(reviewer, None, max_body_bytes=64 * 1024))
    assert plain.post("/mutate", json=admission_review(workload())).status_code in (404, 405)


def test_render_mutating_webhook_configuration() -> None:
    reg = WebhookRegistration(ca_bundle="Q0E=", service_namespace="dg", mutating=True, include_delete=True)
    manifest = render_webhook_configuration(reg)
    [hook] = manifest["webhooks"]
    assert manifest["kind"] == "MutatingWebhookConfiguration" and hook["name"] == "mutate.deployguard.io"
    assert hook["clientConfig"]["service"]["path"] == "/mutate" and hook["reinvocationPolicy"] == "IfNeeded"
    assert all(rule["operations"] == ["CREATE", "UPDATE"] for rule in hook["rules"])  # never DELETE
    assert hook["sideEffects"] == "None"  # it writes nothing anywhere
    validating = render_webhook_configuration(WebhookRegistration(ca_bundle="Q0E="))
    assert validating["webhooks"][0]["sideEffects"] == "NoneOnDryRun"  # break-glass uses and Events
    assert (
        validating["kind"] == "ValidatingWebhookConfiguration" and "reinvocationPolicy" not in validating["webhooks"][0]
    )
