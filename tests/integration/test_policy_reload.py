"""Hot reload on both engines: a new revision serves without restart, a broken one is
rejected with the compiler's message while the previous one keeps serving, and the
OPA engine heals an OPA server that restarted and forgot everything."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest

from tests.conftest import POLICIES
from tests.factories import PINNED, admission_review, workload
from tests.integration.conftest import OpaServer
from webhook.admission import parse_review
from webhook.config import AdmissionSettings, PolicySettings
from webhook.engines import PolicyEngine
from webhook.engines.embedded import EmbeddedEngine
from webhook.engines.opa import OpaEngine
from webhook.memo import DecisionMemo
from webhook.observe.decision_log import DecisionLog
from webhook.policy_store import PolicyStore
from webhook.reviewer import Reviewer

pytestmark = pytest.mark.integration

EXTRA_RULE = """package deployguard.rules.no_web_name
import rego.v1
violation contains {"message": "workloads may not be called web", "fix": "rename it"} if input.request.name == "web"
"""


def _copy_policies(tmp_path: Path) -> Path:
    target = tmp_path / "policies"
    shutil.copytree(POLICIES, target)
    return target


def _reviewer(engine: PolicyEngine, admission: AdmissionSettings, memo: DecisionMemo | None = None) -> Reviewer:
    """A reviewer on ``engine`` with the default policy settings and a decision log kept in memory."""
    return Reviewer(engine, admission=admission, policy=PolicySettings(), log=DecisionLog(stream=io.StringIO()),
                    memo=memo)  # fmt: skip


async def _allowed(reviewer: Reviewer) -> bool:
    outcome = await reviewer.review(parse_review(admission_review(workload("Deployment", PINNED))))
    return outcome.decision.allowed


@pytest.mark.parametrize("engine_name", ["embedded", "opa"])
async def test_new_revision_serves_and_broken_one_is_rejected(tmp_path: Path, opa_server: OpaServer,
                                                              engine_name: str) -> None:
    directory = _copy_policies(tmp_path)
    engine: PolicyEngine = EmbeddedEngine() if engine_name == "embedded" else OpaEngine(opa_server.url)
    store = PolicyStore(directory, engine, retry_failed_after=0)
    reviewer = _reviewer(engine, AdmissionSettings())
    try:
        assert await store.reload(), store.last_error
        first = engine.revision
        assert await _allowed(reviewer)

        # A new rule, enforced through data: the next reload serves it.
        (directory / "deployguard/rules/no_web_name.rego").write_text(EXTRA_RULE)
        (directory / "extra.data.yaml").write_text("deployguard:\n  config:\n    rules:\n      no_web_name:\n"
                                                   "        mode: enforce\n")
        assert await store.reload(), store.last_error
        second = engine.revision
        assert second != first
        assert not await _allowed(reviewer)

        # A syntax error: rejected with the compiler's words, the second revision keeps serving.
        (directory / "deployguard/rules/no_web_name.rego").write_text(EXTRA_RULE.replace("if input", "if {input"))
        assert not await store.reload()
        assert engine.revision == second
        assert "no_web_name.rego" in store.last_error or "rego_parse_error" in store.last_error, store.last_error
        assert store.rejected_revisions == 1
        assert not await _allowed(reviewer)
        ok, _ = await engine.ready()
        assert ok

        # Fixed again: serves.
        (directory / "deployguard/rules/no_web_name.rego").unlink()
        assert await store.reload(), store.last_error
        assert await _allowed(reviewer)
    finally:
        await engine.close()


async def test_opa_engine_heals_a_restarted_opa(tmp_path: Path, opa: OpaServer) -> None:
    engine = OpaEngine(opa.url)
    # No memo here: every review must reach OPA (the memo's own behaviour is tested below).
    reviewer = _reviewer(engine, AdmissionSettings(deadline_seconds=5), memo=DecisionMemo(0))
    try:
        store = PolicyStore(_copy_policies(tmp_path), engine)
        assert await store.reload(), store.last_error
        bad = parse_review(admission_review(workload("Deployment", "nginx:latest")))
        assert not (await reviewer.review(bad)).decision.allowed

        opa.stop()
        down = await reviewer.review(bad)
        assert not down.decision.allowed and "unreachable" in down.decision.error
        assert not (await engine.ready())[0]
        # Also an allowed-looking request is denied while OPA is down: a failure is never an allow.
        assert not (await reviewer.review(parse_review(admission_review(workload("Deployment", PINNED))))
                    ).decision.allowed

        opa.start()  # same port, empty OPA
        healed = await reviewer.review(bad)
        assert healed.decision.error == "", healed.decision.error
        assert not healed.decision.allowed and healed.decision.findings
        assert (await engine.ready())[0]
    finally:
        await engine.close()


async def test_memo_answers_a_repeat_while_opa_is_down_but_nothing_new(tmp_path: Path, opa: OpaServer) -> None:
    """A decision is a pure function of (revision, input): a repeat may be answered from memory."""
    engine = OpaEngine(opa.url)
    reviewer = _reviewer(engine, AdmissionSettings(deadline_seconds=5))
    try:
        assert await PolicyStore(_copy_policies(tmp_path), engine).reload()
        seen = parse_review(admission_review(workload("Deployment", "nginx:latest")))
        first = await reviewer.review(seen)
        opa.stop()
        repeat = await reviewer.review(seen)
        assert repeat.memo_hit and repeat.decision.findings == first.decision.findings
        new = await reviewer.review(parse_review(admission_review(workload("Deployment", PINNED, name="api"))))
        assert not new.memo_hit and not new.decision.allowed and "unreachable" in new.decision.error
    finally:
        await engine.close()
