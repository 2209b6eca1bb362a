"""A small async Prometheus HTTP API client: instant queries, one number each. I/O only."""

from __future__ import annotations

import math
from typing import Any

import httpx

from webhook.errors import DeployguardError
from webhook.observe.io_counters import upstream_error


class PrometheusError(DeployguardError):
    """Prometheus could not answer a query; the message says which and why."""


class Prometheus:
    """Instant queries against ``/api/v1/query``, each bounded by ``timeout``."""

    def __init__(self, url: str, *, timeout: float = 2.0, client: httpx.AsyncClient | None = None) -> None:
        self.url = url.rstrip("/")
        self._client = client or httpx.AsyncClient(timeout=timeout)

    async def scalar(self, query: str) -> float | None:
        """The query's single value; None when it returns no series (no data) or NaN.

        Every query that fails counts as an upstream error of Prometheus.
        """
        try:
            return await self._scalar(query)
        except PrometheusError:
            upstream_error("prometheus")
            raise

    async def _scalar(self, query: str) -> float | None:
        try:
            response = await self._client.get(f"{self.url}/api/v1/query", params={"query": query})
        except httpx.HTTPError as exc:
            raise PrometheusError(f"Prometheus at {self.url} is unreachable ({type(exc).__name__}: {exc})") from None
        body: dict[str, Any] = {}
        try:
            parsed = response.json()
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            body = parsed
        if response.status_code != 200 or body.get("status") != "success":
            error = body.get("error") or response.text[:200]
            raise PrometheusError(f"Prometheus rejected query {query}: HTTP {response.status_code}: {error}")
        data: dict[str, Any] = body.get("data") or {}
        result: Any = data.get("result")
        if data.get("resultType") == "scalar":
            value = float(result[1])
        elif isinstance(result, list) and result:
            if len(result) > 1:
                raise PrometheusError(f"query {query} returned {len(result)} series; aggregate it to one (sum(...))")
            value = float(result[0]["value"][1])
        else:
            return None
        return None if math.isnan(value) or math.isinf(value) else value

    async def aclose(self) -> None:
        await self._client.aclose()
