"""A TLS handshake that does not finish in time is dropped, on both event loops we serve on.

Without the bound a client that connects and sends nothing, or half a ClientHello, holds a
socket for asyncio's default 60 s, out of reach of the read deadline's sweep (a connection
joins uvicorn's list only once its handshake is done)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from pathlib import Path

import pytest

from webhook.serve import event_loop_factory
from webhook.tls import generate_certificates, server_context

CLIENT_HELLO_START = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"  # a record header and the first bytes of a hello


def _seconds_until_dropped(loop_choice: str, handshake_timeout: float, sent: bytes, tmp_path: Path) -> float:
    """Serve TLS on a loop from event_loop_factory; return how long a stalled client stays connected."""
    paths = generate_certificates(tmp_path, dns_names=["localhost"], ip_addresses=["127.0.0.1"])
    context = server_context(paths.cert, paths.key, None)
    loop = event_loop_factory(loop_choice, tls_handshake_timeout=handshake_timeout)()

    async def scenario() -> float:
        server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0, ssl=context)
        port = server.sockets[0].getsockname()[1]
        try:
            return await asyncio.to_thread(_stall, port, sent)
        finally:
            server.close()

    try:
        return loop.run_until_complete(scenario())
    finally:
        loop.close()


def _stall(port: int, sent: bytes) -> float:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(5)
        sock.sendall(sent)
        started = time.monotonic()
        with contextlib.suppress(ConnectionResetError):
            assert sock.recv(1024) == b""  # the server hangs up, it never answers a half hello
        return time.monotonic() - started


@pytest.mark.parametrize("loop_choice", ["uvloop", "asyncio"])
@pytest.mark.parametrize("sent", [b"", CLIENT_HELLO_START], ids=["nothing", "half a ClientHello"])
def test_an_unfinished_handshake_is_dropped_after_the_bound(loop_choice: str, sent: bytes, tmp_path: Path) -> None:
    assert _seconds_until_dropped(loop_choice, 0.5, sent, tmp_path) < 3  # 60 s without the bound: recv times out
