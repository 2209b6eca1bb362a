"""Single use of break-glass tokens: verify while gathering, record only after an allowed decision.

The gatherer (webhook/facts/break_glass.py) only reads the ledger; the committer
(webhook/governance/break_glass_commit.py) records the use through the reviewer's post-decision
hook (webhook/committers.py). Against a fake of our KubeApi and the real embedded
engine with the shipped policies.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests import factories
from tests.unit.conftest import CapturedLog
from webhook.admission import AdmissionRequest, parse_review
from webhook.committers import commit_decision
from webhook.config import AdmissionSettings, BreakGlassSettings, PolicySettings
from webhook.decision import ANNOTATE, Decision, Finding
from webhook.engines.embedded import EmbeddedEngine
from webhook.facts.break_glass import BreakGlassGatherer
from webhook.governance.break_glass import BreakGlassError, new_claims, sign, template_hash
from webhook.governance.break_glass_commit import TOKEN_ANNOTATION, BreakGlassCommitter, BreakGlassLedger, LedgerSweep
from webhook.kube_api import AlreadyExists, KubeApi, KubeApiError, NotFound
from webhook.policy_input import Subject
from webhook.policy_store import PolicyStore
from webhook.reviewer import Reviewer
from webhook.workloads import ChangeType, WorkloadKinds

NEW = "nginx@sha256:" + "1" * 64
TAGGED = "nginx:1.27"  # denied by digest_pinning, which break-glass never overrides


class FakeKube(KubeApi):
    """Leases in memory, with the API server's create-if-absent answer.

    ``refuse``: every create is forbidden. ``stale_reads``: every get says "not found",
    as a read does that happened just before another replica's create."""

    def __init__(self, *, refuse: bool = False, stale_reads: bool = False) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.refuse, self.stale_reads = refuse, stale_reads
        self.creates = 0

    async def create(self, path: str, obj: dict[str, Any]) -> dict[str, Any]:
        self.creates += 1
        if self.refuse:
            raise KubeApiError(f"POST {path}: HTTP 403: leases is forbidden")
        key = f"{path}/{obj['metadata']['name']}"
        if key in self.objects:
            raise AlreadyExists(f"POST {path}: already exists")
        self.objects[key] = copy.deepcopy(obj)
        return obj

    async def get(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        if params and "labelSelector" in params:  # a list
            wanted = dict(pair.split("=") for pair in params["labelSelector"].split(","))
            items = [o for k, o in self.objects.items() if k.startswith(path + "/")
                     and wanted.items() <= (o["metadata"].get("labels") or {}).items()]  # fmt: skip
            return {"items": copy.deepcopy(items)}
        if self.stale_reads or path not in self.objects:
            raise NotFound(f"GET {path}: not found")
        return self.objects[path]

    async def delete(self, path: str, *, resource_version: str = "") -> None:
        if path not in self.objects:
            raise NotFound(f"DELETE {path}: not found")
        del self.objects[path]


def _request(
    token: str, uid: str, image: str = NEW, *, dry_run: bool = False, old_version: str = "", operation: str = "UPDATE"
) -> AdmissionRequest:
    """An update of Deployment shop/web to ``image`` (from the stored object at ``old_version``), or a create."""
    old = factories.workload("Deployment", factories.PINNED)
    if old_version:
        old["metadata"]["resourceVersion"] = old_version
    new = factories.workload("Deployment", image)
    new["metadata"]["annotations"] = {"deployguard.io/break-glass": token}
    old_obj = old if operation == "UPDATE" else None
    return parse_review(factories.admission_review(new, operation=operation, old=old_obj, uid=uid, dry_run=dry_run))


def _token(key: Ed25519PrivateKey, image: str = NEW) -> str:
    new = factories.workload("Deployment", image)
    digest = template_hash(WorkloadKinds.with_custom().pod_template("apps", "Deployment", new))
    claims = new_claims(namespace="shop", kind="Deployment", name="web", template_hash=digest, reason="outage",
                        ticket="INC-1", ttl_seconds=600, now=datetime.now(UTC))  # fmt: skip
    return sign(claims, key, "oncall")


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def kube() -> FakeKube:
    return FakeKube()


@pytest.fixture
async def reviewer(policies_dir: Path, key: Ed25519PrivateKey, kube: FakeKube) -> Reviewer:
    """The real reviewer and engine, the break-glass gatherer and committer on the ``kube`` fixture."""
    return await _reviewer(policies_dir, key, kube)


async def _reviewer(policies_dir: Path, key: Ed25519PrivateKey, kube: FakeKube | None) -> Reviewer:
    """The real reviewer and engine, with the break-glass gatherer and committer on ``kube``."""
    engine = EmbeddedEngine()
    store = PolicyStore(policies_dir, engine)
    assert await store.reload(), store.last_error
    settings = BreakGlassSettings()
    gatherer = BreakGlassGatherer(settings, {"oncall": key.public_key()}, kube)
    ledger = BreakGlassLedger(kube, settings.state_namespace) if kube is not None else None
    return Reviewer(engine, admission=AdmissionSettings(), policy=PolicySettings(), log=CapturedLog(),
                    gatherers=[gatherer], committers=[BreakGlassCommitter(ledger)])  # fmt: skip


def _rules(decision: Decision, mode: str) -> set[str]:
    return {f.rule for f in decision.by_mode(mode)}


async def test_gathering_only_reads_so_two_requests_see_an_unused_token(key: Ed25519PrivateKey) -> None:
    kube = FakeKube()
    gatherer = BreakGlassGatherer(BreakGlassSettings(), {"oncall": key.public_key()}, kube)
    subject = _subjects(_token(key))

    first = await gatherer.gather(subject("uid-1"))
    second = await gatherer.gather(subject("uid-2"))

    assert first["valid"] is True and second["valid"] is True, (first, second)
    assert kube.creates == 0 and kube.objects == {}


def _subjects(token: str) -> Callable[[str], Subject]:
    """Subjects for a rollout that carries ``token``, by request uid."""

    def make(uid: str) -> Subject:
        request = _request(token, uid)
        template = WorkloadKinds.with_custom().pod_template("apps", "Deployment", request.subject)
        return Subject(request=request, change=ChangeType.ROLLOUT, template=template)

    return make


async def test_a_token_admits_once_a_retry_of_the_same_request_too_and_a_replay_never(
    reviewer: Reviewer, kube: FakeKube, key: Ed25519PrivateKey
) -> None:
    token = _token(key)

    first = await reviewer.review(_request(token, "uid-1"))
    retry = await reviewer.review(_request(token, "uid-1"))  # the API server retrying one request
    replay = await reviewer.review(_request(token, "uid-2"))

    assert first.decision.allowed and retry.decision.allowed, (first.decision, retry.decision)
    assert "break_glass_notice" in _rules(first.decision, "warn")
    assert first.decision.audit_annotations["break-glass-token"]
    assert not replay.decision.allowed and _rules(replay.decision, "deny") == {"break_glass"}
    assert "already used at" in replay.decision.message and "single use" in replay.decision.message
    [lease] = kube.objects.values()
    assert lease["kind"] == "Lease" and lease["metadata"]["namespace"] == "deployguard-system"
    annotations = lease["metadata"]["annotations"]
    assert annotations["deployguard.io/break-glass-object"] == "Deployment shop/web"
    assert annotations["deployguard.io/break-glass-request-uid"] == "uid-1"


async def test_an_update_tried_again_from_the_same_version_may_use_its_token_again(
    reviewer: Reviewer, kube: FakeKube, key: Ed25519PrivateKey
) -> None:
    """Another webhook refused the update we admitted: nothing persisted, the object is still at
    the version it had, and the same update again is the same change. Once the object has
    moved on (a persisted change gives it a new resourceVersion) it is a replay."""
    token = _token(key)

    first = await reviewer.review(_request(token, "uid-1", old_version="41"))
    again = await reviewer.review(_request(token, "uid-2", old_version="41"))
    moved_on = await reviewer.review(_request(token, "uid-3", old_version="42"))
    no_version = await reviewer.review(_request(token, "uid-4"))

    assert first.decision.allowed and again.decision.allowed, (first.decision, again.decision)
    for replay in (moved_on, no_version):
        assert not replay.decision.allowed and _rules(replay.decision, "deny") == {"break_glass"}
        assert "already used at" in replay.decision.message
    [lease] = kube.objects.values()
    annotations = lease["metadata"]["annotations"]
    assert annotations["deployguard.io/break-glass-from-resource-version"] == "41"
    assert annotations["deployguard.io/break-glass-request-uid"] == "uid-1"


async def test_a_create_has_no_version_so_its_token_stays_single_use(
    reviewer: Reviewer, kube: FakeKube, key: Ed25519PrivateKey
) -> None:
    token = _token(key)
    first = await reviewer.review(_request(token, "uid-1", operation="CREATE"))
    again = await reviewer.review(_request(token, "uid-2", operation="CREATE"))
    assert first.decision.allowed, first.decision
    assert not again.decision.allowed and "already used at" in again.decision.message


async def test_the_ledger_takes_the_same_change_at_create_time_too() -> None:
    """Two replicas admitting the same retried update at once: the loser's create meets the
    winner's record of the same change and is not a replay; another version still is."""
    ledger = BreakGlassLedger(FakeKube(), "deployguard-system")
    await ledger.record("tok", "uid-1", "Deployment shop/web", from_version="41")
    await ledger.record("tok", "uid-2", "Deployment shop/web", from_version="41")
    with pytest.raises(BreakGlassError, match="already used at"):
        await ledger.record("tok", "uid-3", "Deployment shop/web", from_version="42")
    with pytest.raises(BreakGlassError, match="already used at"):
        await ledger.record("tok", "uid-4", "Deployment shop/web")


async def test_a_change_denied_for_another_reason_does_not_use_the_token(
    reviewer: Reviewer, kube: FakeKube, key: Ed25519PrivateKey
) -> None:
    token = _token(key, TAGGED)

    denied = await reviewer.review(_request(token, "uid-1", TAGGED))
    again = await reviewer.review(_request(token, "uid-2", TAGGED))

    assert not denied.decision.allowed and "digest_pinning" in _rules(denied.decision, "deny"), denied.decision
    assert "break_glass" not in _rules(denied.decision, "deny")
    assert kube.creates == 0, "a denied change must not burn the approval"
    assert again.decision.findings == denied.decision.findings, "the token is still unused: the same answer"


async def test_a_dry_run_does_not_use_the_token(reviewer: Reviewer, kube: FakeKube, key: Ed25519PrivateKey) -> None:
    token = _token(key)

    dry = await reviewer.review(_request(token, "uid-1", dry_run=True))
    real = await reviewer.review(_request(token, "uid-2"))

    assert dry.decision.allowed and real.decision.allowed
    assert kube.creates == 1 and len(kube.objects) == 1


async def test_a_concurrent_use_that_loses_the_create_is_denied_even_on_a_memo_hit(
    policies_dir: Path, key: Ed25519PrivateKey
) -> None:
    # Both requests read "unused" (the other replica had not created its Lease yet), so
    # both policy inputs are equal and the second is answered from the memo: the commit
    # still catches it.
    kube = FakeKube(stale_reads=True)
    reviewer = await _reviewer(policies_dir, key, kube)
    token = _token(key)

    first = await reviewer.review(_request(token, "uid-1"))
    second = await reviewer.review(_request(token, "uid-2"))

    assert first.decision.allowed, first.decision
    assert second.memo_hit and not second.decision.allowed, second.decision
    assert "[break_glass]" in second.decision.message and "single use" in second.decision.message
    third = await reviewer.review(_request(token, "uid-3"))
    assert not third.decision.allowed, "a denied commit is not memoised as allowed"


async def test_a_replay_after_a_memo_hit_admission_is_denied(policies_dir: Path, key: Ed25519PrivateKey) -> None:
    kube = FakeKube(refuse=True)  # the first attempt cannot be recorded (API down): denied, findings memoised
    reviewer = await _reviewer(policies_dir, key, kube)
    token = _token(key)
    refused = await reviewer.review(_request(token, "uid-0"))
    kube.refuse = False

    used = await reviewer.review(_request(token, "uid-1"))
    replay = await reviewer.review(_request(token, "uid-2"))

    assert not refused.decision.allowed and "cannot be recorded" in refused.decision.message
    assert used.memo_hit and used.decision.allowed and len(kube.objects) == 1, used.decision
    assert not replay.memo_hit, "the used token is a different fact, so a different memo key"
    assert not replay.decision.allowed and "already used" in replay.decision.message


async def test_a_use_that_cannot_be_recorded_is_denied(policies_dir: Path, key: Ed25519PrivateKey) -> None:
    reviewer = await _reviewer(policies_dir, key, FakeKube(refuse=True))

    outcome = await reviewer.review(_request(_token(key), "uid-1"))

    assert not outcome.decision.allowed
    assert "single use cannot be recorded" in outcome.decision.message and "403" in outcome.decision.message


async def test_without_kubernetes_api_access_a_token_is_never_accepted(
    policies_dir: Path, key: Ed25519PrivateKey
) -> None:
    reviewer = await _reviewer(policies_dir, key, None)

    outcome = await reviewer.review(_request(_token(key), "uid-1"))

    assert not outcome.decision.allowed and "single use cannot be enforced" in outcome.decision.message


class FakeCommitter:
    """Our DecisionCommitter interface: counts calls, answers ``reason`` after ``delay`` seconds."""

    name = "fake"

    def __init__(self, reason: str | None = None, delay: float = 0.0) -> None:
        self.reason, self.delay, self.calls = reason, delay, 0

    async def commit(self, request: AdmissionRequest, decision: Decision, policy_input: dict[str, Any]) -> str | None:
        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        return self.reason


def _decision(allowed: bool) -> Decision:
    findings = () if allowed else (Finding(rule="digest_pinning", message="not pinned"),)
    return Decision(decision_id="d1", allowed=allowed, subject="Deployment shop/web", findings=findings)


async def test_committers_run_only_for_allowed_non_dry_run_decisions() -> None:
    committer = FakeCommitter("nope")
    request = _request("t", "uid-1")
    later = time.perf_counter() + 5

    denied = await commit_decision([committer], request, _decision(False), {}, later)
    dry = await commit_decision([committer], replace(request, dry_run=True), _decision(True), {}, later)

    assert committer.calls == 0 and not denied.allowed and dry.allowed
    flipped = await commit_decision([committer], request, _decision(True), {}, later)
    assert committer.calls == 1 and not flipped.allowed and "[fake] nope" in flipped.message


async def test_a_committer_that_misses_the_deadline_denies() -> None:
    committer = FakeCommitter(None, delay=30)

    outcome = await commit_decision([committer], _request("t", "uid-1"), _decision(True), {}, time.perf_counter())

    assert not outcome.allowed and "within the request deadline" in outcome.message


def test_only_a_token_to_check_against_the_ledger_means_io(key: Ed25519PrivateKey) -> None:
    """Without a token (most requests) the gatherer runs inline in the review; with one, in its own Task."""
    with_ledger = BreakGlassGatherer(BreakGlassSettings(), {"oncall": key.public_key()}, FakeKube())
    without_ledger = BreakGlassGatherer(BreakGlassSettings(), {"oncall": key.public_key()}, None)
    carrying = _subjects(_token(key))("uid-1")
    request = parse_review(factories.admission_review(factories.workload("Deployment", NEW), uid="uid-2"))
    plain = Subject(request=request, change=ChangeType.CREATE, template=carrying.template)
    scale = Subject(request=carrying.request, change=ChangeType.SCALE, template=carrying.template)
    assert with_ledger.needs_io(carrying) is True
    assert with_ledger.needs_io(plain) is False and with_ledger.needs_io(scale) is False
    assert without_ledger.needs_io(carrying) is False  # answered without I/O: "single use cannot be enforced"


async def test_the_sweep_deletes_records_of_tokens_expired_beyond_the_margin_and_keeps_the_rest() -> None:
    kube = FakeKube()
    now = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    ledger = BreakGlassLedger(kube, "deployguard-system", clock=lambda: now)
    await ledger.record("expired-long-ago", "u1", "Deployment shop/a", "2026-11-27T09:00:00Z")
    await ledger.record("expired-within-margin", "u2", "Deployment shop/b", "2026-11-27T11:30:00Z")
    await ledger.record("valid", "u3", "Deployment shop/c", "2026-11-27T13:00:00Z")
    await ledger.record("no-expiry-old", "u4", "Deployment shop/d")  # used-at + max TTL decides
    for obj in kube.objects.values():
        annotations = obj["metadata"]["annotations"]
        if annotations["deployguard.io/break-glass-token-id"] == "no-expiry-old":
            annotations["deployguard.io/break-glass-used-at"] = "2026-11-27T06:00:00+00:00"
        obj["metadata"]["resourceVersion"] = "1"
    await ledger.record("unreadable", "u5", "Deployment shop/e", "not a time")
    kube.objects[f"{ledger._path}/unrelated"] = {"metadata": {"name": "unrelated", "labels": {"app": "other"},
                                                               "annotations": {}}}  # fmt: skip

    deleted = await ledger.sweep(keep_after_expiry=timedelta(hours=1), max_ttl=timedelta(hours=4))

    assert deleted == 2
    token_ids = (o["metadata"]["annotations"].get("deployguard.io/break-glass-token-id") for o in kube.objects.values())
    left = set(token_ids)
    assert left == {"expired-within-margin", "valid", "unreadable", None}


async def test_the_committer_records_the_tokens_expiry_and_upkeep_can_be_off(key: Ed25519PrivateKey) -> None:
    kube = FakeKube()
    sweep = LedgerSweep(interval_seconds=0, keep_after_expiry_seconds=3600, max_ttl_seconds=4 * 3600)
    committer = BreakGlassCommitter(BreakGlassLedger(kube, "deployguard-system"), sweep)
    await asyncio.wait_for(committer.maintain(), 1)  # interval 0: returns at once
    fact = {"valid": True, "id": "tok-1", "expires": "2026-11-27T13:00:00Z"}
    decision = Decision(decision_id="d", allowed=True, subject="Deployment shop/web",
                        findings=(Finding(TOKEN_ANNOTATION, "tok-1", "", ANNOTATE),))  # fmt: skip
    assert await committer.commit(_request("t", "uid-9"), decision, {"facts": {"break_glass": fact}}) is None
    (lease,) = kube.objects.values()
    assert lease["metadata"]["annotations"]["deployguard.io/break-glass-expires-at"] == "2026-11-27T13:00:00Z"
