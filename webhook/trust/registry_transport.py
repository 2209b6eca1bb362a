"""The registry client's connections: resolve once, check the address, connect to it.

``RegistryClient.check_destination`` resolves a registry's name and refuses internal
addresses, but httpx would resolve the name again when it connects, so a DNS server
that answers a public address first and ``127.0.0.1`` next (DNS rebinding) would get
past the check. Here the connection itself is made to an address that was checked in
the same step: the network backend under httpx resolves, refuses internal addresses
(unless the registry may be internal), and opens the TCP connection to that IP. TLS
still verifies the certificate for the registry's name (httpcore passes the URL's host
as SNI and for hostname checks) and the Host header is unchanged.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import typing
from collections.abc import Awaitable, Callable, Iterable

import httpcore
import httpx

Resolver = Callable[[str, int], Awaitable[list[str]]]
REFUSED = "refused to connect"  # marks our refusal inside httpx's ConnectError


def is_internal_address(address: str) -> bool:
    """Loopback, private, link-local, CGNAT, multicast, reserved or unspecified."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return bool(
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or (isinstance(ip, ipaddress.IPv4Address) and ip in ipaddress.ip_network("100.64.0.0/10"))
    )


async def system_resolve(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for ``host`` (TCP)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def host_port_forms(host: str, port: int) -> set[str]:
    """The ways a registry at host:port may be written in the settings (IPv6 in brackets)."""
    bracketed = f"[{host}]" if ":" in host else host
    return {host, bracketed, f"{bracketed}:{port}"}


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """An httpcore network backend that connects only to addresses it has just checked."""

    def __init__(
        self, inner: httpcore.AsyncNetworkBackend, *, may_be_internal: Callable[[str, int], bool], resolve: Resolver
    ) -> None:
        self._inner, self._may_be_internal, self._resolve = inner, may_be_internal, resolve

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await self._resolve(host, port)
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from None
        if not addresses:
            raise httpcore.ConnectError(f"{host} resolves to no address")
        if not self._may_be_internal(host, port):
            internal = [a for a in addresses if is_internal_address(a)]
            if internal:
                raise httpcore.ConnectError(
                    f"{REFUSED} {host}: it resolves to the internal address {internal[0]} at connection time"
                )
        return await self._inner.connect_tcp(
            addresses[0], port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError(f"{REFUSED} a unix socket")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def pinned_transport(
    verify: ssl.SSLContext | bool, *, may_be_internal: Callable[[str, int], bool], resolve: Resolver
) -> httpx.AsyncHTTPTransport:
    """httpx's own transport, with its connection pool's network backend guarded.

    httpx does not take a network backend as an argument, so it is set on the pool it
    built; ``tests/unit/test_registry_transport.py`` fails if a new httpx moves it.
    """
    transport = httpx.AsyncHTTPTransport(verify=verify)
    pool = typing.cast(typing.Any, transport._pool)
    pool._network_backend = GuardedBackend(pool._network_backend, may_be_internal=may_be_internal, resolve=resolve)
    return transport
