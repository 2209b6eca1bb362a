"""Health and readiness, and the plain-HTTP listener the kubelet can probe under mTLS.

With ``server.client_ca_file`` set, the webhook's TLS port admits only callers with a
client certificate from that CA, and the kubelet has none: an HTTPS probe would fail
its handshake. ``server.probe_port`` opens a second, plain-HTTP listener that answers
``GET /healthz`` and ``GET /readyz`` — and ``GET /metrics`` when
``server.probe_port_metrics`` is on, for a Prometheus that has no client certificate
either — and nothing else: no admission review is ever read from it.
"""

from __future__ import annotations

import asyncio
import functools
import socket
from collections.abc import Callable
from typing import Any

import orjson
import uvicorn
from starlette.types import Receive, Scope, Send
from uvicorn.server import ServerState

from webhook.connection_gate import ConnectionCeiling, gated_plain_factory
from webhook.http_protocol import CoalescingHttpToolsProtocol
from webhook.observe.metrics import MetricsEndpoint
from webhook.policy_store import PolicyStore
from webhook.reviewer import Reviewer


async def readiness(reviewer: Reviewer, store: PolicyStore | None) -> tuple[bool, dict[str, Any]]:
    """Whether to take traffic: a policy revision loaded, the engine reachable, fact sources primed."""
    ok, reason = await reviewer.engine.ready()
    for gatherer in reviewer.gatherers:  # fact sources that must be primed before serving
        gatherer_ready = getattr(gatherer, "ready", None)
        if ok and callable(gatherer_ready):
            ok, reason = gatherer_ready()
    body: dict[str, Any] = {"ready": ok, "engine": reviewer.engine.name, "policy_revision": reviewer.engine.revision}
    if reason:
        body["reason"] = reason
    if store is not None and store.last_error:
        body["last_policy_error"] = store.last_error
    return ok, body


class ProbeApp:
    """ASGI: ``GET /healthz``, ``GET /readyz`` (and ``GET /metrics`` when given the endpoint);
    404 for any other path, 405 for other methods."""

    def __init__(self, reviewer: Reviewer, store: PolicyStore | None, metrics: MetricsEndpoint | None = None) -> None:
        self.reviewer, self.store, self.metrics = reviewer, store, metrics
        self.paths = ("/healthz", "/readyz", "/metrics") if metrics is not None else ("/healthz", "/readyz")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        content_type = "application/json"
        if path not in self.paths:
            served = " and ".join(self.paths)
            status, payload = 404, orjson.dumps({"error": f"not found: the probe port serves {served}, not {path}"})
        elif method not in ("GET", "HEAD"):
            status, payload = 405, orjson.dumps({"error": f"method {method} not allowed"})
        elif path == "/healthz":
            status, payload = 200, orjson.dumps({"status": "ok"})
        elif path == "/metrics" and self.metrics is not None:
            status, (payload, content_type) = 200, self.metrics.render()
        else:
            ok, body = await readiness(self.reviewer, self.store)
            status, payload = 200 if ok else 503, orjson.dumps(body)
        headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(payload)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else payload})


async def start_probe_listener(
    app: ProbeApp,
    host: str,
    port: int,
    sock: socket.socket | None = None,
    state: ServerState | None = None,
    max_connections: int = 0,
) -> asyncio.AbstractServer:
    """Listen for probes on ``host:port`` (or on ``sock``, a worker's SO_REUSEPORT socket).

    Built from the webhook's HTTP protocol (its head limit; ``state`` holds the connections,
    for the read deadline) without a ``uvicorn.Server``: the webhook's own server owns the
    signal handling and the shutdown, and closes this listener then. At most
    ``max_connections`` are open at once (0: no limit); more are closed at accept, as on
    the TLS port: whoever reaches the port could otherwise hold as many as it opens.
    """
    config = uvicorn.Config(
        app, host=host, port=port, http=CoalescingHttpToolsProtocol, lifespan="off", log_level="warning",
        access_log=False, server_header=False,
    )  # fmt: skip
    config.load()
    factory: Callable[[], asyncio.Protocol] = functools.partial(
        CoalescingHttpToolsProtocol, config=config, server_state=state or ServerState(), app_state={}
    )
    if max_connections > 0:
        factory = gated_plain_factory(factory, ConnectionCeiling(max_connections, "server.probe_max_connections"))
    loop = asyncio.get_running_loop()
    if sock is not None:
        return await loop.create_server(factory, sock=sock)
    return await loop.create_server(factory, host=host, port=port, reuse_address=True)
