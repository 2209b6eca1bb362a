"""Fault injection helpers: a short asyncio load driver, a served deployguard, a TCP fault proxy.

The fault tests (``tests/integration/test_faults.py``, ``tests/e2e/test_faults_kube.py``)
drive a real ``deployguard serve`` over HTTPS with a few seconds of concurrent load while
a real dependency misbehaves. They measure how long answers take but never assert on it:
they assert that every answer arrived (before a generous client timeout), what it decided,
and that the decision log has exactly one line per answered request.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import shutil
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import POLICIES
from tests.controlplane import DeployguardServer, deployguard_command
from tests.counters import Samples
from tests.factories import PINNED, admission_review, workload

CLIENT_TIMEOUT = 30.0  # generous: far above deployguard's deadline, so "arrived" means "arrived in time"


@dataclass(frozen=True)
class Answer:
    """One request of the load: what came back (or the transport error), and how long it took."""

    name: str
    status: int  # 0: no HTTP answer (connection refused, reset, timeout)
    allowed: bool | None
    message: str
    warnings: tuple[str, ...]
    error: str
    seconds: float  # measured for the report, never asserted on
    started: float = 0.0  # time.monotonic() when it was sent

    @property
    def answered(self) -> bool:
        return self.status != 0


@dataclass
class Load:
    """Answers collected by ``drive``; phases are labelled so a test can look at one part."""

    answers: list[tuple[str, Answer]] = field(default_factory=list)
    phase: str = "start"
    marks: list[tuple[str, float]] = field(default_factory=list)  # (phase, time.monotonic() it began)

    def __post_init__(self) -> None:
        self.marks.append((self.phase, time.monotonic()))

    def enter(self, phase: str) -> None:
        """Label the requests sent from now on ``phase``."""
        self.phase = phase
        self.marks.append((phase, time.monotonic()))

    def of(self, phase: str) -> list[Answer]:
        return [a for p, a in self.answers if p == phase]

    def later(self, phase: str, seconds: float) -> list[Answer]:
        """Answers of ``phase`` sent at least ``seconds`` after it began (connections pooled
        and calls in flight from the phase before have drained by then)."""
        begun = max(t for p, t in self.marks if p == phase)
        return [a for a in self.of(phase) if a.started >= begun + seconds]

    def settled(self, phase: str) -> list[Answer]:
        """Answers of ``phase`` that also came back before the next phase began: what the
        state of ``phase`` alone decided (a request sent just before a switch may finish after it)."""
        ends = [t for (p, _), (_, t) in zip(self.marks, self.marks[1:], strict=False) if p == phase]
        end = ends[-1] if ends else float("inf")
        return [a for a in self.of(phase) if a.started + a.seconds < end]

    def answered(self) -> list[Answer]:
        return [a for _, a in self.answers if a.answered]

    def summary(self, phase: str) -> str:
        answers = self.of(phase)
        seconds = sorted(a.seconds for a in answers) or [0.0]
        return (
            f"{phase}: {len(answers)} requests, {sum(a.answered for a in answers)} answered, "
            f"max {seconds[-1] * 1000:.0f} ms, p50 {seconds[len(seconds) // 2] * 1000:.0f} ms"
        )


def client_context(ca_file: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_file))


def review_body(image: str = PINNED, *, unique: bool = True, namespace: str = "shop") -> tuple[str, dict[str, Any]]:
    """An AdmissionReview for a Deployment; ``unique`` names a new workload so the memo cannot answer."""
    name = f"web-{uuid.uuid4().hex[:10]}" if unique else "web"
    return name, admission_review(workload("Deployment", image, name=name, namespace=namespace))


async def post_review(client: httpx.AsyncClient, url: str, name: str, body: dict[str, Any]) -> Answer:
    sent, started = time.monotonic(), time.perf_counter()
    try:
        response = await client.post(url, json=body, timeout=CLIENT_TIMEOUT)
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"
        return Answer(name, 0, None, "", (), error, time.perf_counter() - started, sent)
    seconds = time.perf_counter() - started
    try:
        doc = response.json()
    except ValueError:
        return Answer(name, response.status_code, None, response.text[:300], (), "not JSON", seconds, sent)
    answer = doc.get("response") or {}
    return Answer(
        name,
        response.status_code,
        answer.get("allowed"),
        (answer.get("status") or {}).get("message", "") or str(doc.get("error", "")),
        tuple(answer.get("warnings") or ()),
        "",
        seconds,
        sent,
    )


async def drive(
    load: Load,
    url: str,
    ca_file: Path,
    *,
    seconds: float,
    concurrency: int = 8,
    make_body: Callable[[], tuple[str, dict[str, Any]]] = review_body,
    stop: asyncio.Event | None = None,
    keepalive: bool = True,
    context: ssl.SSLContext | None = None,
) -> None:
    """``concurrency`` workers post reviews back to back for ``seconds`` (or until ``stop``).

    Without ``keepalive`` every request opens a new connection (a new TLS handshake).
    """
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    stop = stop or asyncio.Event()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency if keepalive else 0)
    verify = context or client_context(ca_file)
    async with httpx.AsyncClient(verify=verify, limits=limits) as client:

        async def worker() -> None:
            while loop.time() < end and not stop.is_set():
                phase = load.phase
                name, body = make_body()
                answer = await post_review(client, url, name, body)
                load.answers.append((phase, answer))
                if not answer.answered:
                    await asyncio.sleep(0.05)  # refused: do not spin

        await asyncio.gather(*(worker() for _ in range(concurrency)))


@contextlib.asynccontextmanager
async def under_load(load: Load, server: DeployguardServer, **options: Any) -> AsyncIterator[None]:
    """``drive`` load (with ``options``) at ``server`` while the body runs; then stop it and
    wait for the requests in flight, so that ``load`` holds every answer."""
    stop = asyncio.Event()
    driver = asyncio.create_task(drive(load, server.url, server.ca_file, stop=stop, **options))
    try:
        yield
    except BaseException:
        driver.cancel()
        raise
    stop.set()
    await driver


async def readyz(base: str, ca_file: Path) -> tuple[int, dict[str, Any]]:
    async with httpx.AsyncClient(verify=client_context(ca_file)) as client:
        try:
            response = await client.get(f"{base}/readyz", timeout=10)
        except httpx.HTTPError:
            return 0, {}
        return response.status_code, response.json()


async def scrape(base: str, ca_file: Path) -> Samples:
    """Every sample of the server's ``/metrics`` (read them with ``tests.counters.total``)."""
    async with httpx.AsyncClient(verify=client_context(ca_file)) as client:
        response = await client.get(f"{base}/metrics", timeout=10)
    response.raise_for_status()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def decision_lines(server: DeployguardServer) -> int:
    """Lines in the decision log: one per answered /validate call (readiness probes write none)."""
    if not server.decision_log.exists():
        return 0
    return sum(1 for line in server.decision_log.read_text().splitlines() if line.strip())


def assert_all_answered(load: Load) -> None:
    """Every request got an HTTP 200 answer (allowed or denied): no transport error, no error status."""
    failed = [a for _, a in load.answers if a.status != 200]
    assert not failed, failed[:3]


def assert_log_matches(load: Load, server: DeployguardServer) -> None:
    """The decision log has exactly one line per answered request."""
    answered = len(load.answered())
    assert decision_lines(server) == answered, (
        f"{decision_lines(server)} decision log lines for {answered} answered requests"
    )


async def until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait (without blocking the load) until ``check()`` holds; fail saying ``what`` did not happen."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        if check():
            return
        await asyncio.sleep(0.2)
    pytest.fail(f"not within {timeout:.0f} s: {what}")


def policies_allowing(tmp: Path, *registries: str) -> Path:
    """A copy of the shipped policies whose allowed_registries also lists ``registries``."""
    target = tmp / "policies"
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(POLICIES, target)
    data_file = target / "data.yaml"
    data = yaml.safe_load(data_file.read_text())
    config = data["deployguard"]["config"]
    config["allowed_registries"]["registries"] = [*config["allowed_registries"]["registries"], *registries]
    data_file.write_text(yaml.safe_dump(data))
    return target


def served(work: Path, log_dir: Path, extra_config: dict[str, Any], *, name: str = "deployguard") -> DeployguardServer:
    """A ``deployguard serve`` process (not started) with its own certificates, config and decision log."""
    config = copy.deepcopy(extra_config)
    return DeployguardServer(
        tuple(deployguard_command()), work, log_dir, name=name, cert_reload_interval_seconds=0.2, extra_config=config
    )


@contextlib.contextmanager
def running(server: DeployguardServer) -> Iterator[DeployguardServer]:
    """``server`` started and ready; stopped afterwards, whatever happened."""
    server.start()
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def base_url(server: DeployguardServer) -> str:
    return f"https://127.0.0.1:{server.port}"


class FaultProxy:
    """A TCP proxy in front of a real server that can pass, delay, answer HTTP errors or refuse.

    Modes: ``pass`` (bytes through), ``slow`` (hold every request for ``delay`` seconds
    before passing it on, also on kept-alive connections), ``error`` (answer every request ``503`` without asking the
    server), ``down`` (the listener is closed: connection refused). Changing the mode drops
    the open connections so that clients with keep-alive pools see the new mode at once.
    """

    def __init__(self, target_host: str, target_port: int, port: int) -> None:
        self.target = (target_host, target_port)
        self.port = port
        self.mode = "pass"
        self.delay = 0.0
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()
        self._generation = 0
        self.requests = 0

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def set_mode(self, mode: str, *, delay: float = 0.0) -> None:
        assert mode in ("pass", "slow", "error", "down")
        self.mode, self.delay = mode, delay
        self._generation += 1  # connections of an earlier mode stop passing bytes
        for writer in list(self._connections):
            writer.close()
        self._connections.clear()
        if mode == "down" and self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        elif mode != "down" and self._server is None:
            await self.start()

    async def close(self) -> None:
        await self.set_mode("down")

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections.add(writer)
        generation = self._generation
        try:
            if self.mode == "down":  # accepted just before the listener closed
                return
            if self.mode == "error":
                await self._answer_errors(reader, writer)
                return
            head = await reader.readuntil(b"\r\n\r\n")
            self.requests += 1
            if self.mode == "slow":
                await asyncio.sleep(self.delay)
            up_reader, up_writer = await asyncio.open_connection(*self.target)
            self._connections.add(up_writer)
            up_writer.write(head)
            await asyncio.gather(
                self._pipe(reader, up_writer, generation, upstream=True), self._pipe(up_reader, writer, generation)
            )
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._connections.discard(writer)
            writer.close()

    async def _answer_errors(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        generation = self._generation
        while generation == self._generation:
            head = await reader.readuntil(b"\r\n\r\n")
            self.requests += 1
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await reader.readexactly(length)
            body = b'{"errors":[{"code":"UNAVAILABLE","message":"injected fault"}]}'
            writer.write(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, generation: int, upstream: bool = False
    ) -> None:
        try:
            while (data := await reader.read(65536)) and generation == self._generation:
                if upstream and self.mode == "slow" and data[:4] in (b"GET ", b"HEAD", b"POST", b"PUT "):
                    await asyncio.sleep(self.delay)  # a new request on a kept-alive connection
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                writer.close()
