"""An async OCI distribution client (httpx): manifests, blobs, referrers. All registry I/O.

Image references are written by whoever submits a workload, so every call first
checks where it is going: an optional allowlist of registries, and no loopback,
private, link-local or otherwise internal address (after DNS resolution, and again
for every redirect) unless the registry is explicitly configured as private.
Responses are read with a size cap; calls have a timeout and a bounded retry.
Errors become ``RegistryError`` with a message for people; httpx never leaks out.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import json
import logging
import re
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlencode, urljoin, urlsplit

import httpx

from webhook.config import RegistrySettings
from webhook.errors import DeployguardError
from webhook.observe.io_counters import RegistryRequests
from webhook.trust.registry_transport import REFUSED, Resolver, host_port_forms, pinned_transport, system_resolve
from webhook.trust.registry_transport import is_internal_address as _internal

log = logging.getLogger("deployguard.registry")

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MANIFEST_TYPES = (OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST)
_ACCEPT = ", ".join(MANIFEST_TYPES)
DOCKER_HUB_API = "registry-1.docker.io"  # where "docker.io" images are served from
_MAX_REDIRECTS = 3
_NO_CREDENTIALS = "none in imagePullSecrets, the service account or images.registry.docker_config"
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})

Operation = Literal["resolve", "signature", "token", "manifest", "blob", "referrers"]
"""The ``operation`` label of registry round trips: what the caller wanted (a fixed few)."""


def round_trip_ok(status: int) -> bool:
    """Whether an HTTP answer counts as a working registry: anything but 429 and 5xx.

    401 (a challenge), 404 (an unsigned image's ``.sig`` tag) and other 4xx are answers
    the client acts on; rate limiting and server errors are the registry failing.
    """
    return status != 429 and status < 500


class RegistryError(DeployguardError):
    """A registry call failed; the message says which registry and why."""


class RefusedAddress(RegistryError):
    """The registry is not allowed, or resolves to an address we refuse to contact."""


class NotFound(RegistryError):
    """The registry answered 404 (no such manifest, tag or blob)."""


@dataclass(frozen=True)
class Manifest:
    """A manifest as the registry returned it: its digest, media type and parsed JSON."""

    digest: str
    media_type: str
    body: bytes
    document: dict[str, Any]


@dataclass(frozen=True)
class Credentials:
    """Username and password (or identity token) for one registry."""

    username: str
    password: str

    @property
    def fingerprint(self) -> str:
        """A short hash naming these credentials in cache keys (never the secret itself)."""
        return hashlib.sha256(f"{self.username}\0{self.password}".encode()).hexdigest()[:16]


def load_docker_config(path: Path | None) -> dict[str, Credentials]:
    """Credentials per registry host from a docker ``config.json`` (``auths`` only)."""
    if path is None:
        return {}
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RegistryError(f"cannot read docker config {path}: {exc}") from None
    return credentials_from_auths(raw.get("auths") if isinstance(raw, dict) else None)


def credentials_from_auths(auths: Any) -> dict[str, Credentials]:
    """The ``auths`` mapping of a docker config / ``.dockerconfigjson`` pull secret."""
    out: dict[str, Credentials] = {}
    if not isinstance(auths, dict):
        return out
    for host, entry in auths.items():
        if not isinstance(entry, dict):
            continue
        host = re.sub(r"^https?://", "", str(host)).split("/")[0]
        if host in ("index.docker.io", "registry-1.docker.io"):
            host = "docker.io"
        if entry.get("auth"):
            try:
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                continue
            out[host] = Credentials(user, password)
        elif entry.get("username"):
            out[host] = Credentials(str(entry["username"]), str(entry.get("password", "")))
    return out


def _host_port(registry: str) -> tuple[str, int | None]:
    if registry.startswith("["):
        host, _, rest = registry[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else None
    host, _, port = registry.partition(":")
    return host, int(port) if port else None


class RegistryClient:
    """One client per process; share it (connection pool, tokens)."""

    def __init__(
        self,
        settings: RegistrySettings,
        *,
        credentials: dict[str, Credentials] | None = None,
        resolve: Resolver = system_resolve,
    ) -> None:
        self.settings = settings
        self._resolve = resolve
        self._credentials = dict(credentials if credentials is not None else load_docker_config(settings.docker_config))
        configured = (*settings.allowed_registries, *settings.private_registries, *settings.plain_http_registries)
        self._round_trips = RegistryRequests((*configured, *self._credentials))  # shared by credential views
        verify: ssl.SSLContext | bool = True
        if settings.ca_bundle is not None:
            context = ssl.create_default_context()
            context.load_verify_locations(cafile=str(settings.ca_bundle))
            verify = context
        # Connections go to the address checked when they are made (no DNS rebinding past the guard).
        transport = pinned_transport(verify, may_be_internal=self._may_be_internal, resolve=resolve)
        self._http = httpx.AsyncClient(
            transport=transport, follow_redirects=False, timeout=settings.timeout_seconds, trust_env=False
        )
        # Tokens per (registry, scope, credentials fingerprint): a token fetched with one
        # namespace's pull secret must never serve a request that has no such secret.
        self._tokens: dict[tuple[str, str, str], str] = {}
        self._shared = False
        if settings.unsafe_allow_private_addresses:
            log.warning("images.registry.unsafe_allow_private_addresses is on: registries may reach internal addresses")

    async def aclose(self) -> None:
        if not self._shared:
            await self._http.aclose()

    def with_credentials(self, credentials: dict[str, Credentials]) -> RegistryClient:
        """A view for one request: ``credentials`` (from pull secrets) first, then the docker
        config's; shares the connection pool and the token cache (keyed by credentials)."""
        if not credentials:
            return self
        view = copy.copy(self)
        view._credentials = {**self._credentials, **credentials}
        view._shared = True
        return view

    def identity(self, registry: str) -> str:
        """Which credentials this client uses for ``registry`` ('' anonymous): part of cache keys."""
        creds = self._credentials.get(registry)
        return creds.fingerprint if creds is not None else ""

    # ---- the guard -------------------------------------------------------------------

    def _may_be_internal(self, host: str, port: int) -> bool:
        """Whether a connection to host:port may land on an internal address (configured private)."""
        if self.settings.unsafe_allow_private_addresses:
            return True
        return bool(host_port_forms(host, port) & set(self.settings.private_registries))

    def _scheme(self, registry: str) -> str:
        return "http" if registry in self.settings.plain_http_registries else "https"

    async def check_destination(self, registry: str, url_host: str | None = None) -> None:
        """Refuse registries outside the allowlist and internal addresses (after DNS)."""
        allowed = self.settings.allowed_registries
        if allowed and registry not in allowed:
            raise RefusedAddress(f"registry {registry} is not in images.registry.allowed_registries")
        host, port = _host_port(url_host or registry)
        if self.settings.unsafe_allow_private_addresses:
            log.warning("unsafe_allow_private_addresses: not checking the address of %s", host)
            return
        if (url_host or registry) in self.settings.private_registries:
            return
        try:
            addresses = await self._resolve(host, port or 443)
        except OSError as exc:
            raise RegistryError(f"registry {registry}: cannot resolve {host}: {exc}") from None
        for address in addresses:
            if _internal(address):
                raise RefusedAddress(
                    f"registry {registry} resolves to the internal address {address}; "
                    "list it in images.registry.private_registries to allow it"
                )

    # ---- HTTP with auth, retries, redirects and size caps ---------------------------

    async def _request(
        self, method: str, registry: str, path: str, *, accept: str = "", limit: int, scope: str, operation: Operation
    ) -> httpx.Response:
        host = DOCKER_HUB_API if registry == "docker.io" else registry
        url = f"{self._scheme(registry)}://{host}{path}"
        attempts = 1 + max(self.settings.retries, 0)
        last: Exception | None = None
        for attempt in range(attempts):
            try:
                return await self._send(
                    method, registry, url, accept=accept, limit=limit, scope=scope, operation=operation
                )
            except RegistryError as exc:
                if not getattr(exc, "retry", False) or attempt == attempts - 1:
                    raise
                last = exc
            await asyncio.sleep(0.05 * (2**attempt))
        raise RegistryError(str(last))  # pragma: no cover - the loop returns or raises

    async def _send(
        self, method: str, registry: str, url: str, *, accept: str, limit: int, scope: str, operation: Operation
    ) -> httpx.Response:
        authorized = False
        for _ in range(_MAX_REDIRECTS + 2):
            await self.check_destination(registry, urlsplit(url).netloc)
            headers = {"Accept": accept} if accept else {}
            auth = self._authorization(registry, scope)
            if auth:
                headers["Authorization"] = auth
            response = await self._fetch(method, registry, url, headers, limit, operation)
            if response.status_code == 401 and not authorized:
                authorized = True
                await self._authenticate(registry, scope, response.headers.get("www-authenticate", ""))
                continue
            if response.status_code in (301, 302, 303, 307, 308) and "location" in response.headers:
                url = urljoin(url, response.headers["location"])
                if urlsplit(url).scheme not in ("http", "https"):
                    raise RegistryError(f"registry {registry} redirected to an unsupported URL")
                continue
            if response.status_code == 401:
                who = "rejected the credentials" if registry in self._credentials else "requires credentials"
                detail = "" if registry in self._credentials else f"; {_NO_CREDENTIALS}"
                raise RegistryError(f"registry {registry} {who} (HTTP 401 for {urlsplit(url).path}{detail})")
            if response.status_code == 404:
                raise NotFound(f"registry {registry}: {urlsplit(url).path} not found (404)")
            if response.status_code in _RETRY_STATUS:
                error = RegistryError(f"registry {registry} answered HTTP {response.status_code}")
                error.retry = True  # type: ignore[attr-defined]
                raise error
            if response.status_code >= 400:
                raise RegistryError(
                    f"registry {registry} answered HTTP {response.status_code} for {urlsplit(url).path}"
                )
            return response
        raise RegistryError(f"registry {registry}: too many redirects or authentication rounds")

    async def _fetch(
        self, method: str, registry: str, url: str, headers: dict[str, str], limit: int, operation: Operation
    ) -> httpx.Response:
        """One round trip, counted (a connection refused by the guard was never sent: not counted)."""
        try:
            response = await self._exchange(method, registry, url, headers, limit)
        except RefusedAddress:
            raise
        except RegistryError:
            self._round_trips(registry, operation, ok=False)
            raise
        self._round_trips(registry, operation, ok=round_trip_ok(response.status_code))
        return response

    async def _exchange(
        self, method: str, registry: str, url: str, headers: dict[str, str], limit: int
    ) -> httpx.Response:
        try:
            async with self._http.stream(method, url, headers=headers) as response:
                declared = response.headers.get("content-length")
                if method != "HEAD" and declared and declared.isdigit() and int(declared) > limit:
                    raise RegistryError(
                        f"registry {registry}: response of {declared} bytes exceeds the {limit}-byte limit"
                    )
                body = bytearray()
                if method != "HEAD":
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) > limit:
                            raise RegistryError(f"registry {registry}: response exceeds the {limit}-byte limit")
                return httpx.Response(
                    response.status_code, headers=response.headers, content=bytes(body), request=response.request
                )
        except httpx.TimeoutException:
            error = RegistryError(f"registry {registry} did not answer within {self.settings.timeout_seconds:g} s")
            error.retry = True  # type: ignore[attr-defined]
            raise error from None
        except httpx.HTTPError as exc:
            if REFUSED in str(exc):
                raise RefusedAddress(f"registry {registry}: {exc}") from None
            error = RegistryError(f"registry {registry} is unreachable: {exc or type(exc).__name__}")
            error.retry = True  # type: ignore[attr-defined]
            raise error from None

    def _authorization(self, registry: str, scope: str) -> str:
        token = self._tokens.get((registry, scope, self.identity(registry)))
        if token:
            return token
        return ""

    async def _authenticate(self, registry: str, scope: str, challenge: str) -> None:
        """Answer a ``WWW-Authenticate`` challenge: Basic with credentials, or fetch a Bearer token."""
        scheme, _, params_text = challenge.partition(" ")
        params = dict(re.findall(r'(\w+)="([^"]*)"', params_text))
        creds = self._credentials.get(registry)
        if scheme.lower() == "basic":
            if creds is None:
                raise RegistryError(f"registry {registry} requires credentials ({_NO_CREDENTIALS})")
            raw = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
            self._tokens[(registry, scope, creds.fingerprint)] = f"Basic {raw}"
            return
        if scheme.lower() != "bearer" or "realm" not in params:
            raise RegistryError(f"registry {registry} sent an unsupported authentication challenge")
        query = {"service": params.get("service", ""), "scope": params.get("scope", scope)}
        realm = f"{params['realm']}?{urlencode({k: v for k, v in query.items() if v})}"
        realm_host = urlsplit(realm).netloc
        await self.check_destination(registry, realm_host)
        headers = {}
        if creds is not None:
            raw = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
            headers["Authorization"] = f"Basic {raw}"
        response = await self._fetch("GET", registry, realm, headers, 64 * 1024, "token")
        if response.status_code == 401:
            reason = "rejected the credentials" if creds is not None else f"requires credentials ({_NO_CREDENTIALS})"
            raise RegistryError(f"registry {registry}: token service {reason}")
        if response.status_code != 200:
            raise RegistryError(f"registry {registry}: token service answered HTTP {response.status_code}")
        try:
            data = json.loads(response.content)
            token = data.get("token") or data.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"registry {registry}: token service returned no token")
        self._tokens[(registry, scope, self.identity(registry))] = f"Bearer {token}"

    # ---- the distribution API ---------------------------------------------------------

    async def resolve(self, registry: str, repository: str, reference: str) -> str:
        """The digest a tag (or digest) names now, by HEAD (GET when HEAD gives no digest)."""
        scope = f"repository:{repository}:pull"
        response = await self._request(
            "HEAD",
            registry,
            f"/v2/{repository}/manifests/{reference}",
            accept=_ACCEPT,
            limit=0,
            scope=scope,
            operation="resolve",
        )
        digest = str(response.headers.get("docker-content-digest", ""))
        if re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
            return digest
        return (await self.manifest(registry, repository, reference, operation="resolve")).digest

    async def manifest(
        self, registry: str, repository: str, reference: str, *, operation: Operation = "manifest"
    ) -> Manifest:
        """GET a manifest; checks media type, JSON shape and (for digest references) the digest."""
        scope = f"repository:{repository}:pull"
        response = await self._request(
            "GET",
            registry,
            f"/v2/{repository}/manifests/{reference}",
            accept=_ACCEPT,
            limit=self.settings.max_manifest_bytes,
            scope=scope,
            operation=operation,
        )
        body = response.content
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if reference.startswith("sha256:") and digest != reference:
            raise RegistryError(f"registry {registry}: manifest {reference} has content digest {digest}")
        try:
            document = json.loads(body)
        except ValueError:
            raise RegistryError(f"registry {registry}: manifest {repository}:{reference} is not JSON") from None
        if not isinstance(document, dict):
            raise RegistryError(f"registry {registry}: manifest {repository}:{reference} is not a JSON object")
        media_type = str(document.get("mediaType") or response.headers.get("content-type", "")).split(";")[0]
        if media_type not in MANIFEST_TYPES:
            raise RegistryError(
                f"registry {registry}: manifest {repository}:{reference} has unsupported media type {media_type!r}"
            )
        return Manifest(digest=digest, media_type=media_type, body=body, document=document)

    async def blob(self, registry: str, repository: str, digest: str, *, operation: Operation = "blob") -> bytes:
        """GET a blob (following redirects through the guard) and check its digest."""
        if not re.fullmatch(r"sha256:[0-9a-f]{64}", digest):
            raise RegistryError(f"registry {registry}: blob digest {digest!r} is not a sha256 digest")
        response = await self._request(
            "GET",
            registry,
            f"/v2/{repository}/blobs/{digest}",
            limit=self.settings.max_blob_bytes,
            scope=f"repository:{repository}:pull",
            operation=operation,
        )
        if "sha256:" + hashlib.sha256(response.content).hexdigest() != digest:
            raise RegistryError(f"registry {registry}: blob {digest} does not match its digest")
        return response.content

    async def referrers(
        self,
        registry: str,
        repository: str,
        digest: str,
        artifact_type: str = "",
        *,
        operation: Operation = "referrers",
    ) -> list[dict[str, Any]]:
        """Descriptors referring to ``digest``: the referrers API, else the ``sha256-<hex>`` tag index."""
        query = f"?{urlencode({'artifactType': artifact_type})}" if artifact_type else ""
        scope = f"repository:{repository}:pull"
        try:
            response = await self._request(
                "GET",
                registry,
                f"/v2/{repository}/referrers/{digest}{query}",
                accept=OCI_INDEX,
                limit=self.settings.max_manifest_bytes,
                scope=scope,
                operation=operation,
            )
            index = json.loads(response.content)
        except NotFound:
            try:
                tag = digest.replace(":", "-")
                index = (await self.manifest(registry, repository, tag, operation=operation)).document
            except NotFound:
                return []
        except ValueError:
            raise RegistryError(f"registry {registry}: referrers of {digest} are not JSON") from None
        manifests = index.get("manifests") if isinstance(index, dict) else None
        if not isinstance(manifests, list):
            return []
        found = [m for m in manifests if isinstance(m, dict)]
        if artifact_type:
            found = [m for m in found if m.get("artifactType") == artifact_type]
        return found
