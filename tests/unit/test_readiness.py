"""/readyz waits for fact sources that must be primed: the Kubernetes change calendar.

Serving before the first list of ChangeFreeze objects would admit what a freeze blocks
(observed under load in tests/e2e/test_faults_kube.py before this check existed).
"""

from __future__ import annotations

import time
from pathlib import Path

from fastapi.testclient import TestClient

from tests.unit.conftest import CapturedLog
from webhook.config import AdmissionSettings, PolicySettings
from webhook.facts.windows import WindowsGatherer
from webhook.governance.calendar_sources import Snapshot
from webhook.governance.kube_calendar import KubeCalendarSource
from webhook.reviewer import Reviewer
from webhook.server import create_app


class PrimingSource:
    """A calendar source whose first list has or has not happened yet."""

    name = "fake"

    def __init__(self) -> None:
        self.done = False

    def snapshot(self) -> Snapshot:
        return Snapshot()

    def listed(self) -> bool:
        return self.done


def test_readyz_is_503_until_the_calendar_was_listed(reviewer: Reviewer, decision_log: CapturedLog) -> None:
    source = PrimingSource()
    primed = Reviewer(reviewer.engine, admission=AdmissionSettings(), policy=PolicySettings(), log=decision_log,
                      gatherers=[WindowsGatherer([source])])  # fmt: skip
    client = TestClient(create_app(primed, None, max_body_bytes=1024))
    first = client.get("/readyz")
    assert first.status_code == 503
    assert "not listed yet" in first.json()["reason"]
    source.done = True
    assert client.get("/readyz").status_code == 200


def test_kube_calendar_counts_a_failed_first_list_as_listed(tmp_path: Path) -> None:
    """Unreachable or misconfigured Kubernetes must not keep deployguard unready forever:
    the failure is reported as a stale calendar instead (the policy decides)."""
    source = KubeCalendarSource(tmp_path / "no-such-kubeconfig", resync_seconds=1, stale_after_seconds=0)
    assert not source.listed()
    source.start()
    try:
        for _ in range(200):
            if source.listed():
                break
            time.sleep(0.05)
        assert source.listed()
        assert any("stale" in p.message for p in source.snapshot().problems)
    finally:
        source.stop()
