"""``deployguard budget status`` against a real Prometheus scraping an exporter this test controls.

The command is run as a user runs it (a subprocess with ``--config``); it reads the
same SLO file and Prometheus the webhook's budgets gatherer reads.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.controlplane import deployguard_command
from tests.integration.test_error_budget_prometheus import SLO, Exporter, PrometheusServer

pytestmark = pytest.mark.integration


@pytest.fixture
def burning() -> Iterator[Exporter]:
    exporter = Exporter()
    exporter.error_fraction = 0.6  # 60% errors against a 10% budget: burn rate 6x
    yield exporter
    exporter.stop()


def _status(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [*deployguard_command(), "budget", "status", "--config", str(config), *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def test_budget_status_shows_the_burn_and_says_unknown_when_prometheus_stops(tmp_path: Path, burning: Exporter) -> None:
    prometheus = PrometheusServer(tmp_path, burning.port)
    slo_file = tmp_path / "slos.yaml"
    slo_file.write_text(yaml.safe_dump(SLO))
    config = tmp_path / "deployguard.yaml"
    config.write_text(yaml.safe_dump({"budgets": {"prometheus_url": prometheus.url, "slo_file": str(slo_file)}}))
    try:
        fact: dict[str, Any] = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until Prometheus has scraped enough to compute rates
            result = _status(config, "-o", "json")
            [fact] = json.loads(result.stdout)
            if fact.get("status") == "ok" and fact["burn_rates"]["8s"] > 2:
                break
            time.sleep(1)
        assert fact.get("status") == "ok" and fact["burn_rates"]["8s"] > 2, fact
        assert fact["budget_remaining_percent"] < 100, fact

        text = _status(config)
        assert text.returncode == 0, text.stderr
        assert text.stdout.startswith("web-availability: objective 90% over 20s, budget remaining "), text.stdout
        assert "burn rates 4s " in text.stdout and ", 8s " in text.stdout, text.stdout
    finally:
        prometheus.stop()

    down = _status(config)
    assert down.returncode == 1, down
    assert down.stdout.startswith("web-availability: UNKNOWN ("), down.stdout
