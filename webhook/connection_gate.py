"""Open TLS connections held to a ceiling, counted from the moment they are accepted.

Every accepted connection costs ~50 KB before its TLS handshake even starts (the TLS
layer's buffers), and uvicorn knows of a connection only once the handshake is done.
Measured on a served deployguard: 4,000 plain TCP connects that sent nothing took the
process from 125 to 329 MB for the ten seconds the handshake deadline lets them live;
the chart's memory limit is 512 MiB, and a NetworkPolicy that lets "anyone" reach the
port (its default: the API server's address differs per cluster) lets any pod do that.

So the serving loop (webhook/serve.py) creates its TLS servers as plain TCP servers
whose protocol is ``GatedTLS``: at accept it checks the count and either aborts the
connection at once (no TLS state is made) or wraps it in the loop's own TLS protocol,
as the loop would have done, and forwards to it. Connections beyond the ceiling are
refused while a flood lasts (the API server then applies failurePolicy), instead of the
process being killed for its memory and restarted into the same flood. The plain-HTTP
probe port gets the same ceiling (``GatedPlain``, ``server.probe_max_connections``).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("deployguard.connections")

TlsProtocolClass = Callable[..., asyncio.BufferedProtocol]


class ConnectionCeiling:
    """How many connections one server holds open, and how many it may."""

    def __init__(self, limit: int, setting: str = "server.max_connections") -> None:
        self.limit = limit
        self.setting = setting
        self.open = 0
        self._refused_unlogged = 0
        self._logged_at = 0.0

    def admit(self) -> bool:
        if self.open < self.limit:
            self.open += 1
            if self._refused_unlogged:  # the flood ebbed: say how many went unreported
                self._report(time.monotonic())
            return True
        self._refused_unlogged += 1
        now = time.monotonic()
        if now - self._logged_at >= 1.0:  # one line a second, whatever the flood
            self._report(now)
        return False

    def _report(self, now: float) -> None:
        log.warning("refused %d connection(s): %d open, the limit is %d (%s)",
                    self._refused_unlogged, self.open, self.limit, self.setting)  # fmt: skip
        self._refused_unlogged, self._logged_at = 0, now

    def release(self) -> None:
        self.open -= 1


class _Gated:
    """What both gated protocols share: a place under the ceiling taken at accept (or the
    connection aborted), given back when the connection is lost, and the events forwarded
    to the protocol that serves the connection (``_inner``, None when refused)."""

    __slots__ = ("_ceiling", "_inner")

    def __init__(self, ceiling: ConnectionCeiling) -> None:
        self._ceiling = ceiling
        self._inner: Any = None

    def _admitted(self, transport: asyncio.BaseTransport) -> bool:
        if self._ceiling.admit():
            return True
        transport.abort()  # type: ignore[attr-defined]
        return False

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._inner is None:
            return  # refused at accept
        self._ceiling.release()
        inner, self._inner = self._inner, None
        inner.connection_lost(exc)


class GatedTLS(_Gated, asyncio.BufferedProtocol):
    """The protocol of one accepted TCP connection: refused past the ceiling, else TLS."""

    __slots__ = ("_make_tls",)

    def __init__(self, ceiling: ConnectionCeiling, make_tls: Callable[[asyncio.BaseTransport], Any]) -> None:
        super().__init__(ceiling)
        self._make_tls = make_tls

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._admitted(transport):
            self._inner = self._make_tls(transport)
            self._inner.connection_made(transport)

    def get_buffer(self, sizehint: int) -> Any:
        return self._inner.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        self._inner.buffer_updated(nbytes)


class GatedPlain(_Gated, asyncio.Protocol):
    """The same ceiling for a plain-HTTP listener (the probe port): refused past it, else
    the HTTP protocol itself, which this forwards to."""

    __slots__ = ("_waiting",)

    def __init__(self, ceiling: ConnectionCeiling, inner: asyncio.Protocol) -> None:
        super().__init__(ceiling)
        self._waiting = inner  # serves the connection once admitted

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._admitted(transport):
            self._inner = self._waiting
            self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._inner is not None:
            self._inner.data_received(data)


def gated_plain_factory(
    factory: Callable[[], asyncio.Protocol], ceiling: ConnectionCeiling
) -> Callable[[], GatedPlain]:
    """The protocol factory for a plain listener whose connections ``ceiling`` bounds."""
    return lambda: GatedPlain(ceiling, factory())


def gated_tls_factory(
    loop: asyncio.AbstractEventLoop,
    tls_class: TlsProtocolClass,
    app_factory: Callable[[], asyncio.BaseProtocol],
    context: ssl.SSLContext,
    ceiling: ConnectionCeiling,
    handshake_timeout: float | None,
) -> Callable[[], GatedTLS]:
    """The protocol factory for ``loop.create_server(..., ssl=None)`` that serves TLS as
    ``create_server(app_factory, ssl=context)`` would, within ``ceiling``."""

    def make_tls(transport: asyncio.BaseTransport) -> Any:
        def close_if_failed(handshake: asyncio.Future[None]) -> None:
            # a failed handshake closes the connection, as the loop's own server does
            if not handshake.cancelled() and handshake.exception() is not None:
                transport.abort()  # type: ignore[attr-defined]

        waiter: asyncio.Future[None] = loop.create_future()
        waiter.add_done_callback(close_if_failed)
        return tls_class(
            loop, app_factory(), context, waiter, server_side=True, ssl_handshake_timeout=handshake_timeout
        )

    return lambda: GatedTLS(ceiling, make_tls)
