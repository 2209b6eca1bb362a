"""SSRF through image references, against real HTTP servers on loopback.

A "registry" that redirects to an internal address, a name that resolves to a public
address when checked and to loopback when connected (DNS rebinding), and responses
larger than the caps: the internal servers must never see a request.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from webhook.config import RegistrySettings
from webhook.trust.registry import RefusedAddress, RegistryClient, RegistryError

pytestmark = pytest.mark.integration


class Recorder:
    """A real HTTP server on loopback answering every request with one canned response."""

    def __init__(self, status: int = 200, headers: dict[str, str] | None = None, body: bytes = b"") -> None:
        self.requests: list[tuple[str, str]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                recorder.requests.append((self.path, self.headers.get("Host", "")))
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value.replace("{self}", recorder.host))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def internal() -> Iterator[Recorder]:
    """What an attacker wants to reach: something on the cluster network (here: loopback)."""
    server = Recorder(body=b'{"secret": "cloud credentials"}')
    yield server
    server.close()


def _settings(*private: str, plain: tuple[str, ...] = ()) -> RegistrySettings:
    return RegistrySettings(private_registries=private, plain_http_registries=plain or private, retries=0,
                            timeout_seconds=3)


@pytest.mark.parametrize("target", ["http://{internal}/v2/", "http://169.254.169.254/latest/meta-data/",
                                    "http://localhost:{port}/v2/", "http://[::1]:{port}/v2/"])
async def test_redirects_to_internal_addresses_are_not_followed(internal: Recorder, target: str) -> None:
    port = internal.host.rsplit(":", 1)[1]
    location = target.format(internal=internal.host, port=port)
    origin = Recorder(status=302, headers={"Location": location})
    client = RegistryClient(_settings(origin.host))
    try:
        with pytest.raises(RefusedAddress, match="internal address"):
            await client.resolve(origin.host, "app", "1.0")
        assert len(origin.requests) == 1  # the registry was asked (it is configured private) ...
        assert internal.requests == []  # ... but where it pointed was never contacted
    finally:
        await client.aclose()
        origin.close()


async def test_a_redirect_between_paths_of_an_allowed_registry_is_followed() -> None:
    """The control: the guard refuses internal targets, not redirects as such."""
    digest = "sha256:" + "a" * 64
    target = Recorder(headers={"Docker-Content-Digest": digest})
    origin = Recorder(status=307, headers={"Location": f"http://{target.host}/v2/app/manifests/1.0"})
    client = RegistryClient(_settings(origin.host, target.host))
    try:
        assert await client.resolve(origin.host, "app", "1.0") == digest
        assert [path for path, _ in target.requests] == ["/v2/app/manifests/1.0"]
    finally:
        await client.aclose()
        origin.close()
        target.close()


async def test_dns_rebinding_after_the_check_is_refused_at_connection_time(internal: Recorder) -> None:
    """The name resolves to a public address when checked, to loopback when connected."""
    answers = iter([["93.184.216.34"], ["127.0.0.1"], ["127.0.0.1"]])

    async def rebinding(host: str, port: int) -> list[str]:
        assert host == "registry.rebind.test"
        return next(answers)

    port = int(internal.host.rsplit(":", 1)[1])
    registry = f"registry.rebind.test:{port}"
    client = RegistryClient(_settings(plain=(registry,)), resolve=rebinding)
    try:
        with pytest.raises(RefusedAddress, match=r"internal address 127\.0\.0\.1 at connection time"):
            await client.resolve(registry, "app", "1.0")
        assert internal.requests == []
    finally:
        await client.aclose()


async def test_connections_go_to_the_checked_address_with_the_registry_name_as_host(internal: Recorder) -> None:
    """Pinning: the TCP connection uses the resolved IP; the request still names the registry."""
    digest = "sha256:" + "b" * 64
    server = Recorder(headers={"Docker-Content-Digest": digest})
    port = int(server.host.rsplit(":", 1)[1])
    registry = f"registry.pinned.test:{port}"

    async def resolve(host: str, _port: int) -> list[str]:
        return ["127.0.0.1"] if host == "registry.pinned.test" else []

    client = RegistryClient(_settings(registry), resolve=resolve)
    try:
        assert await client.resolve(registry, "app", "1.0") == digest
        assert server.requests == [("/v2/app/manifests/1.0", registry)]
    finally:
        await client.aclose()
        server.close()


async def test_responses_larger_than_the_caps_are_refused() -> None:
    big = Recorder(headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"}, body=b"{" + b" " * 70_000)
    client = RegistryClient(RegistrySettings(private_registries=(big.host,), plain_http_registries=(big.host,),
                                             max_manifest_bytes=64 * 1024, retries=0))
    try:
        with pytest.raises(RegistryError, match="exceeds the 65536-byte limit"):
            await client.manifest(big.host, "app", "1.0")
    finally:
        await client.aclose()
        big.close()


class Listener:
    """A TCP listener on loopback that records every connection and closes it at once."""

    def __init__(self) -> None:
        self.connections: list[tuple[str, int]] = []
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.05)
        self.host = f"127.0.0.1:{self._sock.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = self._sock.accept()
            except TimeoutError:
                continue
            self.connections.append(peer)
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._sock.close()


PROXY_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy", "all_proxy")


@pytest.fixture
def env_proxy(monkeypatch: pytest.MonkeyPatch) -> Iterator[Listener]:
    """Every proxy variable points at a listener; nothing is exempt from it (no NO_PROXY)."""
    proxy = Listener()
    for name in PROXY_VARIABLES:
        monkeypatch.setenv(name, f"http://{proxy.host}")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    yield proxy
    proxy.close()


async def test_environment_proxies_are_not_used_and_the_guard_still_applies(
    env_proxy: Listener, internal: Recorder
) -> None:
    """A proxy from the environment would connect on deployguard's behalf, past the address
    checks (it resolves and connects itself); the registry client must not use one."""
    digest = "sha256:" + "c" * 64
    registry = Recorder(headers={"Docker-Content-Digest": digest})
    tls_registry = Listener()  # https: the TLS handshake goes to it directly (and fails: it closes)
    port = int(internal.host.rsplit(":", 1)[1])
    sneaky = f"registry.sneaky.test:{port}"  # allowed, not private, resolves to loopback

    async def resolve(host: str, _port: int) -> list[str]:
        return ["127.0.0.1"]

    try:
        # The control: a plain httpx client in this environment does go through the proxy.
        async with httpx.AsyncClient(timeout=3) as plain:
            with pytest.raises(httpx.HTTPError):
                await plain.get(f"http://{registry.host}/v2/")
        assert len(env_proxy.connections) == 1 and registry.requests == []
        env_proxy.connections.clear()

        settings = RegistrySettings(
            allowed_registries=(registry.host, tls_registry.host, sneaky),
            private_registries=(registry.host, tls_registry.host),
            plain_http_registries=(registry.host, sneaky),
            retries=0,
            timeout_seconds=3,
        )
        client = RegistryClient(settings, resolve=resolve)
        try:
            assert await client.resolve(registry.host, "app", "1.0") == digest
            assert registry.requests == [("/v2/app/manifests/1.0", registry.host)]
            with pytest.raises(RegistryError, match="unreachable"):
                await client.resolve(tls_registry.host, "app", "1.0")
            assert len(tls_registry.connections) == 1  # straight to the registry, no CONNECT via the proxy
            with pytest.raises(RefusedAddress, match=r"internal address 127\.0\.0\.1"):
                await client.resolve(sneaky, "app", "1.0")
            assert internal.requests == []
        finally:
            await client.aclose()
        assert env_proxy.connections == []
    finally:
        registry.close()
        tls_registry.close()
