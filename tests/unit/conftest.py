from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from webhook.config import AdmissionSettings, PolicySettings
from webhook.engines.embedded import EmbeddedEngine
from webhook.observe.decision_log import DecisionLog
from webhook.policy_store import PolicyStore
from webhook.reviewer import Reviewer


class CapturedLog(DecisionLog):
    """The real decision log, writing to memory, with the lines parsed back."""

    def __init__(self) -> None:
        self.buffer = io.StringIO()
        super().__init__(stream=self.buffer)

    @property
    def records(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.buffer.getvalue().splitlines()]


@pytest.fixture
def decision_log() -> CapturedLog:
    return CapturedLog()


@pytest.fixture
async def reviewer(policies_dir: Path, decision_log: CapturedLog) -> AsyncIterator[Reviewer]:
    engine = EmbeddedEngine()
    store = PolicyStore(policies_dir, engine)
    assert await store.reload(), store.last_error
    yield Reviewer(engine, admission=AdmissionSettings(), policy=PolicySettings(), log=decision_log)
