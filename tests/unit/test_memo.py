"""The decision memo can never serve a stale answer: any change of revision or fact is a new key."""

from __future__ import annotations

import copy
from typing import Any

from tests.factories import admission_review, workload
from tests.unit.conftest import CapturedLog
from webhook.admission import parse_review
from webhook.config import AdmissionSettings, PolicySettings
from webhook.decision import Finding
from webhook.memo import DecisionMemo, memo_key
from webhook.reviewer import Reviewer

BASE: dict[str, Any] = {"request": {"kind": "Deployment"}, "facts": {"clock": {"bucket": 1}}, "images": []}


def test_keys_differ_for_any_change() -> None:
    key = memo_key("rev1", BASE)
    assert memo_key("rev1", copy.deepcopy(BASE)) == key
    assert memo_key("rev2", BASE) != key
    later = copy.deepcopy(BASE)
    later["facts"]["clock"]["bucket"] = 2
    assert memo_key("rev1", later) != key
    reordered = {"images": [], "facts": {"clock": {"bucket": 1}}, "request": {"kind": "Deployment"}}
    assert memo_key("rev1", reordered) == key


def test_lru_is_bounded() -> None:
    memo = DecisionMemo(max_entries=2)
    for n in range(3):
        memo.put(bytes([n]), (Finding("r", str(n)),))
    assert len(memo) == 2 and memo.get(bytes([0])) is None and memo.get(bytes([2])) is not None
    off = DecisionMemo(max_entries=0)
    off.put(b"k", ())
    assert off.get(b"k") is None


class CountingEngine:
    name = "counting"

    def __init__(self) -> None:
        self.calls = 0
        self.revision = "r1"

    async def evaluate(self, policy_input: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        return {"deny": [{"rule": "x", "message": f"call {self.calls}"}]}

    async def ready(self) -> tuple[bool, str]:
        return True, ""

    async def load(self, bundle: Any) -> None: ...

    async def close(self) -> None: ...


async def test_repeats_hit_and_a_new_revision_or_request_misses(decision_log: CapturedLog) -> None:
    engine = CountingEngine()
    reviewer = Reviewer(engine, admission=AdmissionSettings(), policy=PolicySettings(), log=decision_log)  # type: ignore[arg-type]
    request = parse_review(admission_review(workload("Deployment", "nginx:1")))
    first = await reviewer.review(request)
    again = await reviewer.review(parse_review(admission_review(workload("Deployment", "nginx:1"))))  # new uid
    assert engine.calls == 1 and again.memo_hit and again.decision.findings == first.decision.findings
    assert again.decision.decision_id != first.decision.decision_id  # every answer has its own id and log line
    engine.revision = "r2"
    await reviewer.review(request)
    assert engine.calls == 2
    await reviewer.review(parse_review(admission_review(workload("Deployment", "nginx:2"))))
    assert engine.calls == 3
    assert len(decision_log.records) == 4
