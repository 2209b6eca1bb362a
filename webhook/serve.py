"""Run the webhook: engine, policy reloading, certificate reloading, HTTPS server."""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import contextlib
import gc
import logging
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.server import ServerState

from webhook.config import Settings
from webhook.connection_gate import ConnectionCeiling, TlsProtocolClass, gated_tls_factory
from webhook.connection_share import ConnectionShare
from webhook.engines import make_engine
from webhook.errors import ConfigError
from webhook.facts.setup import build_committers, build_gatherers
from webhook.http_protocol import close_open_connections, close_slow_requests, rotating_protocol
from webhook.memory_release import memory_releaser
from webhook.observe.decision_log import DecisionLog
from webhook.observe.observability import build_observability
from webhook.policy_bundle import default_policy_dir
from webhook.policy_store import PolicyStore
from webhook.probes import ProbeApp, start_probe_listener
from webhook.reviewer import Reviewer
from webhook.server import create_app
from webhook.tls import CertificateReloader, generate_certificates, server_context
from webhook.trust.mutation import build_mutator
from webhook.workers import reuseport_socket

log = logging.getLogger("deployguard")


def ensure_dev_certificates(certfile: Path, keyfile: Path) -> Path:
    """A throwaway CA and a serving cert for localhost / 127.0.0.1, for trying things out."""
    directory = certfile.parent
    paths = generate_certificates(directory, dns_names=["localhost"], ip_addresses=["127.0.0.1", "::1"])
    if paths.cert != certfile or paths.key != keyfile:
        raise ConfigError("--dev-certs writes tls.crt/tls.key next to each other; point --cert/--key at them")
    return paths.ca_cert


def event_loop_factory(
    choice: str, tls_handshake_timeout: float = 0, max_connections: int = 0
) -> Callable[[], asyncio.AbstractEventLoop]:
    """The loop to serve on: uvloop when installed ("auto", uvicorn's own default), or as chosen.

    ``deployguard serve`` runs uvicorn inside its own ``asyncio.Runner``, so uvicorn's
    loop choice does not apply; without this the server ran on the pure-Python loop
    and TLS, which costs about as much per request as deciding one from the memo.
    Its TLS servers bound every handshake to ``tls_handshake_timeout`` seconds and hold
    open connections to ``max_connections`` (each 0: the loop's own 60 s, no ceiling)."""
    if choice not in ("auto", "asyncio", "uvloop"):
        raise ConfigError(f"server.event_loop must be auto, asyncio or uvloop, not {choice!r}")
    base: type[asyncio.AbstractEventLoop] = asyncio.SelectorEventLoop
    tls_class: TlsProtocolClass = asyncio.sslproto.SSLProtocol
    if choice != "asyncio":
        try:
            import uvloop
            import uvloop.loop

            base, tls_class = uvloop.Loop, uvloop.loop.SSLProtocol  # type: ignore[attr-defined]
        except ImportError:
            if choice == "uvloop":
                missing = "server.event_loop is uvloop but uvloop is not installed (pip install uvloop)"
                raise ConfigError(missing) from None
    if not tls_handshake_timeout and not max_connections:
        return base
    return bounded_loop(base, tls_class, tls_handshake_timeout, max_connections)


def bounded_loop(
    base: type[asyncio.AbstractEventLoop], tls_class: TlsProtocolClass, handshake_timeout: float, max_connections: int
) -> type[asyncio.AbstractEventLoop]:
    """``base`` whose TLS servers drop a handshake unfinished after ``handshake_timeout``
    seconds and refuse connections past ``max_connections`` at accept (connection_gate.py).

    uvicorn has no setting for either, and a connection joins its list (and our read
    deadline's sweep) only once the handshake is done, so without this a client that
    connects and sends nothing, or half a ClientHello, holds a socket for asyncio's
    default 60 s, and as many of them as it opens."""

    class BoundedLoop(base):  # type: ignore[valid-type,misc]
        async def create_server(self, protocol_factory: Any, *args: Any, **kwargs: Any) -> asyncio.AbstractServer:
            context = kwargs.get("ssl")
            timeout = kwargs.get("ssl_handshake_timeout") or handshake_timeout or None
            if context is not None and max_connections > 0:
                ceiling = ConnectionCeiling(max_connections)
                protocol_factory = gated_tls_factory(self, tls_class, protocol_factory, context, ceiling, timeout)
                kwargs.update(ssl=None, ssl_handshake_timeout=None)
            elif context is not None:
                kwargs["ssl_handshake_timeout"] = timeout
            server: asyncio.AbstractServer = await super().create_server(protocol_factory, *args, **kwargs)
            return server

    return BoundedLoop


async def cut_slow_requests(states: list[ServerState], read_timeout: float) -> None:
    """Every second, close connections whose request is overdue (see close_slow_requests)."""
    while True:
        await asyncio.sleep(1.0)
        for state in states:
            close_slow_requests(state.connections, read_timeout)


def serve_forever(
    settings: Settings, sockets: list[socket.socket] | None = None, share: ConnectionShare | None = None
) -> None:
    """Run ``run_server`` to the end on the configured event loop (``serve`` and each worker)."""
    cfg = settings.server
    loop_factory = event_loop_factory(cfg.event_loop, cfg.tls_handshake_timeout_seconds, cfg.max_connections)
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(run_server(settings, sockets, share))


async def run_server(
    settings: Settings, sockets: list[socket.socket] | None = None, share: ConnectionShare | None = None
) -> None:
    """Serve until cancelled or signalled; on ``sockets`` when given (``--workers``), keeping to
    ``share`` of the workers' connections when given."""
    engine = make_engine(settings.policy)
    directory = settings.policy.directory or default_policy_dir()
    store = PolicyStore(directory, engine, interval=settings.policy.reload_interval_seconds)
    await store.reload()
    if not engine.revision:
        if settings.policy.engine in ("embedded", "wasm"):  # in-process: nothing to wait for
            raise ConfigError(f"the policies in {directory} cannot be served: {store.last_error}")
        log.warning("starting unready: %s", store.last_error)
    decision_log = DecisionLog(settings.admission.decision_log_path, fsync=settings.observability.decision_log_fsync)
    reviewer = Reviewer(
        engine,
        admission=settings.admission,
        policy=settings.policy,
        log=decision_log,
        gatherers=build_gatherers(settings),
        committers=build_committers(settings),
    )
    observability = build_observability(settings, engine, lambda: store.last_error)
    reviewer.observers.extend(observability.observers)

    server_cfg = settings.server
    reloader_box: list[CertificateReloader] = []

    async def background() -> AsyncIterator[None]:
        tasks = [asyncio.create_task(store.watch())]
        tasks += [asyncio.create_task(r.watch()) for r in reloader_box]
        tasks += [asyncio.create_task(task()) for task in observability.tasks]
        if server_cfg.request_read_timeout_seconds:
            # `server` is made below; this runs at start-up, inside server.serve()
            states = [server.server_state, probe_state]
            tasks.append(asyncio.create_task(cut_slow_requests(states, server_cfg.request_read_timeout_seconds)))
        releaser = memory_releaser(server_cfg.memory_release_threshold_mib)
        if releaser is not None:
            tasks.append(asyncio.create_task(releaser.watch()))
        # Committers' upkeep while serving (the break-glass ledger drops records of expired tokens).
        upkeep = [m for c in reviewer.committers if callable(m := getattr(c, "maintain", None))]
        tasks += [asyncio.create_task(maintain()) for maintain in upkeep]
        watchers = [g for g in reviewer.gatherers if callable(getattr(g, "start", None))]  # e.g. the windows watch
        for watcher in watchers:
            watcher.start()  # type: ignore[attr-defined]
        try:
            yield
        finally:
            for watcher in watchers:
                watcher.stop()  # type: ignore[attr-defined]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await engine.close()
            decision_log.close()
            for close in observability.closers:
                close()

    app = create_app(reviewer, store, max_body_bytes=settings.admission.max_body_bytes,
                     max_json_depth=settings.admission.max_json_depth,
                     max_receiving_body_bytes=server_cfg.max_receiving_body_bytes, lifespan_tasks=background,
                     metrics=observability.metrics,
                     mutator=build_mutator(settings, reviewer.gatherers, decision_log))  # fmt: skip
    config = uvicorn.Config(
        app,
        host=server_cfg.host,
        port=server_cfg.port,
        ssl_certfile=str(server_cfg.certfile),
        ssl_keyfile=str(server_cfg.keyfile),
        # head and body of an answer in one TLS record and one send; connections rotated
        http=rotating_protocol(
            max_requests=server_cfg.max_requests_per_connection,
            max_age=server_cfg.max_connection_age_seconds,
            share=share,
        ),
        log_level="warning",
        access_log=False,
        server_header=False,  # no "server: uvicorn": nothing to tell a scanner which parser to try
        lifespan="on",
        timeout_graceful_shutdown=20,
    )
    config.load()
    # Our context, not uvicorn's: the same settings at the start and at every reload (tls.py).
    config.ssl = server_context(server_cfg.certfile, server_cfg.keyfile, server_cfg.client_ca_file)
    reloader_box.append(
        CertificateReloader(
            config.ssl,
            server_cfg.certfile,
            server_cfg.keyfile,
            server_cfg.client_ca_file,
            interval=server_cfg.cert_reload_interval_seconds,
            # the client CA rotated: no connection authenticated under the old one stays open
            on_client_ca_change=lambda: close_open_connections(server),
        )
    )
    log.info(
        "deployguard serving https://%s:%d/validate (engine %s, policy revision %s, policies %s)",
        server_cfg.host,
        server_cfg.port,
        engine.name,
        engine.revision or "none",
        directory,
    )
    # Everything built so far (policies, clients, caches' skeletons) lives as long as the
    # process: move it out of the collector's way, so a full collection while serving walks
    # only what requests allocate (a long pause there is a latency spike for every caller).
    gc.collect()
    gc.freeze()
    server = uvicorn.Server(config)
    probe_state = ServerState()  # the probe listener's connections, if it listens
    probes = None
    if server_cfg.probe_port:
        # with --workers each worker joins the probe port too (SO_REUSEPORT), like the main one
        probe_sock = reuseport_socket(server_cfg.host, server_cfg.probe_port) if sockets else None
        probe_metrics = observability.metrics if server_cfg.probe_port_metrics else None
        probes = await start_probe_listener(
            ProbeApp(reviewer, store, probe_metrics),
            server_cfg.host,
            server_cfg.probe_port,
            probe_sock,
            probe_state,
            server_cfg.probe_max_connections,
        )
        log.info("probes on http://%s:%d/readyz and /healthz", server_cfg.host, server_cfg.probe_port)
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await server.serve(sockets=sockets)
    finally:
        if probes is not None:
            probes.close()
