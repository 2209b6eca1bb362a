"""The probe port's app: /healthz and /readyz only, never an admission review (webhook/probes.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from webhook.config import load_settings
from webhook.errors import ConfigError
from webhook.probes import ProbeApp
from webhook.reviewer import Reviewer


async def _get(app: ProbeApp, method: str, path: str, body: bytes = b"") -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://probe") as client:
        return await client.request(method, path, content=body)


async def test_health_and_readiness_answer(reviewer: Reviewer) -> None:
    app = ProbeApp(reviewer, None)
    assert (await _get(app, "GET", "/healthz")).json() == {"status": "ok"}
    ready = await _get(app, "GET", "/readyz")
    assert ready.status_code == 200
    assert ready.json()["ready"] is True and ready.json()["policy_revision"] == reviewer.engine.revision


class NotReady:
    name, revision = "embedded", ""

    async def ready(self) -> tuple[bool, str]:
        return False, "no policy revision compiled yet"


async def test_not_ready_is_a_503_with_the_reason(reviewer: Reviewer) -> None:
    reviewer.engine = NotReady()  # type: ignore[assignment]
    response = await _get(ProbeApp(reviewer, None), "GET", "/readyz")
    assert response.status_code == 503
    assert response.json()["reason"] == "no policy revision compiled yet"


@pytest.mark.parametrize(("method", "path", "status"), [
    ("POST", "/validate", 404), ("POST", "/mutate", 404), ("GET", "/metrics", 404), ("GET", "/", 404),
    ("POST", "/readyz", 405), ("DELETE", "/healthz", 405),
])  # fmt: skip
async def test_nothing_else_is_served(reviewer: Reviewer, method: str, path: str, status: int) -> None:
    """An admission review sent to the plain-HTTP port is never read, let alone decided."""
    seen: list[Any] = []
    reviewer.review = lambda request: seen.append(request)  # type: ignore[method-assign,assignment,return-value]
    response = await _get(ProbeApp(reviewer, None), method, path, b'{"kind": "AdmissionReview"}')
    assert response.status_code == status and "error" in response.json()
    assert seen == []


async def test_metrics_only_when_given_the_endpoint(reviewer: Reviewer) -> None:
    class Metrics:
        def render(self) -> tuple[bytes, str]:
            return b"deployguard_up 1\n", "text/plain; version=0.0.4"

    served = await _get(ProbeApp(reviewer, None, Metrics()), "GET", "/metrics")  # type: ignore[arg-type]
    assert served.status_code == 200 and served.text == "deployguard_up 1\n"
    assert served.headers["content-type"].startswith("text/plain")
    assert (await _get(ProbeApp(reviewer, None), "GET", "/metrics")).status_code == 404


@pytest.mark.parametrize("port", [-1, 70000, 8443])
def test_a_probe_port_must_be_a_free_port_of_its_own(tmp_path: Path, port: int) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"server:\n  port: 8443\n  probe_port: {port}\n")
    with pytest.raises(ConfigError, match="probe_port"):
        load_settings(config)
