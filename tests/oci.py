"""Real OCI artefacts for the tests: go-containerregistry's ``registry`` on loopback,
images pushed by ``crane``, signatures made by the ``cosign`` CLI (DESIGN.md section 5).

The registry listens on 127.0.0.1, so every deployguard client talking to it must opt
in explicitly (``private_registries`` / ``plain_http_registries``): see ``image_settings``.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import tool
from tests.processes import Process, free_port, http_ok
from webhook.config import ImagePolicy, ImageSettings, RegistrySettings, SigningAuthority

SHARED_SIGSTORE = Path(__file__).resolve().parent.parent.parent / "shared" / "fixtures" / "sigstore"
FIXTURE_BUNDLE = SHARED_SIGSTORE / "rfc8785-0.1.2-py3-none-any.whl.sigstore.json"
FIXTURE_DIGEST = "sha256:c4e92e9ecc828bef2aa7dba1de8ac983511f7532a0df11c770d39099a25cf201"
FIXTURE_IDENTITY = "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2"
FIXTURE_ISSUER = "https://token.actions.githubusercontent.com"


def run(argv: list[str], **env: str) -> str:
    completed = subprocess.run(
        argv, capture_output=True, text=True, timeout=120, check=False, env={**os.environ, **env}
    )
    if completed.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({completed.returncode}):\n{completed.stderr}")
    return completed.stdout.strip()


class LocalRegistry:
    """go-containerregistry's registry (supports the referrers API) on a free loopback port."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.process = Process(f"registry-{self.port}", [str(tool("registry")), "-port", str(self.port)], log_dir)
        self.process.wait_until(lambda: http_ok(f"http://{self.host}/v2/"), 30, "serving /v2/")

    def stop(self) -> None:
        self.process.stop()


@dataclass(frozen=True)
class KeyPair:
    name: str
    private: Path
    public: Path


def push_image(registry: LocalRegistry, repository: str, tag: str, work: Path) -> str:
    """Push a new one-layer image with random content (``crane append``); return its digest."""
    work.mkdir(parents=True, exist_ok=True)
    content = work / f"content-{secrets.token_hex(4)}.bin"
    content.write_bytes(secrets.token_bytes(256))
    layer = work / f"{content.name}.tar"
    with tarfile.open(layer, "w") as tar:
        tar.add(content, arcname="content.bin")
    ref = f"{registry.host}/{repository}:{tag}"
    run([str(tool("crane")), "append", "--insecure", "-f", str(layer), "-t", ref])
    return run([str(tool("crane")), "digest", "--insecure", ref])


def generate_key(work: Path, name: str) -> KeyPair:
    """``cosign generate-key-pair`` (ECDSA P-256) with an empty password."""
    work.mkdir(parents=True, exist_ok=True)
    prefix = work / name
    run([str(tool("cosign")), "generate-key-pair", "--output-key-prefix", str(prefix)], COSIGN_PASSWORD="")
    return KeyPair(name, prefix.with_suffix(".key"), prefix.with_suffix(".pub"))


def cosign_sign(key: KeyPair, reference: str) -> None:
    """``cosign sign`` in the classic format, offline (no transparency log upload)."""
    run(
        [
            str(tool("cosign")), "sign", "--key", str(key.private), "--tlog-upload=false", "--yes",
            "--allow-insecure-registry", "--allow-http-registry", reference,
        ],
        COSIGN_PASSWORD="",
    )  # fmt: skip


def crane_tag(reference: str, tag: str) -> None:
    run([str(tool("crane")), "tag", "--insecure", reference, tag])


def upload_blob(registry: LocalRegistry, repository: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    base = f"http://{registry.host}/v2/{repository}/blobs/uploads/"
    started = httpx.post(base)
    started.raise_for_status()
    location = httpx.URL(base).join(started.headers["location"])
    httpx.put(location, params={"digest": digest}, content=data).raise_for_status()
    return digest


def put_manifest(registry: LocalRegistry, repository: str, reference: str, manifest: dict[str, object]) -> str:
    body = json.dumps(manifest).encode()
    media_type = str(manifest.get("mediaType", "application/vnd.oci.image.manifest.v1+json"))
    response = httpx.put(
        f"http://{registry.host}/v2/{repository}/manifests/{reference}",
        content=body,
        headers={"Content-Type": media_type},
    )
    response.raise_for_status()
    return "sha256:" + hashlib.sha256(body).hexdigest()


def attach_referrer(
    registry: LocalRegistry, repository: str, subject: str, artifact_type: str, layer_type: str, data: bytes
) -> str:
    """Push an OCI artifact manifest whose ``subject`` is ``subject`` (how cosign attaches bundles)."""
    empty = upload_blob(registry, repository, b"{}")
    layer = upload_blob(registry, repository, data)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": artifact_type,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
        "layers": [{"mediaType": layer_type, "digest": layer, "size": len(data)}],
        "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": subject, "size": 0},
    }
    body = json.dumps(manifest).encode()
    digest = put_manifest(registry, repository, "sha256:" + hashlib.sha256(body).hexdigest(), manifest)
    probe = httpx.get(f"http://{registry.host}/v2/{repository}/referrers/{subject}")
    if probe.status_code == 404:
        # No referrers API (go-containerregistry's cmd/registry): the client keeps the
        # fallback index at tag sha256-<hex> itself, as the OCI distribution spec says.
        index = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": digest,
                    "size": len(body),
                    "artifactType": artifact_type,
                }
            ],
        }
        put_manifest(registry, repository, subject.replace(":", "-"), index)
    return digest


def image_settings(
    registry_host: str,
    authorities: tuple[SigningAuthority, ...] = (),
    policies: tuple[ImagePolicy, ...] = (),
    **registry_overrides: object,
) -> ImageSettings:
    """Images settings for a loopback registry: it is explicitly allowed as a private, plain-HTTP registry."""
    registry = RegistrySettings(
        private_registries=(registry_host,),
        plain_http_registries=(registry_host,),
        **registry_overrides,  # type: ignore[arg-type]
    )
    return ImageSettings(
        enabled=True,
        registry=registry,
        authorities=authorities,
        policies=policies,
        tag_cache_ttl_seconds=0.0,
    )
