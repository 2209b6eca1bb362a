"""The OCI referrers API path (``GET /v2/<name>/referrers/<digest>``) of the registry client.

No registry we can run here answers it out of the box: go-containerregistry's
``cmd/registry`` (v0.20.6/v0.20.7) does not turn on ``registry.WithReferrersSupport``
(404 METHOD_UNKNOWN), and Debian's docker-registry (distribution 2.8) predates OCI 1.1
(404). So a tiny real HTTP server on loopback (stdlib, in-process) serves an image index
for referrers, the bundle manifest and its blob; the registry is explicitly allowed as
a private, plain-HTTP one. The tag-schema fallback is covered against real registries in
tests/integration/test_image_trust.py.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from webhook.config import RegistrySettings
from webhook.trust.registry import OCI_INDEX, OCI_MANIFEST, RegistryClient
from webhook.trust.signatures import BUNDLE_ARTIFACT_TYPES, referrer_bundles

SUBJECT = "sha256:" + "a" * 64
BUNDLE = b'{"mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json"}'


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class ReferrersRegistry:
    """Serves referrers of SUBJECT: a Sigstore bundle artifact and an SBOM; records every path."""

    def __init__(self, *, referrers_api: bool = True) -> None:
        self.paths: list[str] = []
        self.referrers_api = referrers_api
        bundle_manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "artifactType": BUNDLE_ARTIFACT_TYPES[0],
                "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": digest_of(b"{}"), "size": 2},
                "layers": [{"mediaType": BUNDLE_ARTIFACT_TYPES[0], "digest": digest_of(BUNDLE), "size": len(BUNDLE)}],
                "subject": {"mediaType": OCI_MANIFEST, "digest": SUBJECT, "size": 10},
            }
        ).encode()
        index = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_INDEX,
                "manifests": [
                    {"mediaType": OCI_MANIFEST, "digest": digest_of(bundle_manifest), "size": len(bundle_manifest),
                     "artifactType": BUNDLE_ARTIFACT_TYPES[0]},
                    {"mediaType": OCI_MANIFEST, "digest": "sha256:" + "b" * 64, "size": 5,
                     "artifactType": "application/spdx+json"},
                ],
            }
        ).encode()  # fmt: skip
        routes = {
            f"/v2/shop/app/manifests/{digest_of(bundle_manifest)}": (OCI_MANIFEST, bundle_manifest),
            f"/v2/shop/app/blobs/{digest_of(BUNDLE)}": ("application/octet-stream", BUNDLE),
        }
        if referrers_api:
            routes[f"/v2/shop/app/referrers/{SUBJECT}"] = (OCI_INDEX, index)
        else:  # the OCI fallback: the index at tag sha256-<hex>
            routes[f"/v2/shop/app/manifests/{SUBJECT.replace(':', '-')}"] = (OCI_INDEX, index)
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.paths.append(self.path)
                found = routes.get(self.path.split("?")[0])
                if found is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", found[0])
                self.send_header("Content-Length", str(len(found[1])))
                self.end_headers()
                self.wfile.write(found[1])

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def client(self) -> RegistryClient:
        # Loopback: allowed explicitly, as every test with a local registry must.
        settings = RegistrySettings(private_registries=(self.host,), plain_http_registries=(self.host,))
        return RegistryClient(settings, credentials={})

    def stop(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture(params=[True, False], ids=["referrers-api", "tag-fallback"])
def server(request: pytest.FixtureRequest) -> Iterator[ReferrersRegistry]:
    srv = ReferrersRegistry(referrers_api=request.param)
    yield srv
    srv.stop()


async def test_referrers_are_listed_and_filtered_by_artifact_type(server: ReferrersRegistry) -> None:
    client = server.client()
    try:
        everything = await client.referrers(server.host, "shop/app", SUBJECT)
        bundles = await client.referrers(server.host, "shop/app", SUBJECT, BUNDLE_ARTIFACT_TYPES[0])
    finally:
        await client.aclose()
    assert [d["artifactType"] for d in everything] == [BUNDLE_ARTIFACT_TYPES[0], "application/spdx+json"]
    assert [d["artifactType"] for d in bundles] == [BUNDLE_ARTIFACT_TYPES[0]]
    asked_api = any("/referrers/" in p for p in server.paths)
    assert asked_api  # the referrers API is always asked first
    assert f"/v2/shop/app/referrers/{SUBJECT}?artifactType=application%2Fvnd.dev.sigstore.bundle.v0.3%2Bjson" in (
        server.paths
    )


async def test_bundle_is_fetched_through_the_referrers_api(server: ReferrersRegistry) -> None:
    client = server.client()
    try:
        assert await referrer_bundles(client, server.host, "shop/app", SUBJECT) == [BUNDLE]
    finally:
        await client.aclose()
    used_fallback = f"/v2/shop/app/manifests/{SUBJECT.replace(':', '-')}" in server.paths
    assert used_fallback is not server.referrers_api  # the tag schema only when the API answered 404
