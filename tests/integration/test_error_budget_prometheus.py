"""Error-budget freezes against a real Prometheus scraping an exporter this test controls.

The exporter is prometheus_client's HTTP server in this process; the test moves its
counters. Short SLO windows (seconds) let the freeze appear and lift within a test.
"""

from __future__ import annotations

import asyncio
import copy
import shutil
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry, Counter, start_http_server

from tests import factories
from tests.counters import CounterDeltas
from tests.processes import Process, free_port, http_ok
from webhook.admission import parse_review
from webhook.config import AdmissionSettings, PolicySettings
from webhook.engines.embedded import EmbeddedEngine
from webhook.facts.budgets import BudgetGatherer, BudgetReader
from webhook.governance.prometheus import Prometheus
from webhook.governance.slo import parse_slos
from webhook.observe.decision_log import DecisionLog
from webhook.policy_store import PolicyStore
from webhook.reviewer import Reviewer

pytestmark = pytest.mark.integration

SLO = {
    "slos": [
        {
            "name": "web-availability",
            "selector": {"namespace": "shop", "labels": {"app": "web"}},
            "objective": 0.9,
            "window": "20s",
            "error_ratio_query": "sum(rate(dg_errors_total[{{window}}])) / sum(rate(dg_requests_total[{{window}}]))",
            "burn_windows": ["4s", "8s"],
            "burn_alerts": [{"long": "8s", "short": "4s", "factor": 2}],
        }
    ]
}


class Exporter:
    """Counters of requests and errors, moved by a background thread at a chosen error rate."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("dg_requests", "requests", registry=self.registry)
        self.errors = Counter("dg_errors", "errors", registry=self.registry)
        self.port = free_port()
        self.error_fraction = 0.0
        self._stop = threading.Event()
        self.server, self.thread = start_http_server(self.port, addr="127.0.0.1", registry=self.registry)
        self._mover = threading.Thread(target=self._move, daemon=True)
        self._mover.start()

    def _move(self) -> None:
        while not self._stop.wait(0.1):
            self.requests.inc(10)
            self.errors.inc(10 * self.error_fraction)

    def stop(self) -> None:
        self._stop.set()
        self.server.shutdown()


class PrometheusServer:
    def __init__(self, work: Path, target_port: int) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail("prometheus is not installed; run: apt-get install -y prometheus (scripts/test.sh does)")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = work / "prometheus.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "scrape_configs": [
                        {"job_name": "exporter", "static_configs": [{"targets": [f"127.0.0.1:{target_port}"]}]}
                    ],
                }
            )
        )
        argv = [
            binary, f"--config.file={config}", f"--storage.tsdb.path={work / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
        ]  # fmt: skip
        self.process = Process("prometheus", argv, work / "logs")
        self.process.wait_until(lambda: http_ok(f"{self.url}/-/ready"), 60, "ready")

    def stop(self) -> None:
        self.process.stop()


@pytest.fixture
def exporter() -> Iterator[Exporter]:
    e = Exporter()
    yield e
    e.stop()


@pytest.fixture
def prometheus(tmp_path: Path, exporter: Exporter) -> Iterator[PrometheusServer]:
    server = PrometheusServer(tmp_path, exporter.port)
    yield server
    server.stop()


@pytest.fixture
async def reviewer(policies_dir: Path, prometheus: PrometheusServer) -> AsyncIterator[Reviewer]:
    engine = EmbeddedEngine()
    store = PolicyStore(policies_dir, engine)
    assert await store.reload(), store.last_error
    reader = BudgetReader(parse_slos(SLO), Prometheus(prometheus.url, timeout=1.0), ttl=0.0)
    yield Reviewer(
        engine,
        admission=AdmissionSettings(),
        policy=PolicySettings(),
        log=DecisionLog(stream=open("/dev/null", "w")),  # noqa: SIM115
        gatherers=[BudgetGatherer(reader)],
    )


def _rollout() -> dict[str, object]:
    old = factories.workload("Deployment", factories.PINNED)
    new = copy.deepcopy(old)
    new["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/version"] = "1.0.1"
    return factories.admission_review(new, operation="UPDATE", old=old)


async def _rules(reviewer: Reviewer, mode: str) -> list[str]:
    outcome = await reviewer.review(parse_review(_rollout()))
    return [f.rule for f in outcome.decision.by_mode(mode)]


async def _wait_for(reviewer: Reviewer, predicate: str, want: bool, timeout: float = 60) -> None:
    """Poll decisions until error_budget is (or is not) among the deny findings."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: list[str] = []
    while loop.time() < deadline:
        last = await _rules(reviewer, "deny")
        if (predicate in last) == want:
            return
        await asyncio.sleep(1)
    pytest.fail(f"{predicate} in deny findings never became {want}; last deny rules: {last}")


async def test_freeze_appears_and_lifts_with_the_error_rate(
    reviewer: Reviewer, exporter: Exporter, prometheus: PrometheusServer
) -> None:
    # Healthy traffic: once Prometheus has data, the rollout passes with a known budget.
    await _wait_for(reviewer, "error_budget", False)
    assert "error_budget_unknown" not in await _rules(reviewer, "warn")

    exporter.error_fraction = 0.6  # burn rate 6x against a 10% budget
    await _wait_for(reviewer, "error_budget", True)
    outcome = await reviewer.review(parse_review(_rollout()))
    assert "SLO web-availability" in outcome.decision.message

    exporter.error_fraction = 0.0
    await _wait_for(reviewer, "error_budget", False, timeout=90)


async def test_prometheus_down_warns_by_default(reviewer: Reviewer, prometheus: PrometheusServer) -> None:
    prometheus.stop()
    deltas = CounterDeltas()
    outcome = await reviewer.review(parse_review(_rollout()))
    assert outcome.decision.allowed
    warnings = [f for f in outcome.decision.by_mode("warn") if f.rule == "error_budget_unknown"]
    assert len(warnings) == 1 and "web-availability" in warnings[0].message
    # One query per window (20s, 4s, 8s); the fact is unknown at the first failure, the others may still run.
    assert 1 <= deltas("deployguard_upstream_errors_total", upstream="prometheus") <= 3
    assert deltas("deployguard_cache_requests_total", cache="budget", result="miss") == 1


async def test_a_fresh_budget_comes_from_the_cache(prometheus: PrometheusServer) -> None:
    client = Prometheus(prometheus.url, timeout=1.0)
    [slo] = parse_slos(SLO)
    reader = BudgetReader((slo,), client, ttl=60.0)
    try:
        deltas = CounterDeltas()
        first = await reader.read(slo)
        assert first["status"] == "ok" and await reader.read(slo) is first
        assert deltas("deployguard_cache_requests_total", cache="budget", result="miss") == 1
        assert deltas("deployguard_cache_requests_total", cache="budget", result="hit") == 1
        assert deltas("deployguard_upstream_errors_total", upstream="prometheus") == 0
    finally:
        await client.aclose()
