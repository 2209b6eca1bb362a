"""``deployguard serve --workers N``: N processes answering on one port.

Python runs one decision at a time per process, so a second core needs a second
process. Each worker is a full ``run_server`` (its own engine, policy store,
certificate reloader, decision memo) on its own ``SO_REUSEPORT`` socket: the kernel
spreads connections across the workers' sockets, which balances better than
processes racing to accept on one shared socket, and a worker holding more than its
share of the connections closes one after its next answer (``webhook.connection_share``:
the kernel's hash is blind to load). The parent only supervises: it
starts the workers, forwards SIGTERM/SIGINT so each drains its in-flight requests
(uvicorn's graceful shutdown), and stops them all when one dies (the pod restarts,
rather than serving on fewer cores unnoticed).

Metrics: before the workers start, ``PROMETHEUS_MULTIPROC_DIR`` is pointed at an
empty directory (a fresh temporary one unless the operator set it), so a scrape of
``/metrics`` on any worker aggregates all of them (see ``webhook.observe.metrics``).
Linux lets only processes of the same user join a ``SO_REUSEPORT`` port.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import MutableSequence
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType

from webhook.config import Settings
from webhook.connection_share import ConnectionShare
from webhook.errors import ConfigError
from webhook.observe.log_format import configure_logging

log = logging.getLogger("deployguard.workers")

# Longer than uvicorn's graceful shutdown (20 s in webhook.serve) so workers drain first.
STOP_GRACE_SECONDS = 25.0


def reuseport_socket(host: str, port: int) -> socket.socket:
    """A listening socket that other workers of this user may bind to as well."""
    if not hasattr(socket, "SO_REUSEPORT"):
        raise ConfigError("--workers needs SO_REUSEPORT (Linux, BSD, macOS)")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: accepted sockets inherit it, and asyncio only sets TCP_NODELAY on
    # sockets that say they are TCP; without it Nagle + delayed ACKs add 40 ms per answer.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _worker_main(settings: Settings, index: int, connections: MutableSequence[int]) -> None:
    """Entry point of one worker process (spawned: a fresh interpreter, no inherited threads)."""
    from webhook.serve import serve_forever

    configure_logging(worker=index)
    sock = reuseport_socket(settings.server.host, settings.server.port)
    with contextlib.suppress(KeyboardInterrupt):
        serve_forever(settings, sockets=[sock], share=ConnectionShare(connections, index))


def _prepare_metrics_dir() -> Path | None:
    """Point prometheus-client's multiprocess mode at an empty directory; returns one we own."""
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if given:
        directory = Path(given)
        directory.mkdir(parents=True, exist_ok=True)
        for stale in directory.glob("*.db"):  # values of a previous run would be added to ours
            stale.unlink()
        return None
    owned = Path(tempfile.mkdtemp(prefix="deployguard-metrics-"))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(owned)
    return owned


def serve_workers(settings: Settings, workers: int) -> int:
    """Run ``workers`` worker processes until signalled or one of them exits; the exit code."""
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, not {workers}")
    reuseport_socket(settings.server.host, settings.server.port).close()  # fail early when the port is taken
    if settings.server.probe_port:
        reuseport_socket(settings.server.host, settings.server.probe_port).close()
    owned_metrics_dir = _prepare_metrics_dir()
    context = multiprocessing.get_context("spawn")
    children: list[BaseProcess] = []
    connections = context.Array("i", workers, lock=False)  # open connections per worker (shared memory)
    stopping = False

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        log.info("signal %d: stopping %d workers", signum, len(children))

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    exit_code = 0
    try:
        for index in range(workers):
            child = context.Process(
                target=_worker_main, args=(settings, index, connections), name=f"deployguard-w{index}"
            )
            child.start()
            children.append(child)
        log.info("deployguard: %d workers on %s:%d", workers, settings.server.host, settings.server.port)
        while not stopping:
            dead = [c for c in children if not c.is_alive()]
            if dead:
                log.error("worker %s exited (%s): stopping the others", dead[0].name, dead[0].exitcode)
                exit_code = 1
                break
            time.sleep(0.2)
    finally:
        _stop_children(children)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if owned_metrics_dir is not None:
            shutil.rmtree(owned_metrics_dir, ignore_errors=True)
    return exit_code


def _stop_children(children: list[BaseProcess]) -> None:
    """SIGTERM all (each drains in flight requests), then SIGKILL what outlives the grace period."""
    from prometheus_client import multiprocess

    for child in children:
        if child.is_alive() and child.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for child in children:
        child.join(max(0.0, deadline - time.monotonic()))
        if child.is_alive():
            log.warning("worker %s did not stop within %.0f s: killing it", child.name, STOP_GRACE_SECONDS)
            child.kill()
            child.join(5)
        if child.pid is not None and os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            multiprocess.mark_process_dead(child.pid)  # type: ignore[no-untyped-call]
