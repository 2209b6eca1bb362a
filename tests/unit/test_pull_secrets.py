"""Pull-secret credentials: which names are read, from where, how secrets parse, and caching.

The Kubernetes API is faked at our own interface (``KubeApi.get``); the real API server
path is covered by tests/e2e/test_registry_pull_secrets.py.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from tests.counters import CounterDeltas
from webhook.config import RegistrySettings
from webhook.kube_api import KubeApi, KubeApiError, NotFound
from webhook.trust.pull_secrets import PullSecretCredentials, PullSecretRefs, credentials_from_secret, pull_secret_refs
from webhook.trust.registry import Credentials, RegistryClient


def dockerconfigjson(auths: dict[str, Any]) -> dict[str, Any]:
    raw = base64.b64encode(json.dumps({"auths": auths}).encode()).decode()
    return {"type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": raw}}


def basic(user: str, password: str) -> dict[str, str]:
    return {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}


class FakeKube:
    """Objects by API path; records every read. ``down``: every read fails as an unreachable API's would."""

    def __init__(self, objects: dict[str, dict[str, Any]]) -> None:
        self.objects = objects
        self.paths: list[str] = []
        self.down = False

    async def get(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        self.paths.append(path)
        if self.down:
            raise KubeApiError("Kubernetes API unreachable")
        if path not in self.objects:
            raise NotFound(f"GET {path}: not found")
        return self.objects[path]


def source(kube: FakeKube, clock: list[float] | None = None) -> PullSecretCredentials:
    now = clock if clock is not None else [0.0]
    fake: Any = kube  # stands in for KubeApi (same get signature)
    api: KubeApi = fake
    return PullSecretCredentials(api, ttl_seconds=30.0, clock=lambda: now[0])


def test_refs_come_from_the_pod_spec_names_only() -> None:
    spec = {"imagePullSecrets": [{"name": "a"}, {"name": "a"}, {"bad": 1}, "x"], "serviceAccountName": "builder"}
    assert pull_secret_refs("shop", spec) == PullSecretRefs("shop", ("a",), "builder")
    assert pull_secret_refs("shop", {}).service_account == "default"


def test_secret_formats() -> None:
    assert credentials_from_secret(dockerconfigjson({"https://reg.example:5000/v1/": basic("u", "p")})) == {
        "reg.example:5000": Credentials("u", "p")
    }
    dockercfg = base64.b64encode(json.dumps({"reg.example": {"username": "u", "password": "p"}}).encode()).decode()
    assert credentials_from_secret({"type": "kubernetes.io/dockercfg", "data": {".dockercfg": dockercfg}}) == {
        "reg.example": Credentials("u", "p")
    }
    opaque = {"type": "Opaque", "data": {".dockerconfigjson": dockerconfigjson({})["data"][".dockerconfigjson"]}}
    assert credentials_from_secret(opaque) == {}
    broken = {"type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": "not base64!"}}
    assert credentials_from_secret(broken) == {}


async def test_pod_secrets_come_before_the_service_account_ones() -> None:
    kube = FakeKube(
        {
            "/api/v1/namespaces/shop/serviceaccounts/builder": {"imagePullSecrets": [{"name": "sa-secret"}]},
            "/api/v1/namespaces/shop/secrets/pod-secret": dockerconfigjson({"reg.example": basic("pod", "1")}),
            "/api/v1/namespaces/shop/secrets/sa-secret": dockerconfigjson(
                {"reg.example": basic("sa", "2"), "other.example": basic("sa", "3")}
            ),
        }
    )
    found = await source(kube).credentials(PullSecretRefs("shop", ("pod-secret", "missing"), "builder"))
    assert found == {"reg.example": Credentials("pod", "1"), "other.example": Credentials("sa", "3")}
    # A missing secret is skipped, as the kubelet does; everything was read in the object's namespace.
    assert all(p.startswith("/api/v1/namespaces/shop/") for p in kube.paths)


async def test_names_that_are_not_kubernetes_names_never_reach_a_url() -> None:
    kube = FakeKube({})
    refs = PullSecretRefs("shop", ("../../../api/v1/namespaces/kube-system/secrets/x", "UPPER"), "../admin")
    assert await source(kube).credentials(refs) == {}
    assert kube.paths == []
    assert await source(kube).credentials(PullSecretRefs("../kube-system", ("ok",), "default")) == {}
    assert kube.paths == []


async def test_secrets_are_cached_briefly() -> None:
    kube = FakeKube({"/api/v1/namespaces/shop/secrets/s": dockerconfigjson({"reg.example": basic("u", "p")})})
    clock = [0.0]
    creds = source(kube, clock)
    refs = PullSecretRefs("shop", ("s",), "default")
    deltas = CounterDeltas()
    for _ in range(3):
        assert await creds.credentials(refs) == {"reg.example": Credentials("u", "p")}
    assert creds.reads == 2  # the service account (absent) and the secret, once each
    assert deltas("deployguard_cache_requests_total", cache="pull_secret", result="miss") == 2
    assert deltas("deployguard_cache_requests_total", cache="pull_secret", result="hit") == 4
    assert deltas("deployguard_upstream_errors_total", upstream="kubernetes") == 0  # absent is not an error
    clock[0] = 31.0
    kube.objects.clear()  # the secret was deleted; seen after the TTL
    assert await creds.credentials(refs) == {}
    assert creds.reads == 4


async def test_an_unreachable_api_is_an_upstream_error_and_no_credentials() -> None:
    kube = FakeKube({})
    kube.down = True
    deltas = CounterDeltas()
    assert await source(kube).credentials(PullSecretRefs("shop", ("s",), "default")) == {}
    assert deltas("deployguard_upstream_errors_total", upstream="kubernetes") == 2  # service account, secret


async def test_request_credentials_change_the_cache_identity_not_the_shared_client() -> None:
    client = RegistryClient(RegistrySettings(), credentials={"a.example": Credentials("cfg", "x")})
    try:
        view = client.with_credentials({"b.example": Credentials("pull", "y")})
        assert client.identity("b.example") == "" and view.identity("b.example") != ""
        assert view.identity("a.example") == client.identity("a.example") != ""
        assert client.with_credentials({}) is client
        await view.aclose()  # a view never closes the shared pool
        assert not client._http.is_closed
    finally:
        await client.aclose()
