"""The serving loop's TLS servers, on both event loops we serve on.

Open connections are held to server.max_connections from the moment they are accepted:
past the ceiling a connection is closed at once, without a handshake; a closed or failed
one frees its place; the ones inside work as TLS. And a handshake that does not finish in
time is dropped: without the bound, a client that connects and sends nothing, or half a
ClientHello, held a socket for asyncio's default 60 s, out of reach of the read
deadline's sweep (a connection joins uvicorn's list only once its handshake is done)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from webhook.serve import event_loop_factory
from webhook.tls import CertificatePaths, generate_certificates, server_context

LIMIT = 3


class Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertificatePaths:
    return generate_certificates(tmp_path_factory.mktemp("gate"), dns_names=["localhost"], ip_addresses=["127.0.0.1"])


def _serve(
    loop_choice: str, certs: CertificatePaths, scenario: Callable[[int], Any], handshake: float = 2, limit: int = LIMIT
) -> Any:
    """Run ``scenario(port)`` in a thread against an Echo TLS server on a bounded loop."""
    loop = event_loop_factory(loop_choice, tls_handshake_timeout=handshake, max_connections=limit)()

    async def main() -> Any:
        server = await loop.create_server(Echo, "127.0.0.1", 0, ssl=server_context(certs.cert, certs.key, None))
        try:
            return await asyncio.to_thread(scenario, server.sockets[0].getsockname()[1])
        finally:
            server.close()

    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


@contextmanager
def _raw(port: int, n: int) -> Iterator[list[socket.socket]]:
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
    try:
        yield socks
    finally:
        for s in socks:
            s.close()


def _echo(port: int, certs: CertificatePaths) -> bytes:
    context = ssl.create_default_context(cafile=str(certs.ca_cert))
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    with context.wrap_socket(raw, server_hostname="localhost") as s:
        s.sendall(b"ping")
        return s.recv(16)


def _closed_at_once(port: int) -> bool:
    """A connection past the ceiling is closed by the server before anything is sent."""
    with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
        try:
            return s.recv(1) == b""
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False


@pytest.mark.parametrize("loop_choice", ["uvloop", "asyncio"])
def test_connections_past_the_ceiling_are_closed_at_accept(loop_choice: str, certs: CertificatePaths) -> None:
    def scenario(port: int) -> None:
        assert _echo(port, certs) == b"ping"  # TLS as usual inside the ceiling
        with _raw(port, LIMIT):  # three connections that never start a handshake
            time.sleep(0.2)
            assert _closed_at_once(port)
            with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
                _echo(port, certs)
        time.sleep(0.2)  # their places are free again
        assert _echo(port, certs) == b"ping"

    _serve(loop_choice, certs, scenario)


@pytest.mark.parametrize("loop_choice", ["uvloop", "asyncio"])
def test_a_failed_or_timed_out_handshake_frees_its_place(loop_choice: str, certs: CertificatePaths) -> None:
    def scenario(port: int) -> None:
        for _ in range(2 * LIMIT):  # not TLS: each handshake fails, and its place comes back
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                try:
                    while s.recv(1024):
                        pass
                except ConnectionResetError:
                    pass
        with _raw(port, LIMIT):  # silent ones: dropped by the 2 s handshake deadline
            time.sleep(0.2)
            assert _closed_at_once(port)
            time.sleep(2.5)
            assert _echo(port, certs) == b"ping"

    _serve(loop_choice, certs, scenario)


CLIENT_HELLO_START = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"  # a record header and the first bytes of a hello


def _seconds_until_dropped(port: int, sent: bytes) -> float:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(5)
        sock.sendall(sent)
        started = time.monotonic()
        with contextlib.suppress(ConnectionResetError):
            assert sock.recv(1024) == b""  # the server hangs up, it never answers a half hello
        return time.monotonic() - started


@pytest.mark.parametrize("limit", [0, LIMIT], ids=["no ceiling", "ceiling"])
@pytest.mark.parametrize("loop_choice", ["uvloop", "asyncio"])
@pytest.mark.parametrize("sent", [b"", CLIENT_HELLO_START], ids=["nothing", "half a ClientHello"])
def test_an_unfinished_handshake_is_dropped_after_the_bound(
    loop_choice: str, sent: bytes, limit: int, certs: CertificatePaths
) -> None:
    waited = _serve(loop_choice, certs, lambda port: _seconds_until_dropped(port, sent), handshake=0.5, limit=limit)
    assert waited < 3  # 60 s without the bound: recv times out


def test_serve_bounds_handshakes_by_their_own_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    """server.tls_handshake_timeout_seconds, not the request read deadline, reaches the loop."""
    from dataclasses import replace

    import webhook.serve
    from webhook.config import Settings

    seen: list[tuple[Any, ...]] = []

    def factory(*args: Any) -> Callable[[], asyncio.AbstractEventLoop]:
        seen.append(args)
        raise RuntimeError("stop here")

    monkeypatch.setattr(webhook.serve, "event_loop_factory", factory)
    settings = Settings()
    settings = replace(settings, server=replace(settings.server, tls_handshake_timeout_seconds=3.0,
                                                request_read_timeout_seconds=7.0, max_connections=11))  # fmt: skip
    with pytest.raises(RuntimeError, match="stop here"):
        webhook.serve.serve_forever(settings)
    assert seen == [("auto", 3.0, 11)]
