"""Registry credentials from a workload's ``imagePullSecrets`` and its service account's.

The kubelet pulls with these secrets, so deployguard resolves digests and fetches
signatures with them too: a private image is then verified, not "unknown". Only the
secret NAMES come from the submitted object, and they are looked up in the object's
own namespace through the Kubernetes API (never a namespace, secret content or URL
written by the submitter). Secrets and service accounts are cached briefly: a
rollout asks many times within seconds, and a rotated secret is seen within the TTL.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from webhook.kube_api import KubeApi, KubeApiError, NotFound, is_namespace_name
from webhook.observe.io_counters import CacheCounter, upstream_error
from webhook.trust.registry import Credentials, credentials_from_auths

log = logging.getLogger("deployguard.pull_secrets")

# A Kubernetes object name (DNS subdomain); anything else never reaches a URL path.
_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
_MAX_SECRETS = 16  # pull secrets looked at per request
_CACHE = CacheCounter("pull_secret")


@dataclass(frozen=True)
class PullSecretRefs:
    """What a pod spec says about pull credentials: secret names and its service account."""

    namespace: str
    secrets: tuple[str, ...]
    service_account: str


def pull_secret_refs(namespace: str, spec: Mapping[str, Any]) -> PullSecretRefs:
    """The names a pod spec references (``imagePullSecrets``, ``serviceAccountName``). Pure."""
    names: list[str] = []
    for item in spec.get("imagePullSecrets") or ():
        name = item.get("name") if isinstance(item, Mapping) else None
        if isinstance(name, str) and name not in names:
            names.append(name)
    account = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    return PullSecretRefs(namespace, tuple(names), str(account))


def credentials_from_secret(secret: Mapping[str, Any]) -> dict[str, Credentials]:
    """Credentials per registry in a ``kubernetes.io/dockerconfigjson`` or ``dockercfg`` Secret."""
    data = secret.get("data")
    if not isinstance(data, Mapping):
        return {}
    kind = secret.get("type")
    key = ".dockerconfigjson" if kind == "kubernetes.io/dockerconfigjson" else ".dockercfg"
    if kind not in ("kubernetes.io/dockerconfigjson", "kubernetes.io/dockercfg") or not isinstance(data.get(key), str):
        return {}
    try:
        document = json.loads(base64.b64decode(data[key], validate=True))
    except (binascii.Error, ValueError):
        return {}
    if not isinstance(document, dict):
        return {}
    return credentials_from_auths(document.get("auths") if key == ".dockerconfigjson" else document)


class PullSecretCredentials:
    """Reads pull secrets through the Kubernetes API, with a short cache per object."""

    def __init__(self, kube: KubeApi, *, ttl_seconds: float = 30.0, clock: Any = time.monotonic) -> None:
        self.kube = kube
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._cache: dict[str, tuple[float, Any]] = {}
        self.reads = 0  # API calls made (for tests)

    async def _get(self, path: str) -> dict[str, Any] | None:
        """The object at ``path``, or None when it cannot be read (cached either way)."""
        entry = self._cache.get(path)
        if entry is not None and entry[0] > self._clock():
            _CACHE(True)
            cached: dict[str, Any] | None = entry[1]
            return cached
        _CACHE(False)
        self.reads += 1
        try:
            value: dict[str, Any] | None = await self.kube.get(path)
        except KubeApiError as exc:
            if not isinstance(exc, NotFound):  # a missing secret is the workload's business
                upstream_error("kubernetes")
            log.warning("cannot read %s for image pull credentials: %s", path, exc)
            value = None
        if len(self._cache) >= 4096:
            self._cache.clear()
        self._cache[path] = (self._clock() + self.ttl_seconds, value)
        return value

    async def credentials(self, refs: PullSecretRefs) -> dict[str, Credentials]:
        """Credentials per registry: the pod's own pull secrets first, then its service account's.

        A secret that is missing, unreadable or not a docker config is skipped, as the
        kubelet does; the registry then says it needs credentials.
        """
        if not is_namespace_name(refs.namespace):
            return {}
        names = [n for n in refs.secrets if _NAME.fullmatch(n)]
        if _NAME.fullmatch(refs.service_account):
            account = await self._get(f"/api/v1/namespaces/{refs.namespace}/serviceaccounts/{refs.service_account}")
            for item in (account or {}).get("imagePullSecrets") or ():
                name = item.get("name") if isinstance(item, Mapping) else None
                if isinstance(name, str) and _NAME.fullmatch(name) and name not in names:
                    names.append(name)
        found: dict[str, Credentials] = {}
        for name in names[:_MAX_SECRETS]:
            secret = await self._get(f"/api/v1/namespaces/{refs.namespace}/secrets/{name}")
            for registry, creds in credentials_from_secret(secret or {}).items():
                found.setdefault(registry, creds)
        return found
