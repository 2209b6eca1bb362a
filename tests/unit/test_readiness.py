"""/readyz waits for fact sources that must be primed: the Kubernetes change calendar.

Serving before the first list of ChangeFreeze objects would admit what a freeze blocks
(observed under load in tests/e2e/test_faults_kube.py before this check existed).
"""

from __future__ import annotations

import time
from pathlib import Path

from fastapi.testclient import TestClient

from tests.counters import CounterDeltas
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
    deltas = CounterDeltas()
    source.start()
    try:
        _wait_until_listed(source)
        assert source.listed()
        assert any("stale" in p.message for p in source.snapshot().problems)
        # Counted from the watch threads: at least one failed list per kind.
        assert deltas("deployguard_upstream_errors_total", upstream="kubernetes") >= 4
    finally:
        source.stop()


def _wait_until_listed(source: KubeCalendarSource) -> None:
    for _ in range(200):
        if source.listed():
            return
        time.sleep(0.05)


class _NoCrdApi:
    """The API server's answer while the CRDs are not installed: 404 on every list."""

    class Missing(Exception):
        status, reason = 404, "Not Found"

    def list_cluster_custom_object(self, *_args: object, **_kwargs: object) -> object:
        raise self.Missing()


def test_a_missing_crd_is_reported_but_not_counted_as_an_upstream_error(tmp_path: Path) -> None:
    """Retried every few seconds, a missing CRD counted as an outage would hold the
    DeployguardUpstreamErrors alert on; it is set-up, and the calendar says so."""

    class NoCrds(KubeCalendarSource):
        def _api(self) -> object:
            return _NoCrdApi()

    source = NoCrds(tmp_path / "kubeconfig", resync_seconds=1, stale_after_seconds=0)
    deltas = CounterDeltas()
    source.start()
    try:
        _wait_until_listed(source)
        time.sleep(0.6)  # a retry or two after the first failure
        assert source.listed()
        assert any("CRD is not installed" in p.message for p in source.snapshot().problems)
        assert deltas("deployguard_upstream_errors_total", upstream="kubernetes") == 0
    finally:
        source.stop()
