"""A minimal async Kubernetes API client (httpx): kubeconfig token or in-cluster. I/O only.

deployguard reads rollout history (ReplicaSets, ControllerRevisions) and records used
break-glass token ids (ConfigMaps, create-if-absent). That is a handful of REST calls,
not worth a full client library.
"""

from __future__ import annotations

import base64
import re
import ssl
from pathlib import Path
from typing import Any

import httpx
import yaml

from webhook import yaml_limits
from webhook.errors import DeployguardError

_IN_CLUSTER = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class KubeApiError(DeployguardError):
    """The Kubernetes API could not be reached or refused a call."""


# A namespace name is a DNS label (RFC 1123).
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def is_namespace_name(text: str) -> bool:
    return _NAMESPACE.fullmatch(text) is not None


def namespaced_path(prefix: str, namespace: str, *rest: str) -> str:
    """``{prefix}/namespaces/{namespace}[/{rest}]``, only for a valid namespace name.

    The namespace comes from the AdmissionReview: the API server sends real ones, but a
    body posted to the port by anyone else may say ``kube-system/secrets/x`` or carry a
    ``?``, and the GET would go where it points with deployguard's own credentials."""
    if not is_namespace_name(namespace):
        raise KubeApiError(f"{namespace[:80]!r} is not a namespace name; not asking the Kubernetes API about it")
    return "/".join((f"{prefix}/namespaces/{namespace}", *rest))


class AlreadyExists(KubeApiError):
    """A create found the object already there (HTTP 409)."""


class NotFound(KubeApiError):
    """A get found no such object (HTTP 404)."""


class KubeApi:
    """GET, LIST and CREATE against one API server with bearer-token auth."""

    def __init__(self, server: str, token: str, ca: ssl.SSLContext | bool, timeout: float = 2.0) -> None:
        self.server = server.rstrip("/")
        self._client = httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, verify=ca, timeout=timeout)

    @classmethod
    def from_kubeconfig(cls, path: Path, timeout: float = 2.0) -> KubeApi:
        """The current context of a token kubeconfig."""
        try:
            config = yaml_limits.safe_load(path.read_text())
            context_name = config["current-context"]
            context = next(c["context"] for c in config["contexts"] if c["name"] == context_name)
            cluster = next(c["cluster"] for c in config["clusters"] if c["name"] == context["cluster"])
            user = next(u["user"] for u in config["users"] if u["name"] == context["user"])
            token = user["token"]
        except (OSError, yaml.YAMLError, KeyError, StopIteration, TypeError) as exc:
            raise KubeApiError(f"cannot use kubeconfig {path} (needs a token user): {exc!r}") from None
        ctx = ssl.create_default_context()
        if "certificate-authority-data" in cluster:
            ctx.load_verify_locations(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
        elif "certificate-authority" in cluster:
            ctx.load_verify_locations(cafile=cluster["certificate-authority"])
        return cls(cluster["server"], token, ctx, timeout)

    @classmethod
    def in_cluster(cls, timeout: float = 2.0) -> KubeApi | None:
        """The pod's service account, or None outside a cluster."""
        token_file = _IN_CLUSTER / "token"
        if not token_file.exists():
            return None
        ctx = ssl.create_default_context(cafile=str(_IN_CLUSTER / "ca.crt"))
        return cls("https://kubernetes.default.svc", token_file.read_text().strip(), ctx, timeout)

    async def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = await self._client.request(method, f"{self.server}{path}", **kwargs)
        except httpx.HTTPError as exc:
            raise KubeApiError(f"Kubernetes API {self.server} unreachable: {type(exc).__name__}: {exc}") from None
        if response.status_code == 409:
            raise AlreadyExists(f"{method} {path}: already exists")
        if response.status_code == 404:
            raise NotFound(f"{method} {path}: not found")
        if response.status_code >= 400:
            raise KubeApiError(f"{method} {path}: HTTP {response.status_code}: {response.text[:200]}")
        body: dict[str, Any] = response.json()
        return body

    async def get(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        return await self._request("GET", path, params=params or {})

    async def create(self, path: str, obj: dict[str, Any]) -> dict[str, Any]:
        return await self._request("POST", path, json=obj)

    async def delete(self, path: str, *, resource_version: str = "") -> None:
        """Delete; with ``resource_version``, only the version read (another writer's change wins)."""
        body = {"preconditions": {"resourceVersion": resource_version}} if resource_version else None
        await self._request("DELETE", path, json=body)

    async def aclose(self) -> None:
        await self._client.aclose()


def make_kube_api(kubeconfig: Path | None, timeout: float) -> KubeApi | None:
    """From settings: the kubeconfig when given, else in-cluster, else None."""
    if kubeconfig is not None:
        return KubeApi.from_kubeconfig(kubeconfig, timeout)
    return KubeApi.in_cluster(timeout)
